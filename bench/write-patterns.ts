/**
 * What one delivery's writes cost Postgres, for three write patterns, in 64-row batches on
 * one connection (wall time per delivery ≈ Postgres CPU, plus a round trip per statement,
 * the same for all three), and the WAL they write. Not part of `pnpm bench`; it sizes
 * design changes to the delivery rows (docs/performance.md, "Where the remaining gap is"):
 *
 *  - A, hookbox today: the delivery row inserted leased (five indexes, the due index among
 *    them), its completion update (never HOT: `status` is in index predicates), the attempt row;
 *  - B, a redesign: the log row without status-dependent indexes (fillfactor 70, so the
 *    completion update can be HOT), a small due table that holds the lease (insert, then
 *    delete on completion), the first attempt written on the delivery row;
 *  - C, a job queue (graphile-worker's pattern): insert a job, lock it, delete it.
 *
 *   pnpm build && npx tsx bench/write-patterns.ts [--batches 300] [--rounds 2]
 *
 * Uses DATABASE_URL when set (a scratch database is created and dropped), else an embedded
 * PostgreSQL with durable settings.
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { walBytes, withScratchDatabase } from './lib.js';

const { values: args } = parseArgs({
  options: { batches: { type: 'string', default: '300' }, rounds: { type: 'string', default: '2' } },
});
const BATCHES = Number(args.batches);
const ROUNDS = Number(args.rounds);
const ROWS = 64;

const SETUP = `
CREATE TABLE hookbox.pa (LIKE hookbox.deliveries INCLUDING ALL);
CREATE TABLE hookbox.pa_att (LIKE hookbox.delivery_attempts INCLUDING ALL);
CREATE TABLE hookbox.pb (LIKE hookbox.deliveries INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS) WITH (fillfactor = 70);
ALTER TABLE hookbox.pb ADD PRIMARY KEY (id), ADD COLUMN first_status int, ADD COLUMN first_duration_ms int,
  ADD COLUMN first_started_at timestamptz;
CREATE INDEX ON hookbox.pb (event_id);
CREATE INDEX ON hookbox.pb (subscription_id, id);
CREATE INDEX ON hookbox.pb (tenant_id, id);
CREATE TABLE hookbox.pb_q (delivery_id bigint PRIMARY KEY, due_at timestamptz NOT NULL, locked_until timestamptz);
CREATE INDEX ON hookbox.pb_q (due_at);
CREATE TABLE hookbox.pc (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, queue text, payload jsonb,
  run_at timestamptz DEFAULT now(), locked_at timestamptz, attempts int DEFAULT 0);
CREATE INDEX ON hookbox.pc (run_at) WHERE locked_at IS NULL;`;

const NEW_ROWS = `SELECT gen_random_uuid() AS event_id,
  ('00000000-0000-0000-0000-' || lpad((g % 128)::text, 12, '0'))::uuid AS subscription_id,
  't' || (g % 64) AS tenant_id FROM generate_series(1, ${ROWS}) g`;

/** The statements of one batch, rows lo..hi (ids are dense: one table per pattern). */
const PATTERNS: Record<string, (lo: number, hi: number) => string[]> = {
  'A (today)': (lo, hi) => [
    `INSERT INTO hookbox.pa (event_id, subscription_id, tenant_id, attempts, next_attempt_at, locked_until)
     SELECT event_id, subscription_id, tenant_id, 1, now() + interval '1 min', now() + interval '1 min' FROM (${NEW_ROWS}) n`,
    `WITH u AS (UPDATE hookbox.pa d SET status = 'succeeded', completed_at = now(), locked_until = NULL,
                  last_status = 200, last_attempt_at = now()
                WHERE d.id BETWEEN ${lo} AND ${hi} AND d.status = 'pending' RETURNING d.id)
     INSERT INTO hookbox.pa_att (delivery_id, attempt, started_at, duration_ms, status_code)
     SELECT id, 1, now(), 3, 200 FROM u`,
  ],
  'B (redesign)': (lo, hi) => [
    `WITH i AS (INSERT INTO hookbox.pb (event_id, subscription_id, tenant_id, attempts, next_attempt_at, locked_until)
                SELECT event_id, subscription_id, tenant_id, 1, now() + interval '1 min', now() + interval '1 min'
                FROM (${NEW_ROWS}) n RETURNING id)
     INSERT INTO hookbox.pb_q SELECT id, now() + interval '1 min', now() + interval '1 min' FROM i`,
    `WITH q AS (DELETE FROM hookbox.pb_q WHERE delivery_id BETWEEN ${lo} AND ${hi} RETURNING delivery_id)
     UPDATE hookbox.pb d SET status = 'succeeded', completed_at = now(), locked_until = NULL, last_status = 200,
       last_attempt_at = now(), first_status = 200, first_duration_ms = 3, first_started_at = now()
     FROM q WHERE d.id = q.delivery_id`,
  ],
  'C (job queue)': (lo, hi) => [
    `INSERT INTO hookbox.pc (queue, payload) SELECT tenant_id, '{"a":1}' FROM (${NEW_ROWS}) n`,
    `UPDATE hookbox.pc SET locked_at = now(), attempts = attempts + 1 WHERE id BETWEEN ${lo} AND ${hi} AND locked_at IS NULL`,
    `DELETE FROM hookbox.pc WHERE id BETWEEN ${lo} AND ${hi}`,
  ],
};
const TABLES: Record<string, string> = { 'A (today)': 'pa', 'B (redesign)': 'pb', 'C (job queue)': 'pc' };

async function main() {
  await withScratchDatabase(async (url) => {
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      await pool.query(SETUP);
      const done: Record<string, number> = { 'A (today)': 0, 'B (redesign)': 0, 'C (job queue)': 0 };
      for (let round = 1; round <= ROUNDS; round++) {
        for (const [name, statements] of Object.entries(PATTERNS)) {
          await pool.query('CHECKPOINT');
          const wal0 = await walBytes(pool);
          const t0 = performance.now();
          for (let b = 0; b < BATCHES; b++) {
            const lo = (done[name] as number) + b * ROWS + 1;
            for (const sql of statements(lo, lo + ROWS - 1)) await pool.query(sql);
          }
          const ms = performance.now() - t0;
          const wal = (await walBytes(pool)) - wal0;
          done[name] = (done[name] as number) + BATCHES * ROWS;
          const n = BATCHES * ROWS;
          console.log(
            `round ${round} ${name}: ${((ms * 1000) / n).toFixed(0)} µs per delivery, WAL ${(wal / n).toFixed(0)} B per delivery`,
          );
        }
      }
      const { rows } = await pool.query(
        `SELECT relname, n_tup_upd::int AS updates, n_tup_hot_upd::int AS hot FROM pg_stat_user_tables
           WHERE schemaname = 'hookbox' AND relname IN ('pa', 'pb') ORDER BY relname`,
      );
      for (const r of rows) {
        const name = Object.keys(TABLES).find((k) => TABLES[k] === r.relname);
        console.log(`${name}: ${r.hot} of ${r.updates} completion updates HOT`);
      }
    } finally {
      await pool.end();
    }
  });
}

main().catch((err) => {
  console.error(`write-patterns failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
