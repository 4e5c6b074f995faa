// Enqueue inside a TypeORM transaction: pass the transaction's EntityManager (or a
// QueryRunner) to enqueue. Run: DATABASE_URL=postgres://… npx tsx docs/examples/typeorm.ts
import 'reflect-metadata';
import { createOutbox } from '@hookbox/outbox';
import { DataSource } from 'typeorm';
import type { PostgresDriver } from 'typeorm/driver/postgres/PostgresDriver.js';

const dataSource = new DataSource({ type: 'postgres', url: process.env.DATABASE_URL });
await dataSource.initialize();
const outbox = createOutbox();
outbox.attachNotifier((dataSource.driver as PostgresDriver).master); // optional: TypeORM's pg Pool

await dataSource.query(
  'CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, customer text NOT NULL, total_cents int NOT NULL)',
);

const eventId = await dataSource.transaction(async (em) => {
  const [order] = await em.query('INSERT INTO orders (customer, total_cents) VALUES ($1, $2) RETURNING id', [
    'linus',
    500,
  ]);
  const { id } = await outbox.enqueue(em, { tenantId: 'acme', type: 'order.created', payload: { orderId: order.id } });
  return id;
});
console.log(`enqueued ${eventId}`);
await dataSource.destroy();
