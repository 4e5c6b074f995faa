import { subscriptions } from '@hookbox/outbox';
import { describe, expect, it } from 'vitest';
import type { IsolationState } from '../apps/relay/src/relay/relay.js';
import { useRelayFixture } from './harness/fixture.js';
import type { Receiver } from './harness/receiver.js';
import { enqueueEvents, startRelay, waitFor, waitForAllFinal } from './harness/relay.js';

const { db, defer, tenant, receiver } = useRelayFixture();

describe('isolation between tenants', () => {
  it("a tenant with more hanging origins than the relay has slots, and erroring endpoints, does not delay another tenant's deliveries", async () => {
    const attacker = tenant('attacker');
    const victim = tenant('victim');
    // 4 origins × 4 connections each = 16 hanging requests > 8 global slots.
    const tarpits: Receiver[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await receiver();
      r.on('/t', { hang: true });
      tarpits.push(r);
      await subscriptions.create(db.pool, { tenantId: attacker, url: r.url('/t'), eventTypes: ['*'] });
    }
    const failing = await receiver();
    for (const path of ['/500?a', '/500?b']) {
      failing.on(path, { status: 500 });
      await subscriptions.create(db.pool, { tenantId: attacker, url: failing.url(path), eventTypes: ['*'] });
    }
    const healthy = await receiver();
    await subscriptions.create(db.pool, { tenantId: victim, url: healthy.url('/v'), eventTypes: ['*'] });

    // Far longer than the test waits: a slot held by a hanging request is only freed by
    // this timeout, so the victim can only be served early if isolation works.
    const states: IsolationState[] = [];
    const relay = startRelay(
      db.url,
      {
        concurrency: 8,
        connectionsPerOrigin: 4,
        requestTimeoutMs: 60_000,
        leaseMs: 120_000,
        // A request in flight for 1 s marks its endpoint slow; slow endpoints share 2 slots.
        slowAfterMs: 1_000,
        slowConcurrency: 2,
        retry: { scheduleMs: [60_000], maxAttempts: 2 },
      },
      { observer: { isolation: (state) => states.push(state) } },
    );
    defer(() => relay.stop());

    await enqueueEvents(
      db.pool,
      Array.from({ length: 40 }, (_, n) => ({ tenantId: attacker, type: 'noise.x', payload: { n } })),
    );
    // Let the attacker's requests take every slot they can get before the victim shows up.
    await waitFor(() => tarpits.reduce((n, t) => n + t.requests().length, 0) >= 4, {
      what: 'hanging requests',
    });
    for (let round = 0; round < 3; round++) {
      await enqueueEvents(
        db.pool,
        Array.from({ length: 5 }, (_, n) => ({ tenantId: victim, type: 'order.created', payload: { round, n } })),
      );
    }
    const rows = await waitForAllFinal(db.pool, { tenants: [victim], atLeast: 15, timeoutMs: 40_000 });
    expect(rows.map((d) => d.status)).toEqual(Array(15).fill('succeeded'));
    expect(healthy.requests('/v')).toHaveLength(15);
    // Every hanging request is still hanging: none of them gave a slot back.
    expect(tarpits.every((t) => t.traces.length === 0)).toBe(true);
    expect(tarpits.reduce((n, t) => n + t.inFlight, 0)).toBeGreaterThan(0);
    // The relay reports what it holds back (hookbox_relay_* gauges) — once the hanging
    // requests have aged into the slow pool, which may come after the victim was served.
    await waitFor(() => states.some((s) => s.slowEndpoints >= 1 && s.slowInFlight >= 1 && s.parkedSubscriptions >= 1), {
      timeoutMs: 20_000,
      what: 'the isolation gauges to show slow endpoints and parked subscriptions',
    });
    expect(tarpits.every((t) => t.traces.length === 0)).toBe(true);
  }, 60_000);

  it('an endpoint first seen gets a few requests at once, and more only as it answers (slow start)', async () => {
    const t = tenant('slowstart');
    const tarpit = await receiver();
    tarpit.on('/t', { hang: true });
    await subscriptions.create(db.pool, { tenantId: t, url: tarpit.url('/t'), eventTypes: ['*'] });
    const healthy = await receiver();
    let open = 0;
    let peak = 0;
    healthy.on('/h', () => {
      open++;
      peak = Math.max(peak, open);
      setTimeout(() => open--, 150);
      return { delayMs: 150 };
    });
    await subscriptions.create(db.pool, { tenantId: t, url: healthy.url('/h'), eventTypes: ['*'] });
    // Plenty of slots and a high per-origin ceiling; requests turn slow only after a minute,
    // so everything a hanging endpoint gets stays in the main pool for the whole test.
    const relay = startRelay(db.url, {
      concurrency: 64,
      connectionsPerOrigin: 32,
      requestTimeoutMs: 60_000,
      leaseMs: 120_000,
      slowAfterMs: 60_000,
      retry: { scheduleMs: [60_000], maxAttempts: 2 },
    });
    defer(() => relay.stop());

    await enqueueEvents(
      db.pool,
      Array.from({ length: 40 }, (_, n) => ({ tenantId: t, type: 'load.x', payload: { n } })),
    );
    // The healthy endpoint answers every request, so its limit climbs past the start of 4.
    await healthy.waitFor((all) => all.length >= 40, { what: "the healthy endpoint's 40 requests" });
    expect(peak).toBeGreaterThan(4);
    // The hanging endpoint never answered: it holds 4 requests, not the 32 its ceiling allows.
    expect(tarpit.inFlight).toBe(4);
    expect(tarpit.requests('/t')).toHaveLength(4);
  }, 60_000);

  it("a tenant with a large backlog of pending events does not hold up another tenant's fan-out", async () => {
    const flooder = tenant('flooder');
    const victim = tenant('victim');
    const healthy = await receiver();
    await subscriptions.create(db.pool, { tenantId: victim, url: healthy.url('/v'), eventTypes: ['*'] });
    // The flooder's backlog matches no endpoint: fanning it out is all the relay does with it.
    await subscriptions.create(db.pool, { tenantId: flooder, url: healthy.url('/f'), eventTypes: ['none.*'] });
    const BACKLOG = 20_000;
    await db.pool.query(
      `INSERT INTO hookbox.events (tenant_id, type, payload)
       SELECT $1, 'flood.x', jsonb_build_object('n', g) FROM generate_series(1, $2) g`,
      [flooder, BACKLOG],
    );
    // Enqueued after the whole backlog: in enqueue order it would be fanned out last.
    const [victimEvent] = await enqueueEvents(db.pool, [{ tenantId: victim, type: 'order.created', payload: {} }]);
    const relay = startRelay(db.url, { batchSize: 100 });
    defer(() => relay.stop());

    await waitFor(
      async () =>
        (
          await db.pool.query('SELECT 1 FROM hookbox.events WHERE tenant_id = $1 AND fanned_out_at IS NULL LIMIT 1', [
            flooder,
          ])
        ).rowCount === 0,
      { timeoutMs: 120_000, what: "the flooder's backlog to be fanned out" },
    );
    await waitForAllFinal(db.pool, { tenants: [victim], atLeast: 1, timeoutMs: 30_000 });
    // How much of the backlog went before the victim's event: each batch takes a bounded
    // share per tenant, so the victim's event goes in the first batch, not after 20,000.
    const { rows } = await db.pool.query<{ before: number }>(
      `SELECT count(*)::int AS before FROM hookbox.events f
       WHERE f.tenant_id = $1 AND f.fanned_out_at < (SELECT fanned_out_at FROM hookbox.events WHERE id = $2)`,
      [flooder, victimEvent],
    );
    expect(rows[0]?.before).toBeLessThan(BACKLOG / 10);
    expect(healthy.requests('/v')).toHaveLength(1);
  }, 180_000);

  it("a tenant whose endpoints are parked is fanned out in its own lane: another tenant's new events never wait for that statement", async () => {
    const noisy = tenant('sidenoisy');
    const quiet = tenant('sidequiet');
    const tarpits: Receiver[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await receiver();
      r.on('/t', { hang: true });
      tarpits.push(r);
      await subscriptions.create(db.pool, { tenantId: noisy, url: r.url('/t'), eventTypes: ['*'] });
    }
    const healthy = await receiver();
    await subscriptions.create(db.pool, { tenantId: quiet, url: healthy.url('/q'), eventTypes: ['*'] });
    // The tenants of each fan-out statement, once the noisy endpoints are parked.
    let watching = false;
    const batches: (readonly string[])[] = [];
    const relay = startRelay(
      db.url,
      {
        concurrency: 8,
        connectionsPerOrigin: 2,
        requestTimeoutMs: 60_000,
        leaseMs: 120_000,
        slowAfterMs: 300,
        slowConcurrency: 2,
      },
      { observer: { fannedOut: (_m, _u, tenants) => watching && batches.push(tenants) } },
    );
    defer(() => relay.stop());

    // Both tenants enqueue in the same transactions, so one fan-out would take both — until
    // the noisy tenant's endpoints are parked.
    const round = (n: number) =>
      enqueueEvents(db.pool, [
        ...Array.from({ length: 5 }, (_, j) => ({ tenantId: noisy, type: 'noise.x', payload: { n, j } })),
        { tenantId: quiet, type: 'order.created', payload: { n } },
      ]);
    // Until the relay parks the noisy tenant's endpoints: its work is handed back, or
    // inserted, unleased and due only after the park.
    const parked = async () =>
      (
        await db.pool.query(
          `SELECT 1 FROM hookbox.deliveries WHERE tenant_id = $1 AND locked_until IS NULL AND status = 'pending'
             AND next_attempt_at > now() + interval '1 second' LIMIT 1`,
          [noisy],
        )
      ).rowCount === 1;
    let n = 0;
    while (!(await parked())) {
      await round(n++);
      await new Promise((r) => setTimeout(r, 100));
      if (n > 200) throw new Error('the noisy endpoints were never parked');
    }
    await round(n++);
    watching = true;
    for (let k = 0; k < 15; k++, n++) {
      await round(n);
      await new Promise((r) => setTimeout(r, 100));
    }
    await waitForAllFinal(db.pool, { tenants: [quiet], atLeast: n, timeoutMs: 30_000 });
    await waitFor(
      async () =>
        (
          await db.pool.query(`SELECT 1 FROM hookbox.events WHERE tenant_id = $1 AND fanned_out_at IS NULL LIMIT 1`, [
            noisy,
          ])
        ).rowCount === 0 || undefined,
      { what: "the noisy tenant's events to be fanned out" },
    );
    // Both tenants' events were fanned out, never in the same statement.
    expect(batches.filter((b) => b.includes(quiet)).length).toBeGreaterThan(0);
    expect(batches.filter((b) => b.includes(noisy)).length).toBeGreaterThan(0);
    expect(batches.filter((b) => b.includes(quiet) && b.includes(noisy))).toEqual([]);
  }, 90_000);

  it("a tenant that bursts to many endpoints next to another tenant goes to the side lane: the other's events stop sharing its statements", async () => {
    const bursty = tenant('bursty');
    const other = tenant('other');
    const r = await receiver();
    for (let i = 0; i < 10; i++) {
      await subscriptions.create(db.pool, { tenantId: bursty, url: r.url(`/b${i}`), eventTypes: ['*'] });
    }
    await subscriptions.create(db.pool, { tenantId: other, url: r.url('/o'), eventTypes: ['*'] });
    const batches: (readonly string[])[] = [];
    const relay = startRelay(
      db.url,
      { concurrency: 64 },
      { observer: { fannedOut: (_m, _u, tenants) => batches.push(tenants) } },
    );
    defer(() => relay.stop());
    // Each round: 5 events × 10 subscriptions = 50 deliveries of the bursty tenant, one of
    // the other, in one transaction — one fan-out would take both.
    const ROUNDS = 12;
    for (let n = 0; n < ROUNDS; n++) {
      await enqueueEvents(db.pool, [
        ...Array.from({ length: 5 }, (_, j) => ({ tenantId: bursty, type: 'burst.x', payload: { n, j } })),
        { tenantId: other, type: 'order.created', payload: { n } },
      ]);
      await new Promise((res) => setTimeout(res, 100));
    }
    await waitForAllFinal(db.pool, { tenants: [other], atLeast: ROUNDS, timeoutMs: 30_000 });
    await waitForAllFinal(db.pool, { tenants: [bursty], atLeast: ROUNDS * 50, timeoutMs: 30_000 });
    // The first statement that took both sends the bursty tenant to the side lane (for 5 s,
    // longer than the rounds take): no other statement takes both.
    expect(batches.filter((b) => b.includes(bursty) && b.includes(other)).length).toBeLessThanOrEqual(1);
    expect(batches.filter((b) => b.includes(other)).length).toBeGreaterThanOrEqual(ROUNDS - 1);
    expect(r.requests().length).toBe(ROUNDS * 51);
  }, 60_000);
});
