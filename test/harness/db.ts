/**
 * A fresh database per test file, cloned from the migrated template. At the end of the
 * file the database is dropped; a test that leaked a connection (an unclosed pool, a
 * relay left running) fails here, naming what is still connected.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, inject } from 'vitest';
import { withDatabase } from '../global-setup.js';

export interface TestDatabase {
  /** Connection string of this file's own database. */
  url: string;
  name: string;
  /** A pool on it, closed by the harness at the end of the file. */
  pool: pg.Pool;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: inject('pgAdminUrl') });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function createDatabase(): Promise<{ url: string; name: string }> {
  const name = `hookbox_t_${randomBytes(6).toString('hex')}`;
  const template = inject('pgTemplate');
  await admin((c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${template}`));
  return { url: withDatabase(inject('pgAdminUrl'), name), name };
}

/**
 * A database made from template0 — no hookbox schema, nothing — named `<prefix>_<random>`.
 * The caller drops it (dropDatabase, which also checks for leaked connections).
 */
export async function createEmptyDatabase(prefix: string): Promise<{ url: string; name: string }> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name} TEMPLATE template0`));
  return { url: withDatabase(inject('pgAdminUrl'), name), name };
}

export async function dropDatabase(name: string): Promise<void> {
  await admin(async (c) => {
    // Give connections that are closing a moment to go away before calling them leaks.
    // Only client connections count: an autovacuum worker on the database is Postgres's own
    // (DROP DATABASE stops it).
    let leaked: { application_name: string; state: string; query: string }[] = [];
    for (let i = 0; i < 20; i++) {
      ({ rows: leaked } = await c.query(
        `SELECT application_name, state, query FROM pg_stat_activity
         WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
        [name],
      ));
      if (leaked.length === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (leaked.length > 0) {
      await c.query(`DROP DATABASE ${name} WITH (FORCE)`);
      const who = leaked.map((l) => `${l.application_name || '?'} (${l.state}: ${l.query.slice(0, 60)})`).join('; ');
      throw new Error(`test leaked ${leaked.length} database connection(s): ${who}`);
    }
    await c.query(`DROP DATABASE ${name}`);
  });
}

/** Call at the top of a test file: a fresh migrated database for this file. */
export function useTestDatabase(): TestDatabase {
  const db = { url: '', name: '', pool: undefined as unknown as pg.Pool };
  beforeAll(async () => {
    const created = await createDatabase();
    db.url = created.url;
    db.name = created.name;
    db.pool = new pg.Pool({ connectionString: created.url, max: 10, application_name: 'hookbox-test' });
  });
  afterAll(async () => {
    await db.pool?.end();
    if (db.name) await dropDatabase(db.name);
  });
  return db;
}

/** Runs `fn` in a transaction on `pool` that is always rolled back, so a test never commits a row. */
export async function inRolledBackTx<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    return await fn(c);
  } finally {
    await c.query('ROLLBACK');
    c.release();
  }
}

/** How many events the database (as seen by `c`) holds. */
export const countEvents = async (c: pg.ClientBase) =>
  (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM hookbox.events')).rows[0]?.n;
