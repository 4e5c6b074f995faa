/**
 * Operational events travel through hookbox itself: enqueued in the affected tenant by the
 * statement that changed the state, matched only by patterns that name them (`hookbox.*`,
 * the exact type; never `*`), never delivered to the subscription they are about, and a
 * dead delivery of a `hookbox.delivery.dead` event makes no further one. An ordered delivery
 * that dies under policy `block` also makes a `hookbox.ordering.blocked`; under `skip`, not.
 */
import { randomUUID } from 'node:crypto';
import { createOutbox, matchesEventType, subscriptions } from '@hookbox/outbox';
import { afterEach, describe, expect, it } from 'vitest';
import { useTestDatabase } from './harness/db.js';
import { startReceiver } from './harness/receiver.js';
import { enqueueEvents, startRelay, useCleanup, waitForAllFinal } from './harness/relay.js';

const db = useTestDatabase();
const defer = useCleanup(afterEach);
const tenant = () => `op-${randomUUID().slice(0, 8)}`;

async function opEvents(t: string, type?: string) {
  const { rows } = await db.pool.query(
    `SELECT type, payload FROM hookbox.events WHERE tenant_id = $1 AND starts_with(type, 'hookbox.')
       AND ($2::text IS NULL OR type = $2) ORDER BY id`,
    [t, type ?? null],
  );
  return rows as { type: string; payload: Record<string, unknown> }[];
}

const typeOf = (body: string) => (JSON.parse(body) as { type: string }).type;

describe('operational events', () => {
  it('only patterns that name them match: * does not', () => {
    expect(matchesEventType('*', 'hookbox.delivery.dead')).toBe(false);
    expect(matchesEventType('*', 'message.new')).toBe(true);
    expect(matchesEventType('hookbox.*', 'hookbox.delivery.dead')).toBe(true);
    expect(matchesEventType('hookbox.delivery.*', 'hookbox.delivery.dead')).toBe(true);
    expect(matchesEventType('hookbox.delivery.dead', 'hookbox.delivery.dead')).toBe(true);
    expect(matchesEventType('hookbox.subscription.*', 'hookbox.delivery.dead')).toBe(false);
  });

  it('delivery.dead and circuit.opened reach hookbox.* subscriptions, not * ones nor the subscription concerned; no loops', async () => {
    const rx = await startReceiver();
    defer(() => rx.close());
    rx.on('/a', { status: 500 });
    rx.on('/e', { status: 500 });
    const t = tenant();
    const a = await subscriptions.create(db.pool, {
      tenantId: t,
      url: rx.url('/a'),
      eventTypes: ['thing.happened', 'hookbox.*'],
    });
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/b'), eventTypes: ['hookbox.*'] });
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/c'), eventTypes: ['*'] });
    // Its deliveries of delivery.dead events die too: they must not make more of them.
    const e = await subscriptions.create(db.pool, {
      tenantId: t,
      url: rx.url('/e'),
      eventTypes: ['hookbox.delivery.dead'],
    });
    const r = startRelay(db.url, {
      retry: { scheduleMs: [10], maxAttempts: 2 },
      breaker: { failAfter: 3, cooldownMs: 200, maxCooldownMs: 200, disableAfterMs: null },
    });
    defer(() => r.stop());
    const things = await enqueueEvents(
      db.pool,
      Array.from({ length: 3 }, (_, i) => ({ tenantId: t, type: 'thing.happened', payload: { i } })),
    );
    // A's 3 deliveries and C's 3, then 3 delivery.dead events each to B and E.
    await waitForAllFinal(db.pool, { tenants: [t], atLeast: 12, timeoutMs: 40_000 });
    await new Promise((res) => setTimeout(res, 500));
    await waitForAllFinal(db.pool, { tenants: [t], atLeast: 12, timeoutMs: 40_000 });

    // Exactly one delivery.dead per dead delivery of a non-operational event: A's three.
    // E's dead deliveries of delivery.dead events made none.
    const dead = await opEvents(t, 'hookbox.delivery.dead');
    const { rows: deadRows } = await db.pool.query(
      `SELECT d.id::int AS id, ev.type FROM hookbox.deliveries d JOIN hookbox.events ev ON ev.id = d.event_id
       WHERE d.tenant_id = $1 AND d.status = 'dead'`,
      [t],
    );
    const notLoops = deadRows.filter((d) => d.type !== 'hookbox.delivery.dead').map((d) => d.id);
    expect(dead.map((d) => d.payload.deliveryId).sort()).toEqual(notLoops.sort());
    const ofThings = dead.filter((d) => d.payload.eventType === 'thing.happened');
    expect(ofThings.every((d) => d.payload.subscriptionId === a.id)).toBe(true);
    expect(ofThings.map((d) => d.payload.eventId).sort()).toEqual([...things].sort());
    expect(ofThings[0]!.payload).toMatchObject({ tenantId: t, attempts: 2, lastStatus: 500, url: rx.url('/a') });
    const { rows: eDead } = await db.pool.query(
      `SELECT count(*)::int AS n FROM hookbox.deliveries WHERE subscription_id = $1 AND status = 'dead'`,
      [e.id],
    );
    expect(eDead[0].n).toBe(dead.length);
    const opened = await opEvents(t, 'hookbox.circuit.opened');
    expect(opened.map((o) => o.payload.subscriptionId)).toContain(a.id);

    // `*` got only the product events; hookbox.* got the operational ones; A none of them.
    expect(rx.requests('/c').map((q) => typeOf(q.body))).toEqual(Array(3).fill('thing.happened'));
    const toB = rx.requests('/b').map((q) => typeOf(q.body));
    expect(toB.filter((x) => x === 'hookbox.delivery.dead')).toHaveLength(dead.length);
    expect(toB).toContain('hookbox.circuit.opened');
    // A got no event about itself (E's circuit.opened, say, it may get).
    expect(
      rx
        .requests('/a')
        .every((q) => (JSON.parse(q.body) as { data: { subscriptionId?: string } }).data.subscriptionId !== a.id),
    ).toBe(true);
    // No delivery of an operational event to the subscription it is about.
    const { rows: self } = await db.pool.query(
      `SELECT count(*)::int AS n FROM hookbox.deliveries d JOIN hookbox.events ev ON ev.id = d.event_id
       WHERE ev.tenant_id = $1 AND starts_with(ev.type, 'hookbox.') AND ev.payload->>'subscriptionId' = d.subscription_id::text`,
      [t],
    );
    expect(self[0].n).toBe(0);
  }, 120_000);

  it('ordering.blocked: an ordered delivery dead under policy block, not under skip nor unordered; never to the subscription concerned', async () => {
    const rx = await startReceiver();
    defer(() => rx.close());
    rx.on('/a', { status: 500 });
    rx.on('/s', { status: 500 });
    const t = tenant();
    // A asks for its own blocked events: it must not get them (it is what they are about).
    const a = await subscriptions.create(db.pool, {
      tenantId: t,
      url: rx.url('/a'),
      eventTypes: ['thing.changed', 'hookbox.ordering.blocked'],
    });
    const s = await subscriptions.create(db.pool, {
      tenantId: t,
      url: rx.url('/s'),
      eventTypes: ['thing.changed'],
      orderingOnDead: 'skip',
    });
    const o = await subscriptions.create(db.pool, {
      tenantId: t,
      url: rx.url('/o'),
      eventTypes: ['hookbox.ordering.*'],
    });
    const [first] = await createOutbox().enqueueMany(db.pool, [
      { tenantId: t, type: 'thing.changed', payload: { n: 1 }, orderingKey: 'conversation:42' },
      { tenantId: t, type: 'thing.changed', payload: { n: 2 } },
    ]);
    const ordered = first!.id;
    const r = startRelay(db.url, {
      retry: { scheduleMs: [10], maxAttempts: 2 },
      breaker: { failAfter: 100, cooldownMs: 200, maxCooldownMs: 200, disableAfterMs: null },
    });
    defer(() => r.stop());
    // A's 2 and S's 2 dead, then the one ordering.blocked (about A) to O.
    await rx.waitFor((all) => all.some((q) => q.path === '/o'), { what: 'ordering.blocked at /o', timeoutMs: 30_000 });
    await waitForAllFinal(db.pool, { tenants: [t], atLeast: 5, timeoutMs: 30_000 });

    const blocked = await opEvents(t, 'hookbox.ordering.blocked');
    const { rows: head } = await db.pool.query(
      `SELECT id::int AS id FROM hookbox.deliveries WHERE subscription_id = $1 AND event_id = $2`,
      [a.id, ordered],
    );
    expect(blocked.map((b) => b.payload)).toEqual([
      {
        subscriptionId: a.id,
        tenantId: t,
        url: rx.url('/a'),
        orderingKey: 'conversation:42',
        orderingSeq: 1,
        deliveryId: head[0].id,
        eventId: ordered,
        eventType: 'thing.changed',
      },
    ]);
    // Every dead delivery still makes its delivery.dead: A's two and S's two.
    const dead = await opEvents(t, 'hookbox.delivery.dead');
    expect(dead.map((d) => d.payload.subscriptionId).sort()).toEqual([a.id, a.id, s.id, s.id].sort());
    expect(rx.requests('/o').map((q) => typeOf(q.body))).toEqual(['hookbox.ordering.blocked']);
    expect(rx.requests('/a').map((q) => typeOf(q.body))).toEqual(Array(4).fill('thing.changed'));
    const { rows: toO } = await db.pool.query(
      `SELECT count(*)::int AS n FROM hookbox.deliveries WHERE subscription_id = $1 AND status = 'succeeded'`,
      [o.id],
    );
    expect(toO[0].n).toBe(1);
  }, 60_000);

  it('subscription.disabled and .enabled are enqueued with the change, and copied to the operator tenant', async () => {
    const t = tenant();
    const ops = `ops-${randomUUID().slice(0, 8)}`;
    const sub = await subscriptions.create(db.pool, {
      tenantId: t,
      url: 'https://example.com/x',
      eventTypes: ['*'],
    });
    const client = await db.pool.connect();
    try {
      // An operator tenant is a database setting (ALTER DATABASE … SET hookbox.operator_tenant).
      await client.query(`SELECT set_config('hookbox.operator_tenant', $1, false)`, [ops]);
      await client.query('BEGIN');
      await subscriptions.disable(client, { tenantId: t, id: sub.id, reason: 'maintenance' });
      await client.query('ROLLBACK');
      // Rolled back with the change: nothing was enqueued.
      expect(await opEvents(t)).toEqual([]);
      await subscriptions.disable(client, { tenantId: t, id: sub.id, reason: 'maintenance' });
      // Disabling again changes nothing and enqueues nothing.
      await subscriptions.disable(client, { tenantId: t, id: sub.id, reason: 'still' });
      await subscriptions.enable(client, { tenantId: t, id: sub.id });
    } finally {
      await client.query(`SELECT set_config('hookbox.operator_tenant', '', false)`);
      client.release();
    }
    const mine = await opEvents(t);
    expect(mine.map((m) => m.type)).toEqual(['hookbox.subscription.disabled', 'hookbox.subscription.enabled']);
    expect(mine[0]!.payload).toMatchObject({
      subscriptionId: sub.id,
      tenantId: t,
      url: 'https://example.com/x',
      reason: 'maintenance',
      automatic: false,
    });
    expect(mine[0]!.payload.disabledAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    const copies = await opEvents(ops);
    expect(copies).toEqual(mine);
  });
});
