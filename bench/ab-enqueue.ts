/**
 * A/B of the ordered enqueue's statement (issue #16): the base transaction (one business
 * insert) and the same with an ordered outbox event written by statement A (the key's
 * advisory lock, then the insert drawing events.pos: `hookbox_enqueue_ordered_v2`, what
 * `enqueue` sends since migration 0016) or B (the scheme before it: the key's counter
 * upserted in hookbox.ordering_keys, INSERT … ON CONFLICT DO UPDATE, numbering at enqueue),
 * in alternating one-second slices on one embedded PostgreSQL (durable), 8 writers, 1,000
 * keys; prints each one's ratio to the base, and WAL bytes per transaction. Not part of
 * `pnpm bench`.
 *
 *   npx tsx bench/ab-enqueue.ts [--slices 8]
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { startEmbeddedPostgres } from '@hookbox/devdb';
import pg from 'pg';
import { withDatabase } from './lib.js';

const { values: args } = parseArgs({ options: { slices: { type: 'string', default: '8' } } });
const WORKERS = 8;
const KEYS = 1000;

// A copy of INSERT_ONE_ORDERED in packages/outbox/src/outbox.ts.
const A = `WITH l AS (
  SELECT pg_advisory_xact_lock(1751868015, hashtext($2::text || E'\\x1f' || $6::text))
)
INSERT INTO hookbox.events (id, tenant_id, type, payload, idempotency_key, ordering_key, pos)
SELECT $1, $2, $3, $4::jsonb, $5, $6, nextval('hookbox.events_pos_seq') FROM l
ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id`;

// The statement `hookbox_enqueue_ordered_v1` sent before migration 0016.
const B = `WITH k AS (
  INSERT INTO hookbox.ordering_keys AS k (tenant_id, key, seq)
  SELECT $2, $6, 1
  WHERE $5::text IS NULL
     OR NOT EXISTS (SELECT 1 FROM hookbox.events e WHERE e.tenant_id = $2 AND e.idempotency_key = $5)
  ON CONFLICT (tenant_id, key) DO UPDATE SET seq = k.seq + 1
  RETURNING k.seq
), ins AS (
  INSERT INTO hookbox.events (id, tenant_id, type, payload, idempotency_key, ordering_key, ordering_seq)
  SELECT $1, $2, $3, $4::jsonb, $5, $6, k.seq FROM k
  ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING id
)
SELECT (SELECT id FROM ins) AS id, (SELECT seq FROM k) AS seq`;

async function slice(pool: pg.Pool, which: 'base' | 'A' | 'B'): Promise<{ tx: number; wal: number }> {
  const wal0 = await walLsn(pool);
  const deadline = performance.now() + 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: WORKERS }, async (_, w) => {
      const client = await pool.connect();
      try {
        while (performance.now() < deadline) {
          await client.query('BEGIN');
          const payload = { customer: `c${w}`, total: 4200, items: [{ sku: 'A-1', qty: 2 }], note: 'bench order' };
          const { rows } = await client.query('INSERT INTO orders (tenant_id, body) VALUES ($1, $2) RETURNING id', [
            'bench',
            payload,
          ]);
          if (which !== 'base') {
            await client.query({
              name: `ab_${which}`,
              text: which === 'A' ? A : B,
              values: [
                randomUUID(),
                'ratio',
                'order.created',
                JSON.stringify({ id: rows[0].id, ...payload }),
                null,
                `conversation:${(w * 7919 + done * 13) % KEYS}`,
              ],
            });
          }
          await client.query('COMMIT');
          done++;
        }
      } finally {
        client.release();
      }
    }),
  );
  return { tx: done, wal: (await walLsn(pool)) - wal0 };
}

async function walLsn(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn AS b");
  return Number(rows[0].b);
}

async function main() {
  const server = await startEmbeddedPostgres({ mode: 'durable' });
  try {
    await withDatabase(server.url, async (url) => {
      const pool = new pg.Pool({ connectionString: url, max: WORKERS + 2 });
      pool.on('error', () => {}); // idle connections cut when the database is dropped
      try {
        await pool.query(
          'CREATE TABLE orders (id bigserial PRIMARY KEY, tenant_id text NOT NULL, body jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())',
        );
        const t = { base: { tx: 0, wal: 0 }, A: { tx: 0, wal: 0 }, B: { tx: 0, wal: 0 } };
        // warm-up: every key exists, both statements prepared
        await slice(pool, 'A');
        await slice(pool, 'B');
        for (let s = 0; s < Number(args.slices); s++) {
          // alternate the order of A and B, so neither always follows the base
          for (const which of s % 2 === 0 ? (['base', 'A', 'B'] as const) : (['base', 'B', 'A'] as const)) {
            const r = await slice(pool, which);
            t[which].tx += r.tx;
            t[which].wal += r.wal;
          }
        }
        const f = (x: { tx: number; wal: number }) =>
          `${x.tx} tx, ratio ${(x.tx / t.base.tx).toFixed(3)}, WAL ${(x.wal / x.tx).toFixed(0)} B/tx`;
        console.log(`base ${f(t.base)}\nA (advisory lock) ${f(t.A)}\nB (counter upsert, before 0016) ${f(t.B)}`);
      } finally {
        await pool.end();
      }
    });
  } finally {
    await server.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
