/**
 * Ordered delivery per key (issue #16), against a real Postgres and real receivers:
 * sequence numbers follow the commit order of the producers' transactions (rollbacks and
 * idempotent repeats leave no gap); each subscription receives each key's events one at a
 * time in that order; a failing head holds only its own key (policy block, or skip), a
 * replay unblocks it; two relays, and a relay killed with SIGKILL mid-stream, keep the order
 * (a redelivery of the in-flight head is allowed, going back is not). Promotion leases the
 * heads it promotes to the promoting relay, except where the due claim must decide.
 */
import { createOutbox, subscriptions, ValidationError } from '@hookbox/outbox';
import { retryDelivery, stats } from '@hookbox/outbox/admin';
import type pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetricsRegistry } from '../apps/relay/src/metrics/metrics.js';
import { sampleGauges } from '../apps/relay/src/metrics/sampler.js';
import { fanOut, promoteHeads } from '../apps/relay/src/relay/sql.js';
import { inRolledBackTx } from './harness/db.js';
import { useRelayFixture } from './harness/fixture.js';
import { orderedChain } from './harness/ordered-chain.js';
import { orderingReports, type ReceivedRequest } from './harness/receiver.js';
import { killCliRelays, spawnRelayCli, waitFor, waitForAllFinal } from './harness/relay.js';

const fixture = useRelayFixture();
const { db, defer, tenant, relay } = fixture;
const receiver = () => fixture.receiver();
afterEach(killCliRelays);
const outbox = createOutbox();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Opens a transaction on its own connection. */
async function tx() {
  const c = await db.pool.connect();
  await c.query('BEGIN');
  let open = true;
  const end = async (how: 'COMMIT' | 'ROLLBACK') => {
    if (!open) return;
    open = false;
    try {
      await c.query(how);
    } finally {
      c.release();
    }
  };
  defer(() => end('ROLLBACK'));
  return {
    client: c,
    enqueue: (t: string, key: string, n: string) =>
      outbox.enqueue(c, { tenantId: t, type: 'thing.changed', payload: { key, n }, orderingKey: key }),
    commit: () => end('COMMIT'),
    rollback: () => end('ROLLBACK'),
  };
}

const keyOf = (r: ReceivedRequest) => decodeURIComponent(String(r.headers['webhook-ordering-key']));
const seqOf = (r: ReceivedRequest) => Number(r.headers['webhook-ordering-seq']);
const payloadOf = (r: ReceivedRequest) => (JSON.parse(r.body) as { data: { key: string; n: string } }).data;

/** The payload labels each key's requests carried, in arrival order. */
function arrivals(reqs: ReceivedRequest[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const r of reqs) {
    const { key, n } = payloadOf(r);
    out.set(key, [...(out.get(key) ?? []), n]);
  }
  return out;
}

/** Fans out every pending event: fan-out numbers the ordered ones (with no subscription, nothing is sent). */
async function fanOutAll(pool: pg.Pool): Promise<void> {
  while ((await fanOut(pool, 500, 60_000)).events > 0);
}

/** Each ordered event's number, after fanning out whatever is still pending. */
async function seqsByLabel(pool: pg.Pool, t: string): Promise<Map<string, number>> {
  await fanOutAll(pool);
  const { rows } = await pool.query(
    `SELECT payload->>'n' AS n, ordering_seq FROM hookbox.events WHERE tenant_id = $1 AND ordering_key IS NOT NULL`,
    [t],
  );
  return new Map(rows.map((r) => [r.n as string, Number(r.ordering_seq)]));
}

describe('sequence numbers follow commit order', () => {
  it('orders by commit, not by start: a transaction waiting on a key gets the number after the holder', async () => {
    const t = tenant();
    const a = await tx();
    await a.enqueue(t, 'k1', 'a1');
    // B wants the same key: it waits for A.
    const b = await tx();
    let bDone = false;
    const bEnq = b.enqueue(t, 'k1', 'b1').then((r) => {
      bDone = true;
      return r;
    });
    // C on another key is not held back by A, and commits first.
    const c = await tx();
    await c.enqueue(t, 'k2', 'c1');
    await c.commit();
    await sleep(150);
    expect(bDone).toBe(false);
    await a.enqueue(t, 'k1', 'a2');
    await a.commit();
    await bEnq;
    await b.commit();
    // A rolled-back transaction leaves no gap.
    const d = await tx();
    await d.enqueue(t, 'k1', 'd1');
    await d.rollback();
    const e = await tx();
    await e.enqueue(t, 'k1', 'e1');
    await e.commit();

    const seqs = await seqsByLabel(db.pool, t);
    expect(Object.fromEntries(seqs)).toEqual({ a1: 1, a2: 2, b1: 3, c1: 1, e1: 4 });
  });

  it('gives no number to an idempotent repeat, alone or inside a batch', async () => {
    const t = tenant();
    const ev = (n: string, idem?: string) => ({
      tenantId: t,
      type: 'thing.changed',
      payload: { key: 'k', n },
      orderingKey: 'k',
      ...(idem ? { idempotencyKey: idem } : {}),
    });
    const first = await outbox.enqueue(db.pool, ev('x1', 'same'));
    const again = await outbox.enqueue(db.pool, ev('x1-again', 'same'));
    expect(again).toEqual({ id: first.id, created: false });
    const batch = await outbox.enqueueMany(db.pool, [ev('x2'), ev('x1-batch', 'same'), ev('x3'), ev('x4', 'new')]);
    expect(batch.map((r) => r.created)).toEqual([true, false, true, true]);
    await outbox.enqueue(db.pool, ev('x5'));
    const seqs = await seqsByLabel(db.pool, t);
    expect(Object.fromEntries(seqs)).toEqual({ x1: 1, x2: 2, x3: 3, x4: 4, x5: 5 });
  });

  it('a repeat racing the first writer of its idempotency key leaves no gap', async () => {
    const t = tenant();
    const ev = (n: string) => ({
      tenantId: t,
      type: 'thing.changed',
      payload: { key: 'k', n },
      orderingKey: 'k',
      idempotencyKey: 'same',
    });
    const a = await tx();
    const first = await outbox.enqueue(a.client, ev('first'));
    // B cannot see A's event yet: it waits for A's key, then finds the conflict.
    const b = await tx();
    const bOne = outbox.enqueue(b.client, ev('repeat'));
    await sleep(100);
    await a.commit();
    expect(await bOne).toEqual({ id: first.id, created: false });
    await b.commit();
    // The same inside a batch, next to a new event of the key that must close the gap.
    const a2 = await tx();
    const second = await outbox.enqueue(a2.client, { ...ev('second'), idempotencyKey: 'same-2' });
    const c = await tx();
    const cMany = outbox.enqueueMany(c.client, [
      { ...ev('repeat-in-batch'), idempotencyKey: 'same-2' },
      { tenantId: t, type: 'thing.changed', payload: { key: 'k', n: 'c1' }, orderingKey: 'k' },
    ]);
    await sleep(100);
    await a2.commit();
    const many = await cMany;
    expect(many.map((r) => r.created)).toEqual([false, true]);
    expect(many[0]?.id).toBe(second.id);
    await c.commit();
    await outbox.enqueue(db.pool, {
      tenantId: t,
      type: 'thing.changed',
      payload: { key: 'k', n: 'last' },
      orderingKey: 'k',
    });
    const seqs = await seqsByLabel(db.pool, t);
    expect(Object.fromEntries(seqs)).toEqual({ first: 1, second: 2, c1: 3, last: 4 });
  });

  it('numbers the same through the SQL function, whose old signatures still work', async () => {
    const t = tenant();
    await db.pool.query(`SELECT hookbox.enqueue($1, 'thing.changed', '{"key":"k","n":"s1"}', NULL, 'k')`, [t]);
    await outbox.enqueue(db.pool, {
      tenantId: t,
      type: 'thing.changed',
      payload: { key: 'k', n: 's2' },
      orderingKey: 'k',
    });
    await db.pool.query(
      `SELECT hookbox.enqueue($1, 'thing.changed', '{"key":"k","n":"s3"}', idempotency_key => 'i', ordering_key => 'k')`,
      [t],
    );
    // An idempotent repeat through SQL takes no number either.
    await db.pool.query(
      `SELECT hookbox.enqueue($1, 'thing.changed', '{"key":"k","n":"s3-again"}', idempotency_key => 'i', ordering_key => 'k')`,
      [t],
    );
    await db.pool.query(`SELECT hookbox.enqueue($1, 'thing.changed', '{"key":"k","n":"s4"}', NULL, 'k')`, [t]);
    await db.pool.query(`SELECT hookbox.enqueue($1, 'thing.changed', '{"n":"plain"}')`, [t]);
    await db.pool.query(`SELECT hookbox.enqueue($1, 'thing.changed', '{"n":"plain2"}', 'idem-2')`, [t]);
    const seqs = await seqsByLabel(db.pool, t);
    expect(Object.fromEntries(seqs)).toEqual({ s1: 1, s2: 2, s3: 3, s4: 4 });
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n FROM hookbox.events WHERE tenant_id = $1 AND ordering_key IS NULL`,
      [t],
    );
    expect(rows[0].n).toBe(2);
  });

  it('a transaction on key K holds the advisory lock of (tenant, K): a second on K waits, one on L does not', async () => {
    const t = tenant();
    const a = await tx();
    await a.enqueue(t, 'K', 'a1');
    // The lock is the documented transaction-level advisory lock, held by A's session.
    const aPid = (await a.client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    const { rows: locks } = await db.pool.query(
      `SELECT l.pid FROM pg_locks l
       WHERE l.locktype = 'advisory' AND l.classid = 1751868015 AND l.objsubid = 2 AND l.granted
         AND l.objid = (hashtext($1 || E'\\x1f' || 'K')::bigint & 4294967295)::oid`,
      [t],
    );
    expect(locks.map((l) => l.pid)).toEqual([aPid]);
    const { rows: written } = await db.pool.query('SELECT count(*)::int AS n FROM hookbox.ordering_keys');
    const keysBefore = written[0].n;
    // B (enqueue), C (enqueueMany) and D (the SQL function) want K: they wait for A.
    const done = new Set<string>();
    const b = await tx();
    const bEnq = b.enqueue(t, 'K', 'b1').then(() => done.add('b'));
    const c = await tx();
    const cEnq = outbox
      .enqueueMany(c.client, [
        { tenantId: t, type: 'thing.changed', payload: { key: 'K', n: 'c1' }, orderingKey: 'K' },
        { tenantId: t, type: 'thing.changed', payload: { key: 'K', n: 'c2' }, orderingKey: 'K' },
      ])
      .then(() => done.add('c'));
    const d = await tx();
    const dEnq = d.client
      .query(`SELECT hookbox.enqueue($1, 'thing.changed', '{"key":"K","n":"d1"}', NULL, 'K')`, [t])
      .then(() => done.add('d'));
    // E on key L (library and SQL function), and an unordered event, do not wait.
    const e = await tx();
    await e.enqueue(t, 'L', 'e1');
    await e.client.query(`SELECT hookbox.enqueue($1, 'thing.changed', '{"key":"L","n":"e2"}', NULL, 'L')`, [t]);
    await outbox.enqueue(e.client, { tenantId: t, type: 'thing.changed', payload: { n: 'plain' } });
    await sleep(200);
    expect([...done]).toEqual([]);
    await e.commit();
    await a.commit();
    // B, C and D now take K one after the other: each commits once it has it.
    const pending = new Map([
      ['b', b],
      ['c', c],
      ['d', d],
    ]);
    while (pending.size > 0) {
      await waitFor(() => [...done].some((x) => pending.has(x)), { what: 'the next holder of K' });
      for (const x of [...done]) {
        const holder = pending.get(x);
        if (!holder) continue;
        pending.delete(x);
        await holder.commit();
      }
    }
    await Promise.all([bEnq, cEnq, dEnq]);
    // Enqueue wrote no counter row; fan-out numbers K in commit order: a1, then B, C, D in
    // the order they got the lock (each committed before the next could take it).
    expect((await db.pool.query('SELECT count(*)::int AS n FROM hookbox.ordering_keys')).rows[0].n).toBe(keysBefore);
    const seqs = await seqsByLabel(db.pool, t);
    expect(seqs.get('a1')).toBe(1);
    expect(new Set(['b1', 'c1', 'c2', 'd1'].map((n) => seqs.get(n)))).toEqual(new Set([2, 3, 4, 5]));
    expect((seqs.get('c2') ?? 0) - (seqs.get('c1') ?? 0)).toBe(1);
    expect([seqs.get('e1'), seqs.get('e2')]).toEqual([1, 2]);
  });

  it("fan-out defers a key's event while a lower one of the key is held by another fan-out", async () => {
    const t = tenant();
    const ev = (key: string, n: string) => ({
      tenantId: t,
      type: 'thing.changed',
      payload: { key, n },
      orderingKey: key,
    });
    const [first] = await outbox.enqueueMany(db.pool, [ev('K', 'k1'), ev('K', 'k2'), ev('L', 'l1')]);
    // Another relay's fan-out holds k1 (FOR UPDATE, as its SKIP LOCKED claim does).
    const other = await tx();
    await other.client.query('SELECT id FROM hookbox.events WHERE id = $1 FOR UPDATE', [first?.id]);
    const res = await fanOut(db.pool, 100, 60_000);
    // k2 must not be numbered ahead of k1: only L's event went out.
    expect(res.events).toBe(1);
    expect(res.orderingKeys).toEqual([[t, 'L']]);
    const { rows } = await db.pool.query(
      `SELECT payload->>'n' AS n, ordering_seq, fanned_out_at IS NOT NULL AS out FROM hookbox.events
       WHERE tenant_id = $1 ORDER BY pos`,
      [t],
    );
    expect(rows).toEqual([
      { n: 'k1', ordering_seq: null, out: false },
      { n: 'k2', ordering_seq: null, out: false },
      { n: 'l1', ordering_seq: '1', out: true },
    ]);
    await other.rollback();
    expect(Object.fromEntries(await seqsByLabel(db.pool, t))).toEqual({ k1: 1, k2: 2, l1: 1 });
  });

  it('refuses bad ordering keys with a ValidationError naming the field and rule, writing nothing', async () => {
    const t = tenant();
    const bad: [unknown, string][] = [
      ['', 'max_length'],
      ['x'.repeat(256), 'max_length'],
      [42, 'type'],
      ['a\nb', 'control_chars'],
      ['a\u0000b', 'control_chars'],
      ['a\u009bb', 'control_chars'],
      ['a\ud800b', 'unicode'],
    ];
    for (const [orderingKey, rule] of bad) {
      await inRolledBackTx(db.pool, async (c) => {
        const err = await outbox
          .enqueue(c, { tenantId: t, type: 'thing.changed', payload: {}, orderingKey: orderingKey as string })
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ValidationError);
        expect((err as ValidationError).field).toBe('orderingKey');
        expect((err as ValidationError).rule).toBe(rule);
        const many = await outbox
          .enqueueMany(c, [
            { tenantId: t, type: 'thing.changed', payload: {}, orderingKey: 'ok' },
            { tenantId: t, type: 'thing.changed', payload: {}, orderingKey: orderingKey as string },
          ])
          .catch((e: unknown) => e);
        expect((many as ValidationError).field).toBe('events[1].orderingKey');
        const { rows } = await c.query(
          `SELECT (SELECT count(*) FROM hookbox.events WHERE tenant_id = $1)::int AS events,
                  (SELECT count(*) FROM hookbox.ordering_keys WHERE tenant_id = $1)::int AS keys`,
          [t],
        );
        expect(rows[0]).toEqual({ events: 0, keys: 0 });
      });
    }
    // The SQL function applies the same rules (strings only: SQL has no number-typed key here).
    for (const [orderingKey] of bad.filter(
      ([k]) => typeof k === 'string' && !k.includes('\u0000') && !k.includes('\ud800'),
    )) {
      const err = await db.pool
        .query(`SELECT hookbox.enqueue($1, 'thing.changed', '{}', NULL, $2)`, [t, orderingKey])
        .catch((e: unknown) => e);
      expect((err as { code?: string }).code).toBe('22023');
      expect(String((err as Error).message)).toMatch(/orderingKey/);
    }
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM hookbox.events WHERE tenant_id = $1', [t]);
    expect(rows[0].n).toBe(0);
  });
});

describe('delivery in order per (subscription, key)', () => {
  it('concurrent producers, some rolling back: every subscription receives each key in commit order', async () => {
    const rx = await receiver();
    const t = tenant();
    // Endpoints that answer at different speeds, so deliveries would overtake each other.
    rx.on('/slow', () => ({ delayMs: Math.floor(Math.random() * 15) }));
    const fast = await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/fast'), eventTypes: ['*'] });
    const slow = await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/slow'), eventTypes: ['*'] });
    relay({ concurrency: 8, batchSize: 7 });

    const keys = ['k1', 'k2', 'k3'];
    const committed = new Map<string, string[]>(keys.map((k) => [k, []]));
    let label = 0;
    const producer = async (i: number) => {
      for (let round = 0; round < 6; round++) {
        const key = keys[(i + round) % keys.length] as string;
        const x = await tx();
        const mine: string[] = [];
        const count = 1 + ((i + round) % 2);
        for (let j = 0; j < count; j++) {
          const n = `p${i}-${label++}`;
          await x.enqueue(t, key, n);
          mine.push(n);
        }
        // Hold the key a while, so other producers queue up behind it.
        await sleep(5 + Math.floor(Math.random() * 20));
        if ((i + round) % 4 === 3) await x.rollback();
        else {
          await x.commit();
          committed.get(key)?.push(...mine);
        }
      }
    };
    await Promise.all([0, 1, 2, 3, 4, 5].map(producer));
    const total = [...committed.values()].reduce((s, l) => s + l.length, 0);

    await waitForAllFinal(db.pool, { tenants: [t], atLeast: 2 * total, timeoutMs: 30_000 });
    const seqs = await seqsByLabel(db.pool, t);
    for (const [key, labels] of committed) {
      // Numbers are 1..n in commit order.
      expect(labels.map((n) => seqs.get(n))).toEqual(labels.map((_, i) => i + 1));
      for (const path of ['/fast', '/slow']) {
        expect(arrivals(rx.requests(path)).get(key), `${path} ${key}`).toEqual(labels);
      }
    }
    const reqs = rx.requests();
    expect(reqs.length).toBe(2 * total);
    expect(reqs.every((r) => seqOf(r) === seqs.get(payloadOf(r).n) && keyOf(r) === payloadOf(r).key)).toBe(true);
    // A receiver checking with verify's ordering option finds every key in order, no gaps.
    for (const [path, sub] of [
      ['/fast', fast],
      ['/slow', slow],
    ] as const) {
      const { statuses, lastSeq } = orderingReports(sub.secret, rx.requests(path));
      expect(statuses, path).toEqual(['next']);
      expect(Object.fromEntries(lastSeq)).toEqual(Object.fromEntries(keys.map((k) => [k, committed.get(k)?.length])));
    }
  });

  it('rollbacks and idempotent repeats leave no gap in the seq a receiver gets', async () => {
    const rx = await receiver();
    const t = tenant();
    const sub = await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/a'), eventTypes: ['*'] });
    relay();
    const ev = (n: string, idempotencyKey?: string) => ({
      tenantId: t,
      type: 'thing.changed',
      payload: { key: 'K', n },
      orderingKey: 'K',
      ...(idempotencyKey ? { idempotencyKey } : {}),
    });
    await outbox.enqueue(db.pool, ev('1', 'i1'));
    await outbox.enqueue(db.pool, ev('1-again', 'i1'));
    const rolledBack = await tx();
    await outbox.enqueue(rolledBack.client, ev('rolled-back'));
    await outbox.enqueueMany(rolledBack.client, [ev('rolled-back-2'), ev('rolled-back-3')]);
    await rolledBack.rollback();
    await outbox.enqueueMany(db.pool, [ev('2'), ev('1-in-batch', 'i1'), ev('3', 'i3')]);
    await db.pool.query(
      `SELECT hookbox.enqueue($1, 'thing.changed', '{"key":"K","n":"3-sql"}', idempotency_key => 'i3', ordering_key => 'K')`,
      [t],
    );
    // A repeat racing its first writer: it waits for the key, then finds the event.
    const first = await tx();
    await outbox.enqueue(first.client, ev('4', 'i4'));
    const racing = outbox.enqueue(db.pool, ev('4-racing', 'i4'));
    await sleep(100);
    await first.commit();
    expect((await racing).created).toBe(false);
    const failing = await tx();
    await outbox.enqueue(failing.client, ev('aborted'));
    await failing.client.query('SELECT 1/0').catch(() => undefined);
    await failing.rollback();
    await db.pool.query(`SELECT hookbox.enqueue($1, 'thing.changed', '{"key":"K","n":"5"}', NULL, 'K')`, [t]);

    await waitForAllFinal(db.pool, { tenants: [t], atLeast: 5 });
    const got = rx.requests('/a');
    expect(got.map((r) => payloadOf(r).n)).toEqual(['1', '2', '3', '4', '5']);
    expect(got.map(seqOf)).toEqual([1, 2, 3, 4, 5]);
    expect(orderingReports(sub.secret, got).statuses).toEqual(['next']);
  });

  it('a failing head holds only its key (block), other keys and subscriptions go on; a replay unblocks it', async () => {
    const rx = await receiver();
    const t = tenant();
    let failK1 = true;
    rx.on('/a', (req) => (failK1 && payloadOf(req).n === 'k1-1' ? { status: 500 } : {}));
    const a = await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/a'), eventTypes: ['*'] });
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/b'), eventTypes: ['*'] });
    const events = [];
    for (let n = 1; n <= 4; n++) {
      for (const key of ['k1', 'k2']) {
        events.push({ tenantId: t, type: 'thing.changed', payload: { key, n: `${key}-${n}` }, orderingKey: key });
      }
    }
    events.push({ tenantId: t, type: 'thing.changed', payload: { key: '-', n: 'unordered' } });
    await outbox.enqueueMany(db.pool, events);
    relay();

    await rx.waitFor((all) => all.filter((r) => r.path === '/b').length === 9, { what: 'all of /b' });
    await waitFor(
      async () => {
        const { rows } = await db.pool.query(
          `SELECT status FROM hookbox.deliveries WHERE subscription_id = $1 AND ordering_key = 'k1' AND ordering_seq = 1`,
          [a.id],
        );
        return rows[0]?.status === 'dead' ? true : undefined;
      },
      { what: 'the head of k1 to die' },
    );
    await rx.waitFor((all) => all.filter((r) => r.path === '/a' && payloadOf(r).key !== 'k1').length === 5, {
      what: 'k2 and the unordered event at /a',
    });
    // Give the relay plenty of polls: nothing of k1 after its dead head may go out to /a.
    await sleep(400);
    const aK1 = rx.requests('/a').filter((r) => payloadOf(r).key === 'k1');
    expect(new Set(aK1.map((r) => payloadOf(r).n))).toEqual(new Set(['k1-1']));
    expect(arrivals(rx.requests('/a')).get('k2')).toEqual(['k2-1', 'k2-2', 'k2-3', 'k2-4']);
    expect(arrivals(rx.requests('/b')).get('k1')).toEqual(['k1-1', 'k1-2', 'k1-3', 'k1-4']);

    // Operators see the held key in stats and /metrics.
    const held = (await stats(db.pool, { tenantId: t })).subscriptions.map((x) => [x.url, x.blockedKeys]);
    expect(Object.fromEntries(held)).toEqual({ [rx.url('/a')]: 1, [rx.url('/b')]: 0 });
    const metrics = createMetricsRegistry();
    await sampleGauges(db.pool, metrics.instruments);
    expect((await metrics.instruments.blockedOrderingKeys.get()).values[0]?.value).toBeGreaterThanOrEqual(1);

    // Replay the dead head: it goes out, and the rest of k1 follows in order.
    failK1 = false;
    const { rows } = await db.pool.query(
      `SELECT id FROM hookbox.deliveries WHERE subscription_id = $1 AND ordering_key = 'k1' AND status = 'dead'`,
      [a.id],
    );
    await retryDelivery(db.pool, { tenantId: t, id: rows[0].id });
    await rx.waitFor((all) => all.filter((r) => r.path === '/a' && payloadOf(r).key === 'k1').length === 7, {
      what: 'k1 at /a after the replay',
    });
    const k1 = arrivals(rx.requests('/a')).get('k1') ?? [];
    expect(k1.filter((n) => n !== 'k1-1')).toEqual(['k1-2', 'k1-3', 'k1-4']);
    expect(k1.slice(-4)).toEqual(['k1-1', 'k1-2', 'k1-3', 'k1-4']);
    await waitForAllFinal(db.pool, { tenants: [t], atLeast: 19 });
    expect((await stats(db.pool, { tenantId: t })).subscriptions.map((x) => x.blockedKeys)).toEqual([0, 0]);
  });

  it('policy skip: a dead head does not hold its key', async () => {
    const rx = await receiver();
    const t = tenant();
    rx.on('/a', (req) => (payloadOf(req).n === 'k1-1' ? { status: 500 } : {}));
    await subscriptions.create(db.pool, {
      tenantId: t,
      url: rx.url('/a'),
      eventTypes: ['*'],
      orderingOnDead: 'skip',
    });
    await outbox.enqueueMany(
      db.pool,
      [1, 2, 3].map((n) => ({
        tenantId: t,
        type: 'thing.changed',
        payload: { key: 'k1', n: `k1-${n}` },
        orderingKey: 'k1',
      })),
    );
    relay();
    const final = await waitForAllFinal(db.pool, { tenants: [t], atLeast: 3 });
    expect(final.map((d) => d.status).sort()).toEqual(['dead', 'succeeded', 'succeeded']);
    const order = (arrivals(rx.requests('/a')).get('k1') ?? []).filter((n, i, all) => all.indexOf(n) === i);
    expect(order).toEqual(['k1-1', 'k1-2', 'k1-3']);
  });

  it('two relays on one database keep each key in order', async () => {
    const rx = await receiver();
    const t = tenant();
    rx.on('/a', () => ({ delayMs: Math.floor(Math.random() * 10) }));
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/a'), eventTypes: ['*'] });
    const keys = ['k1', 'k2', 'k3', 'k4'];
    const expected = new Map<string, string[]>(keys.map((k) => [k, []]));
    relay({ batchSize: 5 });
    relay({ batchSize: 5 });
    for (let round = 0; round < 10; round++) {
      const batch = [];
      for (const key of keys) {
        for (let j = 0; j < 2; j++) {
          const n = `${key}-${round}-${j}`;
          expected.get(key)?.push(n);
          batch.push({ tenantId: t, type: 'thing.changed', payload: { key, n }, orderingKey: key });
        }
      }
      await outbox.enqueueMany(db.pool, batch);
      await sleep(10);
    }
    await waitForAllFinal(db.pool, { tenants: [t], atLeast: 80, timeoutMs: 30_000 });
    const got = arrivals(rx.requests('/a'));
    for (const key of keys) expect(got.get(key), key).toEqual(expected.get(key));
  });

  it('a relay killed with SIGKILL mid-stream: the next one goes on in order (only the in-flight head may come twice)', async () => {
    const rx = await receiver();
    const t = tenant();
    rx.on('/a', () => ({ delayMs: Math.floor(Math.random() * 30) }));
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/a'), eventTypes: ['*'] });
    const keys = ['k1', 'k2', 'k3'];
    const events = [];
    for (let n = 1; n <= 15; n++) {
      for (const key of keys) {
        events.push({ tenantId: t, type: 'thing.changed', payload: { key, n: String(n) }, orderingKey: key });
      }
    }
    await outbox.enqueueMany(db.pool, events);
    const first = spawnRelayCli(db.url);
    await rx
      .waitFor((all) => all.length >= 12, { what: 'a dozen deliveries', timeoutMs: 30_000 })
      .catch((err: Error) => {
        throw new Error(`${err.message}\n${first.stderr()}\n${first.stdout().slice(-2000)}`);
      });
    await first.kill();
    const second = spawnRelayCli(db.url);
    defer(() => second.kill());
    await waitForAllFinal(db.pool, { tenants: [t], atLeast: 45, timeoutMs: 30_000 });
    for (const key of keys) {
      const seqs = rx
        .requests('/a')
        .filter((r) => keyOf(r) === key)
        .map(seqOf);
      // Each request is the head again (a redelivery) or the next one: never back, never a skip.
      let last = 0;
      for (const s of seqs) {
        expect([last, last + 1], `${key}: ${seqs.join(',')}`).toContain(s);
        last = s;
      }
      expect(last).toBe(15);
    }
  });
});

describe('promotion', () => {
  /** One key's chain of three fanned-out events: seq 1 finished, seq 2 and 3 parked behind it. */
  const chain = (t: string, subscriptionId: string, key: string) =>
    orderedChain(db.pool, outbox, { tenantId: t, subscriptionId, key, head: 'succeeded' });
  const row = async (id: number) =>
    (
      await db.pool.query(
        `SELECT attempts, locked_until IS NOT NULL AS leased, next_attempt_at <= now() AS due,
                next_attempt_at = 'infinity' AS parked
         FROM hookbox.deliveries WHERE id = $1`,
        [id],
      )
    ).rows[0];

  it('leases the heads it promotes to the promoting relay, within its room; the rest only come due', async () => {
    const t = tenant();
    const sub = await subscriptions.create(db.pool, { tenantId: t, url: 'https://example.com/a', eventTypes: ['*'] });
    const k1 = await chain(t, sub.id, 'k1');
    const k2 = await chain(t, sub.id, 'k2');
    const lease = { leaseMs: 60_000, limit: 1 };

    const first = await promoteHeads(
      db.pool,
      [
        [t, 'k1'],
        [t, 'k2'],
      ],
      [],
      false,
      lease,
    );
    expect(first.promoted).toBe(2);
    // Room for one: it is leased and returned, attempt 1; the other head is only due.
    expect(first.claimed).toHaveLength(1);
    const [claim] = first.claimed;
    expect(claim).toMatchObject({ attempt: 1, orderingSeq: 2, subscriptionId: sub.id, tenantId: t, probe: false });
    expect(JSON.parse(claim!.payload)).toMatchObject({ n: '2' });
    const leasedId = claim!.deliveryId;
    const dueId = leasedId === k1.get(2) ? (k2.get(2) as number) : (k1.get(2) as number);
    expect(await row(leasedId)).toEqual({ attempts: 1, leased: true, due: false, parked: false });
    expect(await row(dueId)).toEqual({ attempts: 0, leased: false, due: true, parked: false });
    // Seq 3 stays parked; promoting again changes nothing (the heads are in flight or due).
    expect(await row(k1.get(3) as number)).toMatchObject({ parked: true });
    expect(
      await promoteHeads(
        db.pool,
        [
          [t, 'k1'],
          [t, 'k2'],
        ],
        [],
        true,
        lease,
      ),
    ).toEqual({ promoted: 0, claimed: [] });
  });

  it('leases nothing for a subscription whose circuit is not closed, or that the relay left out', async () => {
    const t = tenant();
    const open = await subscriptions.create(db.pool, { tenantId: t, url: 'https://example.com/o', eventTypes: ['*'] });
    const parked = await subscriptions.create(db.pool, {
      tenantId: t,
      url: 'https://example.com/p',
      eventTypes: ['*'],
    });
    const kOpen = await chain(t, open.id, 'k1');
    const kParked = await chain(t, parked.id, 'k2');
    await db.pool.query(
      `UPDATE hookbox.subscriptions SET circuit_open_until = now() + interval '1 hour', circuit_cooldown_ms = 1000 WHERE id = $1`,
      [open.id],
    );
    const res = await promoteHeads(
      db.pool,
      [
        [t, 'k1'],
        [t, 'k2'],
      ],
      [],
      false,
      {
        leaseMs: 60_000,
        limit: 10,
        excludeSubscriptions: [parked.id],
      },
    );
    expect(res).toEqual({ promoted: 2, claimed: [] });
    // Both made due for the due claim (which holds the open circuit's, or probes it).
    expect(await row(kOpen.get(2) as number)).toEqual({ attempts: 0, leased: false, due: true, parked: false });
    expect(await row(kParked.get(2) as number)).toEqual({ attempts: 0, leased: false, due: true, parked: false });
  });
});
