// Enqueue with a plain node-postgres client: BEGIN, your writes, enqueue, COMMIT on the same
// client. Run: DATABASE_URL=postgres://… npx tsx docs/examples/node-postgres.ts
import { createOutbox } from '@hookbox/outbox';
import pg from 'pg';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
const outbox = createOutbox();

await pool.query(
  'CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, customer text NOT NULL, total_cents int NOT NULL)',
);

const client = await pool.connect();
try {
  await client.query('BEGIN');
  const { rows } = await client.query<{ id: number }>(
    'INSERT INTO orders (customer, total_cents) VALUES ($1, $2) RETURNING id',
    ['grace', 1999],
  );
  const orderId = rows[0]!.id;
  // Several events in one round trip; enqueue(client, event) writes one.
  const results = await outbox.enqueueMany(client, [
    { tenantId: 'acme', type: 'order.created', payload: { orderId }, idempotencyKey: `order.created:${orderId}` },
    { tenantId: 'acme', type: 'order.paid', payload: { orderId, totalCents: 1999 } },
  ]);
  await client.query('COMMIT');
  for (const r of results) console.log(`enqueued ${r.id}`);
} catch (err) {
  await client.query('ROLLBACK');
  throw err;
} finally {
  client.release();
}
await pool.end();
