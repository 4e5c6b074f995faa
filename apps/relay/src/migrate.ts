/**
 * Applies the SQL migrations in drizzle/ with drizzle-orm's migrator, under a Postgres
 * advisory lock so that two processes migrating at once take turns instead of racing.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate as drizzleMigrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';

/** Arbitrary constant: the advisory-lock key all hookbox migrators agree on. */
const MIGRATION_LOCK_KEY = 7_347_120_211;
const MIGRATIONS_SCHEMA = 'hookbox';
const MIGRATIONS_TABLE = '__drizzle_migrations';

/**
 * The migrations folder: `drizzle/` copied into the package when it is packed, or the
 * repository's top-level `drizzle/` when running from a checkout.
 */
export function migrationsFolder(here: string = dirname(fileURLToPath(import.meta.url))): string {
  const candidates = [join(here, '..', 'drizzle'), join(here, '..', '..', '..', 'drizzle')];
  for (const dir of candidates) {
    if (existsSync(join(dir, 'meta', '_journal.json'))) return dir;
  }
  throw new Error(`migrations folder not found (looked in ${candidates.join(', ')})`);
}

export interface MigrationStatus {
  /** Migrations shipped with this version of hookbox. */
  expected: number;
  /** Migrations recorded as applied in the database. */
  applied: number;
}

/** How many migrations are shipped and how many the database has applied. */
export async function migrationStatus(client: pg.ClientBase): Promise<MigrationStatus> {
  const expected = readMigrationFiles({ migrationsFolder: migrationsFolder() }).length;
  const table = `${MIGRATIONS_SCHEMA}.${MIGRATIONS_TABLE}`;
  const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [table]);
  if (!exists.rows[0]?.t) return { expected, applied: 0 };
  const { rows } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return { expected, applied: rows[0]?.n ?? 0 };
}

/** Applies pending migrations; returns how many were applied by this call. Idempotent. */
export async function migrate(databaseUrl: string): Promise<{ applied: number; total: number }> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'hookbox-migrate' });
  await client.connect();
  try {
    // Session-level lock on this same connection: released by unlock or by disconnecting.
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      const before = await migrationStatus(client);
      await drizzleMigrate(drizzle(client), {
        migrationsFolder: migrationsFolder(),
        migrationsSchema: MIGRATIONS_SCHEMA,
        migrationsTable: MIGRATIONS_TABLE,
      });
      const after = await migrationStatus(client);
      return { applied: after.applied - before.applied, total: after.applied };
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  } finally {
    await client.end();
  }
}
