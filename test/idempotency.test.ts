/**
 * Idempotency keys: unique per tenant; a repeat returns the first event's id and writes
 * nothing — also when two transactions race with the same key on two connections.
 */
import { randomUUID } from 'node:crypto';
import { createOutbox } from '@hookbox/outbox';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from './harness/db.js';

const db = useTestDatabase();
const outbox = createOutbox();
const tenant = () => `t-${randomUUID()}`;

async function rowsOf(tenantId: string) {
  const { rows } = await db.pool.query<{ id: string; idempotency_key: string | null; payload: unknown }>(
    'SELECT id, idempotency_key, payload FROM hookbox.events WHERE tenant_id = $1 ORDER BY id',
    [tenantId],
  );
  return rows;
}

describe('one connection', () => {
  it('the same key twice returns the first id with created: false and writes one row', async () => {
    const t = tenant();
    const first = await outbox.enqueue(db.pool, {
      tenantId: t,
      type: 'message.new',
      payload: { v: 1 },
      idempotencyKey: 'k',
    });
    const again = await outbox.enqueue(db.pool, {
      tenantId: t,
      type: 'message.new',
      payload: { v: 2 },
      idempotencyKey: 'k',
    });
    expect(first.created).toBe(true);
    expect(again).toEqual({ id: first.id, created: false });
    // The first payload is kept; the second call wrote nothing.
    expect(await rowsOf(t)).toEqual([{ id: first.id, idempotency_key: 'k', payload: { v: 1 } }]);
  });

  it('works inside one transaction too', async () => {
    const t = tenant();
    const c = await db.pool.connect();
    try {
      await c.query('BEGIN');
      const a = await outbox.enqueue(c, { tenantId: t, type: 'message.new', payload: {}, idempotencyKey: 'k' });
      const b = await outbox.enqueue(c, { tenantId: t, type: 'message.sent', payload: {}, idempotencyKey: 'k' });
      expect(b).toEqual({ id: a.id, created: false });
      await c.query('COMMIT');
    } finally {
      c.release();
    }
    expect((await rowsOf(t)).length).toBe(1);
  });

  it('the same key for two tenants makes two rows', async () => {
    const [t1, t2] = [tenant(), tenant()];
    const a = await outbox.enqueue(db.pool, {
      tenantId: t1,
      type: 'message.new',
      payload: {},
      idempotencyKey: 'shared',
    });
    const b = await outbox.enqueue(db.pool, {
      tenantId: t2,
      type: 'message.new',
      payload: {},
      idempotencyKey: 'shared',
    });
    expect(a.created && b.created).toBe(true);
    expect(a.id).not.toBe(b.id);
    expect((await rowsOf(t1)).map((r) => r.id)).toEqual([a.id]);
    expect((await rowsOf(t2)).map((r) => r.id)).toEqual([b.id]);
  });

  it('events without a key are never deduplicated', async () => {
    const t = tenant();
    const a = await outbox.enqueue(db.pool, { tenantId: t, type: 'message.new', payload: {} });
    const b = await outbox.enqueue(db.pool, { tenantId: t, type: 'message.new', payload: {}, idempotencyKey: null });
    expect(a.id).not.toBe(b.id);
    expect((await rowsOf(t)).length).toBe(2);
  });

  it('enqueueMany: keys repeating inside the batch and keys existing from before', async () => {
    const t = tenant();
    const other = tenant();
    const old = await outbox.enqueue(db.pool, {
      tenantId: t,
      type: 'message.new',
      payload: { old: 1 },
      idempotencyKey: 'old',
    });
    const otherTenant = await outbox.enqueue(db.pool, {
      tenantId: other,
      type: 'message.new',
      payload: {},
      idempotencyKey: 'a',
    });
    const ev = (idempotencyKey: string | undefined, n: number, tenantId = t) => ({
      tenantId,
      type: 'message.new',
      payload: { n },
      idempotencyKey,
    });
    const results = await outbox.enqueueMany(db.pool, [
      ev('a', 0),
      ev('old', 1),
      ev('b', 2),
      ev('a', 3),
      ev(undefined, 4),
      ev('b', 5),
      ev('a', 6, other),
    ]);
    const [a, fromOld, b, aAgain, noKey, bAgain, otherA] = results;
    expect(a?.created).toBe(true);
    expect(fromOld).toEqual({ id: old.id, created: false });
    expect(b?.created).toBe(true);
    expect(aAgain).toEqual({ id: a?.id, created: false });
    expect(noKey?.created).toBe(true);
    expect(bAgain).toEqual({ id: b?.id, created: false });
    expect(otherA).toEqual({ id: otherTenant.id, created: false });
    const rows = await rowsOf(t);
    expect(rows.map((r) => r.id).sort()).toEqual([old.id, a?.id, b?.id, noKey?.id].sort());
    // The first occurrence in the batch wins; the old row keeps its payload.
    expect(rows.find((r) => r.idempotency_key === 'a')?.payload).toEqual({ n: 0 });
    expect(rows.find((r) => r.idempotency_key === 'b')?.payload).toEqual({ n: 2 });
    expect(rows.find((r) => r.idempotency_key === 'old')?.payload).toEqual({ old: 1 });
    expect((await rowsOf(other)).length).toBe(1);
  });
});

/** Two transactions on two connections, each with its backend pid. */
async function twoTransactions<T>(fn: (a: pg.PoolClient, b: pg.PoolClient, bPid: number) => Promise<T>): Promise<T> {
  const a = await db.pool.connect();
  const b = await db.pool.connect();
  try {
    const { rows } = await b.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    await a.query('BEGIN');
    await b.query('BEGIN');
    return await fn(a, b, rows[0]?.pid as number);
  } finally {
    await a.query('ROLLBACK').catch(() => {});
    await b.query('ROLLBACK').catch(() => {});
    a.release();
    b.release();
  }
}

/** Waits until backend `pid` is blocked on a lock, as Postgres reports it. */
async function waitUntilBlocked(pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const { rows } = await db.pool.query('SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1', [pid]);
    if (rows[0]?.wait_event_type === 'Lock') return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`backend ${pid} never blocked on a lock`);
}

/** Tracks whether a promise has settled, so a test can assert that it has not yet. */
function track<T>(p: Promise<T>) {
  const state = { settled: false, promise: p };
  p.then(
    () => {
      state.settled = true;
    },
    () => {
      state.settled = true;
    },
  );
  return state;
}

type EnqueueFn = (c: pg.PoolClient, tenantId: string, key: string) => Promise<string>;

const paths: [string, EnqueueFn][] = [
  [
    'TypeScript enqueue',
    async (c, tenantId, key) =>
      (await outbox.enqueue(c, { tenantId, type: 'message.new', payload: {}, idempotencyKey: key })).id,
  ],
  [
    'SQL function hookbox.enqueue',
    async (c, tenantId, key) => {
      const { rows } = await c.query<{ id: string }>(
        `SELECT hookbox.enqueue($1, 'message.new', '{}'::jsonb, $2) AS id`,
        [tenantId, key],
      );
      return rows[0]?.id as string;
    },
  ],
];

describe.each(paths)('two concurrent transactions with the same key (%s)', (_name, enqueue) => {
  it('the second blocks until the first commits, then returns the first id', async () => {
    const t = tenant();
    const { firstId, secondId } = await twoTransactions(async (a, b, bPid) => {
      const firstId = await enqueue(a, t, 'race');
      const second = track(enqueue(b, t, 'race'));
      await waitUntilBlocked(bPid);
      expect(second.settled).toBe(false);
      await a.query('COMMIT');
      const secondId = await second.promise;
      await b.query('COMMIT');
      return { firstId, secondId };
    });
    expect(secondId).toBe(firstId);
    expect((await rowsOf(t)).map((r) => r.id)).toEqual([firstId]);
  });

  it('when the first rolls back, the second creates its own row', async () => {
    const t = tenant();
    const { firstId, secondId } = await twoTransactions(async (a, b, bPid) => {
      const firstId = await enqueue(a, t, 'race');
      const second = track(enqueue(b, t, 'race'));
      await waitUntilBlocked(bPid);
      expect(second.settled).toBe(false);
      await a.query('ROLLBACK');
      const secondId = await second.promise;
      await b.query('COMMIT');
      return { firstId, secondId };
    });
    expect(secondId).not.toBe(firstId);
    expect((await rowsOf(t)).map((r) => r.id)).toEqual([secondId]);
  });
});

describe('two concurrent enqueueMany batches sharing keys', () => {
  it('the second returns the first batch ids for shared keys and creates only its new ones', async () => {
    const t = tenant();
    const batch = (keys: string[]) =>
      keys.map((idempotencyKey) => ({ tenantId: t, type: 'message.new', payload: { idempotencyKey }, idempotencyKey }));
    const { first, second } = await twoTransactions(async (a, b, bPid) => {
      const first = await outbox.enqueueMany(a, batch(['x', 'y']));
      const pending = track(outbox.enqueueMany(b, batch(['y', 'z', 'x'])));
      await waitUntilBlocked(bPid);
      expect(pending.settled).toBe(false);
      await a.query('COMMIT');
      const second = await pending.promise;
      await b.query('COMMIT');
      return { first, second };
    });
    expect(second[0]).toEqual({ id: first[1]?.id, created: false });
    expect(second[1]?.created).toBe(true);
    expect(second[2]).toEqual({ id: first[0]?.id, created: false });
    expect((await rowsOf(t)).map((r) => r.idempotency_key).sort()).toEqual(['x', 'y', 'z']);
  });
});
