/**
 * `enqueue` joins the caller's transaction with every executor it accepts: a commit keeps
 * exactly one row, a rollback leaves none, and before the commit no other connection sees
 * the row. Payloads come back as equal JSON; ids are UUIDv7.
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { createOutbox, type Executor, runQuery } from '@hookbox/outbox';
import { TransactionRollbackError } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from './harness/db.js';

const db = useTestDatabase();
const outbox = createOutbox();
let dataSource: DataSource;

beforeAll(async () => {
  dataSource = new DataSource({ type: 'postgres', url: db.url, applicationName: 'hookbox-test-typeorm' });
  await dataSource.initialize();
});
afterAll(async () => {
  await dataSource?.destroy();
});

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const tenant = () => `t-${randomUUID()}`;

/** What is committed: read on a connection of its own. */
async function committed(tenantId: string) {
  const { rows } = await db.pool.query<{ id: string; type: string; payload: unknown }>(
    'SELECT id, type, payload FROM hookbox.events WHERE tenant_id = $1 ORDER BY id',
    [tenantId],
  );
  return rows;
}

/** Rows of a tenant as the executor's own transaction sees them. */
async function countVia(ex: Executor, tenantId: string): Promise<number> {
  const rows = await runQuery<{ n: number }>(ex, 'SELECT count(*)::int AS n FROM hookbox.events WHERE tenant_id = $1', [
    tenantId,
  ]);
  return rows[0]?.n ?? -1;
}

class Rollback extends Error {}

/** Runs `fn` in a transaction of one executor kind, then commits or rolls back. */
type InTx = <T>(fn: (ex: Executor) => Promise<T>, end: 'commit' | 'rollback') => Promise<T>;

async function withPoolClient<T>(fn: (c: pg.PoolClient) => Promise<T>, end: 'commit' | 'rollback'): Promise<T> {
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query(end === 'commit' ? 'COMMIT' : 'ROLLBACK');
    return result;
  } finally {
    client.release();
  }
}

const kinds: [string, InTx][] = [
  [
    'drizzle node-postgres transaction',
    async (fn, end) => {
      let result: Awaited<ReturnType<typeof fn>> | undefined;
      await drizzle(db.pool)
        .transaction(async (tx) => {
          result = await fn(tx);
          if (end === 'rollback') tx.rollback();
        })
        .catch((err) => {
          if (!(err instanceof TransactionRollbackError && end === 'rollback')) throw err;
        });
      return result as Awaited<ReturnType<typeof fn>>;
    },
  ],
  ['pg PoolClient with BEGIN/COMMIT/ROLLBACK', (fn, end) => withPoolClient(fn, end)],
  [
    'pg Client',
    async (fn, end) => {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        await client.query('BEGIN');
        const result = await fn(client);
        await client.query(end === 'commit' ? 'COMMIT' : 'ROLLBACK');
        return result;
      } finally {
        await client.end();
      }
    },
  ],
  [
    'a plain { query(text, values) } object',
    (fn, end) => withPoolClient((c) => fn({ query: (text, values) => c.query(text, values) }), end),
  ],
  [
    'TypeORM EntityManager in dataSource.transaction',
    async (fn, end) => {
      let result: Awaited<ReturnType<typeof fn>> | undefined;
      await dataSource
        .transaction(async (em) => {
          result = await fn(em);
          if (end === 'rollback') throw new Rollback();
        })
        .catch((err) => {
          if (!(err instanceof Rollback)) throw err;
        });
      return result as Awaited<ReturnType<typeof fn>>;
    },
  ],
  [
    'TypeORM QueryRunner with startTransaction',
    async (fn, end) => {
      const qr = dataSource.createQueryRunner();
      await qr.connect();
      try {
        await qr.startTransaction();
        const result = await fn(qr);
        if (end === 'commit') await qr.commitTransaction();
        else await qr.rollbackTransaction();
        return result;
      } finally {
        await qr.release();
      }
    },
  ],
];

describe.each(kinds)('%s', (_name, inTx) => {
  /** Enqueues inside the transaction; checks it is visible there and nowhere else yet. */
  async function enqueueUncommitted(ex: Executor, tenantId: string): Promise<string> {
    const result = await outbox.enqueue(ex, { tenantId, type: 'message.new', payload: { hello: 'world' } });
    expect(result.created).toBe(true);
    expect(result.id).toMatch(UUID_V7);
    expect(await countVia(ex, tenantId)).toBe(1);
    expect(await committed(tenantId)).toEqual([]);
    return result.id;
  }

  it('commit keeps exactly one event row', async () => {
    const t = tenant();
    const id = await inTx((ex) => enqueueUncommitted(ex, t), 'commit');
    expect(await committed(t)).toEqual([{ id, type: 'message.new', payload: { hello: 'world' } }]);
  });

  it('rollback leaves none', async () => {
    const t = tenant();
    const id = await inTx((ex) => enqueueUncommitted(ex, t), 'rollback');
    expect(id).toMatch(UUID_V7);
    expect(await committed(t)).toEqual([]);
    const { rows } = await db.pool.query('SELECT 1 FROM hookbox.events WHERE id = $1', [id]);
    expect(rows).toEqual([]);
  });

  it('enqueueMany commits all rows or, on rollback, none', async () => {
    const t = tenant();
    const events = [1, 2, 3].map((n) => ({ tenantId: t, type: 'message.new', payload: { n } }));
    await inTx(async (ex) => {
      expect((await outbox.enqueueMany(ex, events)).length).toBe(3);
      expect(await countVia(ex, t)).toBe(3);
    }, 'rollback');
    expect(await committed(t)).toEqual([]);
    const results = await inTx((ex) => outbox.enqueueMany(ex, events), 'commit');
    const rows = await committed(t);
    expect(rows.map((r) => r.id).sort()).toEqual(results.map((r) => r.id).sort());
  });
});

describe('enqueueMany', () => {
  it('writes N rows in one round trip and returns ids in input order', async () => {
    const t = tenant();
    const n = 250;
    const events = Array.from({ length: n }, (_, i) => ({
      tenantId: t,
      type: i % 2 ? 'message.sent' : 'message.new',
      payload: { seq: i },
      idempotencyKey: `k-${i}`,
    }));
    const results = await withPoolClient(async (client) => {
      const sent: string[] = [];
      const counting = {
        query: (text: string, values?: unknown[]) => {
          sent.push(text);
          return client.query(text, values);
        },
      };
      const r = await outbox.enqueueMany(counting, events);
      expect(sent.length).toBe(1);
      return r;
    }, 'commit');
    expect(results.length).toBe(n);
    expect(results.every((r) => r.created)).toBe(true);
    expect(new Set(results.map((r) => r.id)).size).toBe(n);
    const rows = await committed(t);
    expect(rows.length).toBe(n);
    const byId = new Map(rows.map((r) => [r.id, r]));
    results.forEach((r, i) => {
      expect(byId.get(r.id)).toEqual({ id: r.id, type: events[i]?.type, payload: { seq: i } });
    });
  });

  it('sends one statement through a drizzle transaction too', async () => {
    const t = tenant();
    let calls = 0;
    const results = await drizzle(db.pool).transaction(async (tx) => {
      const counting = {
        execute: (q: Parameters<typeof tx.execute>[0]) => {
          calls++;
          return tx.execute(q);
        },
      };
      return outbox.enqueueMany(
        counting,
        [0, 1, 2, 3].map((seq) => ({ tenantId: t, type: 'flow.started', payload: { seq } })),
      );
    });
    expect(calls).toBe(1);
    const rows = await committed(t);
    results.forEach((r, seq) => {
      expect(rows.find((row) => row.id === r.id)?.payload).toEqual({ seq });
    });
  });

  it('an empty batch sends nothing', async () => {
    let calls = 0;
    const never = {
      query: async () => {
        calls++;
        return { rows: [] };
      },
    };
    expect(await outbox.enqueueMany(never, [])).toEqual([]);
    expect(calls).toBe(0);
  });
});

function nested(depth: number, leaf: unknown): unknown {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { [`level${i}`]: v };
  return v;
}

const sqlish = `'); DROP TABLE hookbox.events; --`;
const payloads: [string, unknown][] = [
  ['quotes and backslashes', { s: `'single' "double" \`back\` \\ \\\\ \\" \\u0000-as-text` }],
  ['SQL fragments', { s: sqlish, [sqlish]: 'in a key', t: "' OR '1'='1", d: "$1 $$ $tag$ ::jsonb E'\\x00' ;" }],
  ['emoji', { s: '😀 👍🏽 👨‍👩‍👧‍👦 🇳🇱', '🔑': '🗝️' }],
  ['other unicode', { s: 'ñ é ü ß 中文 日本語 한국어 العربية עברית 𝕏 𐍈 \u200b\u2028\u2029\ufeff\ufffd\uffff' }],
  ['control characters', { s: '\u0001\u0007\b\f\n\r\t\u001f\u007f' }],
  // The deepest payload accepted: its `leaf: true` sits MAX_PAYLOAD_DEPTH (64) levels down.
  ['deep object/array nesting (64 levels, the limit)', nested(63, { leaf: true })],
  ['a large array', { items: Array.from({ length: 20_000 }, (_, i) => i * 7) }],
  ['an array of objects', Array.from({ length: 1_000 }, (_, i) => ({ i, name: `item ${i}`, ok: i % 3 === 0 }))],
  ['numbers', [0, -1, 1.5, 0.1 + 0.2, 1e-7, 1e21, 2 ** 53 - 1, -(2 ** 53 - 1), 1.7976931348623157e308, 5e-324]],
  ['empty key, empty containers', { '': '', a: {}, b: [], c: null }],
  ['a Date (its toJSON)', { at: new Date(Date.UTC(2024, 1, 29, 12, 0, 0, 123)) }],
  ['top-level null', null],
  ['top-level string', 'just a string'],
  ['top-level number', 42],
  ['top-level boolean', false],
  ['top-level array', [1, 'two', { three: 3 }]],
];

describe.each(kinds.filter(([name]) => /drizzle|PoolClient|EntityManager/.test(name)))(
  'payloads round-trip through %s',
  (_name, inTx) => {
    it.each(payloads)('%s', async (_what, payload) => {
      const t = tenant();
      await inTx((ex) => outbox.enqueue(ex, { tenantId: t, type: 'message.new', payload }), 'commit');
      const rows = await committed(t);
      expect(rows.length).toBe(1);
      // The expected value is what JSON itself makes of the payload, computed without the database.
      expect(rows[0]?.payload).toStrictEqual(JSON.parse(JSON.stringify(payload)));
    });
  },
);

describe('ids', () => {
  const msOf = (id: string) => Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16);

  it('are UUIDv7 carrying the enqueue time', async () => {
    const t = tenant();
    const before = Date.now();
    const { id } = await outbox.enqueue(db.pool, { tenantId: t, type: 'message.new', payload: {} });
    const after = Date.now();
    expect(id).toMatch(UUID_V7);
    expect(msOf(id)).toBeGreaterThanOrEqual(before);
    expect(msOf(id)).toBeLessThanOrEqual(after);
    const { rows } = await db.pool.query('SELECT id::text AS id FROM hookbox.events WHERE tenant_id = $1', [t]);
    expect(rows).toEqual([{ id }]);
  });

  it('increase over time', async () => {
    const t = tenant();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await outbox.enqueue(db.pool, { tenantId: t, type: 'message.new', payload: { i } })).id);
      await new Promise((r) => setTimeout(r, 3));
    }
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids.map(msOf)).size).toBe(5);
    // The database orders them the same way (uuid comparison, not text).
    expect((await committed(t)).map((r) => r.id)).toEqual(ids);
  });

  // Ids are monotonic within a millisecond (RFC 9562 §6.2), so a batch sorts in input
  // order — the order fan-out and listings use.
  it('ids of one enqueueMany batch sort in input order', async () => {
    const t = tenant();
    const events = Array.from({ length: 100 }, (_, i) => ({ tenantId: t, type: 'message.new', payload: { i } }));
    const ids = (await outbox.enqueueMany(db.pool, events)).map((r) => r.id);
    expect([...ids].sort()).toEqual(ids);
  });
});

describe('typed events', () => {
  type Events = { 'message.new': { id: string }; 'conversation.closed': { conversationId: string } };
  const typed = createOutbox<Events>();

  it('type-checks payload against type (tsc checks the @ts-expect-error lines)', async () => {
    const t = tenant();
    await withPoolClient(async (c) => {
      const ok = await typed.enqueue(c, { tenantId: t, type: 'message.new', payload: { id: 'm1' } });
      expect(ok.created).toBe(true);
      await typed.enqueueMany(c, [
        { tenantId: t, type: 'message.new', payload: { id: 'm2' } },
        { tenantId: t, type: 'conversation.closed', payload: { conversationId: 'c1' } },
      ]);
      // Types are a compile-time contract: the runtime accepts any JSON, so these run (and roll back).
      // @ts-expect-error id must be a string
      await typed.enqueue(c, { tenantId: t, type: 'message.new', payload: { id: 1 } });
      // @ts-expect-error payload of another type
      await typed.enqueue(c, { tenantId: t, type: 'message.new', payload: { conversationId: 'c1' } });
      // @ts-expect-error type not in the map
      await typed.enqueue(c, { tenantId: t, type: 'message.gone', payload: { id: 'm3' } });
      // @ts-expect-error payload is required (and the runtime rejects it too)
      const missing = typed.enqueue(c, { tenantId: t, type: 'message.new' });
      await expect(missing).rejects.toMatchObject({ code: 'HOOKBOX_INVALID_INPUT', field: 'payload' });
      expect(await countVia(c, t)).toBe(6);
    }, 'rollback');
    expect(await committed(t)).toEqual([]);
  });
});
