/**
 * `hookbox.enqueue(tenant_id, type, payload, idempotency_key)` — the outbox write for
 * services in any language — joins the caller's transaction like the TypeScript path.
 */
import { randomUUID } from 'node:crypto';
import { createOutbox } from '@hookbox/outbox';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from './harness/db.js';

const db = useTestDatabase();
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const tenant = () => `t-${randomUUID()}`;
const msOf = (id: string) => Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16);

async function enqueueSql(
  c: pg.Pool | pg.PoolClient,
  tenantId: string,
  payload: unknown,
  key?: string,
): Promise<string> {
  const { rows } = await c.query<{ id: string }>(
    key === undefined
      ? `SELECT hookbox.enqueue($1, 'message.new', $2::jsonb) AS id`
      : `SELECT hookbox.enqueue($1, 'message.new', $2::jsonb, $3) AS id`,
    key === undefined ? [tenantId, JSON.stringify(payload)] : [tenantId, JSON.stringify(payload), key],
  );
  expect(rows.length).toBe(1);
  return rows[0]?.id as string;
}

async function committed(tenantId: string) {
  const { rows } = await db.pool.query<{ id: string; type: string; payload: unknown; idempotency_key: string | null }>(
    'SELECT id::text, type, payload, idempotency_key FROM hookbox.events WHERE tenant_id = $1 ORDER BY id',
    [tenantId],
  );
  return rows;
}

async function inTx<T>(fn: (c: pg.PoolClient) => Promise<T>, end: 'COMMIT' | 'ROLLBACK'): Promise<T> {
  const c = await db.pool.connect();
  try {
    await c.query('BEGIN');
    const result = await fn(c);
    await c.query(end);
    return result;
  } finally {
    c.release();
  }
}

/** Enqueues and checks the row is visible inside the transaction only. */
async function enqueueUncommitted(c: pg.PoolClient, tenantId: string): Promise<string> {
  const id = await enqueueSql(c, tenantId, { order: 42 });
  const inside = await c.query('SELECT id::text, tenant_id, type, payload FROM hookbox.events WHERE tenant_id = $1', [
    tenantId,
  ]);
  expect(inside.rows).toEqual([{ id, tenant_id: tenantId, type: 'message.new', payload: { order: 42 } }]);
  expect(await committed(tenantId)).toEqual([]);
  return id;
}

describe('hookbox.enqueue in a transaction', () => {
  it('commit keeps exactly one row, with the id the function returned', async () => {
    const t = tenant();
    const id = await inTx((c) => enqueueUncommitted(c, t), 'COMMIT');
    expect(id).toMatch(UUID_V7);
    expect(await committed(t)).toEqual([{ id, type: 'message.new', payload: { order: 42 }, idempotency_key: null }]);
  });

  it('rollback leaves none', async () => {
    const t = tenant();
    const id = await inTx((c) => enqueueUncommitted(c, t), 'ROLLBACK');
    expect(await committed(t)).toEqual([]);
    expect((await db.pool.query('SELECT 1 FROM hookbox.events WHERE id = $1', [id])).rows).toEqual([]);
  });

  it('the same idempotency key returns the first id and keeps one row', async () => {
    const t = tenant();
    const [first, second, third] = await inTx(
      async (c) => [
        await enqueueSql(c, t, { v: 1 }, 'order-7'),
        await enqueueSql(c, t, { v: 2 }, 'order-7'),
        await enqueueSql(c, t, { v: 3 }, 'order-8'),
      ],
      'COMMIT',
    );
    expect(second).toBe(first);
    expect(third).not.toBe(first);
    // A later transaction gets the committed id too.
    expect(await enqueueSql(db.pool, t, { v: 4 }, 'order-7')).toBe(first);
    const rows = await committed(t);
    expect(rows.map((r) => [r.id, r.idempotency_key, r.payload])).toEqual(
      [
        [first, 'order-7', { v: 1 }],
        [third, 'order-8', { v: 3 }],
      ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
  });

  it('without a key every call makes a new row', async () => {
    const t = tenant();
    const ids = await inTx(async (c) => [await enqueueSql(c, t, {}), await enqueueSql(c, t, {})], 'COMMIT');
    expect(ids[0]).not.toBe(ids[1]);
    expect((await committed(t)).length).toBe(2);
  });

  it('takes named arguments and a NULL key', async () => {
    const t = tenant();
    const { rows } = await db.pool.query(
      'SELECT hookbox.enqueue(tenant_id => $1, type => $2, payload => $3::jsonb, idempotency_key => NULL) AS id',
      [t, 'conversation.closed', '{"by": "agent"}'],
    );
    expect(await committed(t)).toEqual([
      { id: rows[0]?.id, type: 'conversation.closed', payload: { by: 'agent' }, idempotency_key: null },
    ]);
  });

  it('stores odd payloads as sent', async () => {
    const t = tenant();
    const payload = { s: `'); DROP TABLE hookbox.events; -- $1 \\ "q" 😀 中文`, deep: [[[{ n: 1.5 }]]] };
    await enqueueSql(db.pool, t, payload);
    expect((await committed(t))[0]?.payload).toEqual(payload);
  });
});

describe('ids from hookbox.uuid_v7()', () => {
  it('are UUIDv7 carrying the insert time, in the same format and order as the TypeScript ids', async () => {
    const t = tenant();
    const before = Date.now();
    const fromTs = (await createOutbox().enqueue(db.pool, { tenantId: t, type: 'message.new', payload: {} })).id;
    const ids = [fromTs];
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 3));
      ids.push(await enqueueSql(db.pool, t, { i }));
    }
    const after = Date.now();
    for (const id of ids) {
      expect(id).toMatch(UUID_V7);
      // Same host, but the database clock may be read a hair apart from Node's.
      expect(msOf(id)).toBeGreaterThanOrEqual(before - 50);
      expect(msOf(id)).toBeLessThanOrEqual(after + 50);
    }
    expect([...ids].sort()).toEqual(ids);
    expect((await committed(t)).map((r) => r.id)).toEqual(ids);
  });
});
