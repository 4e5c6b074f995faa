// Enqueue a webhook event in the same transaction as the business row, with drizzle-orm
// and node-postgres. Run: DATABASE_URL=postgres://… npx tsx docs/examples/drizzle.ts
import { createOutbox } from '@hookbox/outbox';
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { integer, pgTable, serial, text } from 'drizzle-orm/pg-core';
import pg from 'pg';

const orders = pgTable('orders', {
  id: serial('id').primaryKey(),
  customer: text('customer').notNull(),
  totalCents: integer('total_cents').notNull(),
});

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
const db = drizzle(pool);
const outbox = createOutbox();
outbox.attachNotifier(pool); // optional: wakes the relay right after commit

await db.execute(
  sql`CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, customer text NOT NULL, total_cents int NOT NULL)`,
);

const eventId = await db.transaction(async (tx) => {
  const [order] = await tx.insert(orders).values({ customer: 'ada', totalCents: 4200 }).returning();
  const { id } = await outbox.enqueue(tx, {
    tenantId: 'acme',
    type: 'order.created',
    payload: { orderId: order!.id, totalCents: order!.totalCents },
    idempotencyKey: `order.created:${order!.id}`, // a retry of this code sends nothing twice
  });
  return id;
});
console.log(`enqueued ${eventId}`);

// A rolled-back transaction leaves no event behind.
await db
  .transaction(async (tx) => {
    await tx.insert(orders).values({ customer: 'bob', totalCents: 1 });
    await outbox.enqueue(tx, { tenantId: 'acme', type: 'order.created', payload: { orderId: -1 } });
    throw new Error('payment declined');
  })
  .catch((err: Error) => console.log(`rolled back: ${err.message}`));

await pool.end();
