import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { schema } from '@hookbox/outbox';
import { is } from 'drizzle-orm';
import { getTableConfig, PgTable } from 'drizzle-orm/pg-core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, migrationStatus } from '../apps/relay/src/migrate.js';
import { type CliRun, envWithout, runCli } from './harness/cli.js';
import { createEmptyDatabase, dropDatabase } from './harness/db.js';

const root = fileURLToPath(new URL('..', import.meta.url));

// What the repository ships, counted without the migrator.
const journal = JSON.parse(readFileSync(`${root}drizzle/meta/_journal.json`, 'utf8')) as { entries: unknown[] };
const shipped = journal.entries.length;
const tables = (Object.values(schema) as unknown[])
  .filter((v): v is PgTable => is(v, PgTable))
  .map((t) => getTableConfig(t));

const created: string[] = [];

/** A database made from template0: no hookbox schema, nothing. Dropped (and leak-checked) at the end. */
async function emptyDatabase(): Promise<string> {
  const { url, name } = await createEmptyDatabase('hookbox_empty');
  created.push(name);
  return url;
}

afterAll(async () => {
  for (const name of created) await dropDatabase(name);
});

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliRun> {
  return runCli(args, { env: { ...envWithout(['DATABASE_URL']), ...env } });
}

describe('migrate() on an empty database', () => {
  let url: string;
  beforeAll(async () => {
    url = await emptyDatabase();
  });

  it('starts truly empty', async () => {
    expect(readdirSync(`${root}drizzle`).filter((f) => f.endsWith('.sql')).length).toBe(shipped);
    expect(shipped).toBeGreaterThan(0);
    await withClient(url, async (c) => {
      const { rows } = await c.query(`SELECT to_regnamespace('hookbox') AS ns`);
      expect(rows).toEqual([{ ns: null }]);
      expect(await migrationStatus(c)).toEqual({ expected: shipped, applied: 0 });
    });
  });

  it('two concurrent runs both succeed and apply every migration once', async () => {
    const results = await Promise.all([migrate(url), migrate(url)]);
    // The advisory lock makes them take turns: one applies everything, the other nothing.
    expect(results.map((r) => r.applied).sort()).toEqual([0, shipped]);
    expect(results.map((r) => r.total)).toEqual([shipped, shipped]);
    await withClient(url, async (c) => {
      expect(await migrationStatus(c)).toEqual({ expected: shipped, applied: shipped });
      const { rows } = await c.query('SELECT count(DISTINCT hash)::int AS n FROM hookbox.__drizzle_migrations');
      expect(rows).toEqual([{ n: shipped }]);
    });
  });

  it('leaves the complete schema: every table, column and index of schema.ts, and the functions', async () => {
    expect(tables.map((t) => t.name).sort()).toEqual([
      'api_keys',
      'deliveries',
      'delivery_attempts',
      'events',
      'ordering_keys',
      'portal_keys',
      'rate_windows',
      'subscriptions',
    ]);
    await withClient(url, async (c) => {
      const { rows: dbTables } = await c.query<{ table_name: string }>(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = 'hookbox' AND table_name <> '__drizzle_migrations'`,
      );
      expect(dbTables.map((r) => r.table_name).sort()).toEqual(tables.map((t) => t.name).sort());
      for (const t of tables) {
        expect(t.schema).toBe('hookbox');
        const { rows: cols } = await c.query<{ column_name: string }>(
          `SELECT column_name FROM information_schema.columns WHERE table_schema = 'hookbox' AND table_name = $1`,
          [t.name],
        );
        expect(cols.map((r) => r.column_name).sort(), t.name).toEqual(t.columns.map((col) => col.name).sort());
        const { rows: idx } = await c.query<{ indexname: string }>(
          `SELECT indexname FROM pg_indexes WHERE schemaname = 'hookbox' AND tablename = $1`,
          [t.name],
        );
        const names = idx.map((r) => r.indexname);
        for (const i of t.indexes) expect(names, t.name).toContain(i.config.name);
      }
      const { rows: fns } = await c.query(
        `SELECT p.proname, count(*)::int AS n FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'hookbox' GROUP BY p.proname ORDER BY p.proname`,
      );
      expect(fns).toEqual([
        { proname: 'delete_delivery_attempts', n: 1 },
        { proname: 'delivery_dead_event', n: 1 },
        { proname: 'delivery_exists', n: 1 },
        { proname: 'emit_operational_event', n: 1 },
        { proname: 'enqueue', n: 1 },
        { proname: 'event_has_deliveries', n: 1 },
        { proname: 'json_compact_bytes', n: 1 },
        { proname: 'matches_any', n: 1 },
        { proname: 'subscription_operational_events', n: 1 },
        { proname: 'take_rate_tokens', n: 1 },
        { proname: 'uuid_v7', n: 1 },
      ]);
      // And the migrated schema works.
      const { rows } = await c.query(`SELECT hookbox.enqueue('t', 'message.new', '{}') AS id`);
      expect(rows[0]?.id).toMatch(/^[0-9a-f-]{36}$/);
    });
  });

  it('a third run applies nothing', async () => {
    expect(await migrate(url)).toEqual({ applied: 0, total: shipped });
  });
});

describe('hookbox migrate (CLI, spawned)', () => {
  it('migrates an empty database, then reports it is up to date', async () => {
    const url = await emptyDatabase();
    const first = await cli(['migrate', '--database-url', url]);
    expect(first).toMatchObject({ code: 0, stderr: '' });
    expect(first.stdout.trim()).toBe(`hookbox: applied ${shipped} migration(s); ${shipped} in total`);
    const second = await cli(['migrate', '--database-url', url]);
    expect(second).toMatchObject({ code: 0, stderr: '' });
    expect(second.stdout.trim()).toBe(`hookbox: database is up to date (${shipped} migrations)`);
    await withClient(url, async (c) => {
      expect(await migrationStatus(c)).toEqual({ expected: shipped, applied: shipped });
    });
  });

  it('takes the URL from DATABASE_URL when no flag is given', async () => {
    const url = await emptyDatabase();
    const r = await cli(['migrate'], { DATABASE_URL: url });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`applied ${shipped} migration(s)`);
  });

  it('--database-url not-a-url exits 2 with a one-line error', async () => {
    const r = await cli(['migrate', '--database-url', 'not-a-url']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines.length).toBe(1);
    expect(lines[0]).toMatch(/^hookbox: .*--database-url/);
  });

  it('no URL at all exits 2 with a one-line error', async () => {
    const r = await cli(['migrate']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^hookbox: .*database/)]);
  });

  it('an unreachable server exits 1 with a one-line error', async () => {
    const r = await cli(['migrate', '--database-url', 'postgres://postgres@127.0.0.1:1/none']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^hookbox: /)]);
  });
});
