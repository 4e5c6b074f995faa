import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createOutbox, subscriptions } from '@hookbox/outbox';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate as drizzleMigrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { migrate } from '../apps/relay/src/migrate.js';
import { fanOut } from '../apps/relay/src/relay/sql.js';
import { createEmptyDatabase, dropDatabase } from './harness/db.js';
import { orderingReports, type ReceivedRequest, startReceiver } from './harness/receiver.js';
import { startRelay, useCleanup, waitForAllFinal } from './harness/relay.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const defer = useCleanup(afterEach);
const created: string[] = [];
afterAll(async () => {
  for (const name of created) await dropDatabase(name);
});

/** An empty database migrated up to and including migration `last` (the old scheme). */
async function databaseAt(last: string): Promise<string> {
  const { url, name } = await createEmptyDatabase('hookbox_upg');
  created.push(name);
  // The shipped migrations, cut after `last`.
  const dir = mkdtempSync(join(tmpdir(), 'hookbox-migrations-'));
  try {
    cpSync(join(root, 'drizzle'), dir, { recursive: true });
    const journalPath = join(dir, 'meta', '_journal.json');
    const journal = JSON.parse(readFileSync(journalPath, 'utf8')) as { entries: { tag: string }[] };
    const cut = journal.entries.findIndex((e) => e.tag === last);
    expect(cut).toBeGreaterThan(0);
    journal.entries = journal.entries.slice(0, cut + 1);
    writeFileSync(journalPath, JSON.stringify(journal));
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await drizzleMigrate(drizzle(client), {
        migrationsFolder: dir,
        migrationsSchema: 'hookbox',
        migrationsTable: '__drizzle_migrations',
      });
    } finally {
      await client.end();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return url;
}

const payloadOf = (r: ReceivedRequest) => (JSON.parse(r.body) as { data: { key: string; n: string } }).data;

describe('upgrade to numbering at fan-out', () => {
  it('delivers events numbered at enqueue before the upgrade, then the new ones, in order per key', async () => {
    const url = await databaseAt('0015_fan_out_pending_index');
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    defer(() => pool.end());
    const rx = await startReceiver();
    defer(() => rx.close());
    const t = 't-upgrade';
    const sub = await subscriptions.create(pool, { tenantId: t, url: rx.url('/a'), eventTypes: ['*'] });
    // The old scheme: hookbox.enqueue (migration 0013) numbers at enqueue.
    const old = async (key: string, n: string) =>
      pool.query(`SELECT hookbox.enqueue($1, 'thing.changed', $2::jsonb, NULL, $3)`, [
        t,
        JSON.stringify({ key, n }),
        key,
      ]);
    for (const n of ['o1', 'o2', 'o3']) await old('k1', n);
    await old('k2', 'o1');
    const before = await pool.query(
      `SELECT payload->>'n' AS n, ordering_key AS key, ordering_seq::int AS seq FROM hookbox.events ORDER BY id`,
    );
    expect(before.rows).toEqual([
      { n: 'o1', key: 'k1', seq: 1 },
      { n: 'o2', key: 'k1', seq: 2 },
      { n: 'o3', key: 'k1', seq: 3 },
      { n: 'o1', key: 'k2', seq: 1 },
    ]);

    expect((await migrate(url)).applied).toBeGreaterThan(0);
    const { rows: cols } = await pool.query('SELECT count(*)::int AS n FROM hookbox.events WHERE pos IS NULL');
    expect(cols[0].n).toBe(4);

    // New events, through the library and the SQL function.
    const outbox = createOutbox();
    await outbox.enqueueMany(pool, [
      { tenantId: t, type: 'thing.changed', payload: { key: 'k1', n: 'n1' }, orderingKey: 'k1' },
      { tenantId: t, type: 'thing.changed', payload: { key: 'k2', n: 'n1' }, orderingKey: 'k2' },
    ]);
    await pool.query(`SELECT hookbox.enqueue($1, 'thing.changed', '{"key":"k1","n":"n2"}', NULL, 'k1')`, [t]);
    await outbox.enqueue(pool, {
      tenantId: t,
      type: 'thing.changed',
      payload: { key: 'k1', n: 'n3' },
      orderingKey: 'k1',
    });

    // A fan-out that gets only the new events (another one holds the old ones): it numbers
    // them after the old numbers and leaves their deliveries parked behind the old events.
    const holder = await pool.connect();
    defer(() => holder.release());
    await holder.query('BEGIN');
    await holder.query('SELECT id FROM hookbox.events WHERE ordering_seq IS NOT NULL FOR UPDATE');
    const first = await fanOut(pool, 100, 60_000);
    expect(first.events).toBe(4);
    expect(first.claimed).toEqual([]);
    await holder.query('ROLLBACK');
    const numbered = await pool.query(
      `SELECT payload->>'n' AS n, ordering_key AS key, ordering_seq::int AS seq FROM hookbox.events
       WHERE pos IS NOT NULL ORDER BY pos`,
    );
    expect(numbered.rows).toEqual([
      { n: 'n1', key: 'k1', seq: 4 },
      { n: 'n1', key: 'k2', seq: 2 },
      { n: 'n2', key: 'k1', seq: 5 },
      { n: 'n3', key: 'k1', seq: 6 },
    ]);

    const relay = startRelay(url);
    defer(() => relay.stop());
    await waitForAllFinal(pool, { tenants: [t], atLeast: 8 });
    const got = rx.requests('/a');
    const byKey = (key: string) =>
      got.filter((r) => payloadOf(r).key === key).map((r) => [payloadOf(r).n, r.headers['webhook-ordering-seq']]);
    expect(byKey('k1')).toEqual([
      ['o1', '1'],
      ['o2', '2'],
      ['o3', '3'],
      ['n1', '4'],
      ['n2', '5'],
      ['n3', '6'],
    ]);
    expect(byKey('k2')).toEqual([
      ['o1', '1'],
      ['n1', '2'],
    ]);
    expect(orderingReports(sub.secret, got).statuses).toEqual(['next']);
  });
});
