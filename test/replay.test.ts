/**
 * Replay and recovery against a real PostgreSQL and real HTTP receivers: a retried delivery
 * is a new delivery (replay_of set, history intact) that a running relay delivers; an event
 * replays to the subscriptions that match it now; bulk recovery counts, dry-runs without
 * writing and never replays a delivery twice; every function refuses another tenant's ids.
 */
import { randomUUID } from 'node:crypto';
import { type HookboxError, NotFoundError, subscriptions, ValidationError } from '@hookbox/outbox';
import { deliveryOutcome, recoverDead, replayEvent, retryDelivery, sendTest } from '@hookbox/outbox/admin';
import { describe, expect, it } from 'vitest';
import { useRelayFixture } from './harness/fixture.js';
import { attempts, deliveries, enqueueEvents, waitFor } from './harness/relay.js';

const { db, tenant, receiver, relay } = useRelayFixture();
// Seeded rows point at the discard port: if a relay ever tries them, nothing answers.
const NOWHERE = 'http://127.0.0.1:9/nowhere';

async function sub(tenantId: string, eventTypes: string[] = ['*'], url = NOWHERE): Promise<string> {
  return (await subscriptions.create(db.pool, { tenantId, url, eventTypes })).id;
}

/** A fanned-out event, written directly (its deliveries are seeded separately). */
async function event(tenantId: string, type = 'message.new', fannedOut = true): Promise<string> {
  const { rows } = await db.pool.query(
    `INSERT INTO hookbox.events (tenant_id, type, payload, fanned_out_at)
     VALUES ($1, $2, '{"seeded":true}', CASE WHEN $3 THEN now() END) RETURNING id`,
    [tenantId, type, fannedOut],
  );
  return rows[0].id;
}

interface Seed {
  status?: 'pending' | 'succeeded' | 'dead' | 'cancelled';
  attempts?: number;
  lastError?: string | null;
  /** Lease end, ms from now (a running attempt); null for none. */
  leaseMs?: number | null;
  /** Next try, ms from now (pending rows). */
  dueInMs?: number;
  /** completed_at, ms ago (final rows). */
  completedAgoMs?: number;
  replayOf?: number | null;
}

/** A delivery in exactly the given state, written directly. */
async function delivery(eventId: string, subscriptionId: string, tenantId: string, s: Seed = {}): Promise<number> {
  const status = s.status ?? 'dead';
  const { rows } = await db.pool.query(
    `INSERT INTO hookbox.deliveries
       (event_id, subscription_id, tenant_id, status, attempts, last_error, locked_until, next_attempt_at,
        completed_at, replay_of)
     VALUES ($1, $2, $3, $4, $5, $6,
       CASE WHEN $7::float8 IS NULL THEN NULL ELSE now() + $7::float8 * interval '1 ms' END,
       CASE WHEN $7::float8 IS NOT NULL THEN now() + $7::float8 * interval '1 ms'
            ELSE now() + $8::float8 * interval '1 ms' END,
       CASE WHEN $4 = 'pending' THEN NULL ELSE now() - $9::float8 * interval '1 ms' END, $10)
     RETURNING id`,
    [
      eventId,
      subscriptionId,
      tenantId,
      status,
      s.attempts ?? (status === 'pending' ? 0 : 3),
      s.lastError === undefined ? (status === 'dead' ? 'http_status: HTTP 500' : null) : s.lastError,
      s.leaseMs ?? null,
      s.dueInMs ?? 0,
      s.completedAgoMs ?? 60_000,
      s.replayOf ?? null,
    ],
  );
  return Number(rows[0].id);
}

async function row(id: number) {
  return (await deliveries(db.pool, 'id = $1', [id]))[0];
}

async function count(where = 'true', params: unknown[] = []): Promise<number> {
  const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM hookbox.deliveries WHERE ${where}`, params);
  return rows[0].n;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

async function expectRule(p: Promise<unknown>, field: string, rule: string): Promise<void> {
  const err = await rejection(p);
  expect(err).toBeInstanceOf(ValidationError);
  expect({ field: (err as ValidationError).field, rule: (err as ValidationError).rule }).toEqual({ field, rule });
}

async function expectNotFound(p: Promise<unknown>): Promise<void> {
  const err = await rejection(p);
  expect(err).toBeInstanceOf(NotFoundError);
  expect((err as HookboxError).code).toBe('HOOKBOX_NOT_FOUND');
}

describe('retryDelivery', () => {
  it('turns a dead delivery into a new one (replay_of set) that a running relay delivers; history stays', async () => {
    const rx = await receiver();
    rx.on('/hook', { status: 500 });
    const t = tenant();
    const s = await sub(t, ['message.*'], rx.url('/hook'));
    const [eventId] = await enqueueEvents(db.pool, [{ tenantId: t, type: 'message.new', payload: { n: 1 } }]);
    const r = relay({ retry: { maxAttempts: 1 } });
    const dead = await waitFor(
      async () => (await deliveries(db.pool, 'tenant_id = $1', [t])).find((d) => d.status === 'dead'),
      {
        what: 'the delivery to die',
      },
    );
    expect(dead.attempts).toBe(1);

    rx.on('/hook', { status: 204 });
    const { delivery, created } = await retryDelivery(db.pool, { tenantId: t, id: dead.id });
    expect(created).toBe(true);
    expect(delivery).toMatchObject({ eventId, subscriptionId: s, tenantId: t, status: 'pending', replayOf: dead.id });
    expect(delivery.id).toBeGreaterThan(dead.id);

    const done = await waitFor(
      async () => {
        const d = await row(delivery.id);
        return d?.status === 'succeeded' ? d : undefined;
      },
      { what: 'the replay to be delivered' },
    );
    expect(done.attempts).toBe(1);
    await r.stop();

    // The endpoint got the event twice (same webhook-id): the failed try, then the replay.
    const got = rx.requests('/hook');
    expect(got.map((q) => q.headers['webhook-id'])).toEqual([eventId, eventId]);
    expect(JSON.parse(got[1]!.body).data).toEqual({ n: 1 });
    // The dead delivery and its attempt are untouched; the replay has its own attempt.
    expect(await row(dead.id)).toMatchObject({ status: 'dead', attempts: 1, lastStatus: 500 });
    expect((await attempts(db.pool, dead.id)).map((a) => a.statusCode)).toEqual([500]);
    expect((await attempts(db.pool, delivery.id)).map((a) => a.statusCode)).toEqual([204]);
    const { rows } = await db.pool.query('SELECT replay_of FROM hookbox.deliveries WHERE id = $1', [delivery.id]);
    expect(Number(rows[0].replay_of)).toBe(dead.id);

    // Delivered now: neither the dead one nor the replay may be retried again.
    await expectRule(retryDelivery(db.pool, { tenantId: t, id: dead.id }), 'id', 'already_replayed');
    await expectRule(retryDelivery(db.pool, { tenantId: t, id: delivery.id }), 'id', 'succeeded');
    expect(await count('tenant_id = $1', [t])).toBe(2);
  });

  it('replaces a failed pending delivery waiting for its next try, and cancels the old one', async () => {
    const t = tenant();
    const s = await sub(t);
    const e = await event(t);
    const waiting = await delivery(e, s, t, {
      status: 'pending',
      attempts: 2,
      lastError: 'timeout: no answer',
      dueInMs: 3_600_000,
    });
    const { delivery: replay, created } = await retryDelivery(db.pool, { tenantId: t, id: String(waiting) });
    expect(created).toBe(true);
    expect(replay).toMatchObject({ replayOf: waiting, status: 'pending', eventId: e, subscriptionId: s });
    const old = await row(waiting);
    expect(old?.status).toBe('cancelled');
    expect(old?.lastError).toBe('superseded by a manual retry; last error: timeout: no answer');
    // Due now, not leased: the next claim takes it.
    const fresh = await row(replay.id);
    expect(fresh?.lockedUntil).toBeNull();
    expect(fresh!.nextAttemptAt.getTime()).toBeLessThanOrEqual(Date.now() + 1_000);
  });

  it('returns the pending delivery instead of adding a second one', async () => {
    const t = tenant();
    const s = await sub(t);
    const e = await event(t);
    const dead = await delivery(e, s, t, { status: 'dead' });
    const first = await retryDelivery(db.pool, { tenantId: t, id: dead });
    const again = await retryDelivery(db.pool, { tenantId: t, id: dead });
    expect(again).toEqual({ delivery: first.delivery, created: false });
    expect(await count('event_id = $1', [e])).toBe(2);
  });

  it('refuses a delivery that is in flight, pending without a failure, or whose endpoint is disabled', async () => {
    const t = tenant();
    const s = await sub(t);
    const e1 = await event(t);
    const leased = await delivery(e1, s, t, { status: 'pending', attempts: 2, lastError: 'x', leaseMs: 60_000 });
    await expectRule(retryDelivery(db.pool, { tenantId: t, id: leased }), 'id', 'in_flight');
    const e2 = await event(t);
    const fresh = await delivery(e2, s, t, { status: 'pending', attempts: 0, lastError: null });
    await expectRule(retryDelivery(db.pool, { tenantId: t, id: fresh }), 'id', 'pending');

    const off = await sub(t);
    const e3 = await event(t);
    const dead = await delivery(e3, off, t, { status: 'dead' });
    await subscriptions.disable(db.pool, { tenantId: t, id: off, reason: 'test' });
    await expectRule(retryDelivery(db.pool, { tenantId: t, id: dead }), 'id', 'subscription_disabled');
    // Nothing was written by any refusal, and the leased row is as it was.
    expect(await count('tenant_id = $1', [t])).toBe(3);
    expect((await row(leased))?.status).toBe('pending');
  });

  it("treats another tenant's delivery, an unknown id and a malformed id as not found", async () => {
    const t = tenant();
    const s = await sub(t);
    const dead = await delivery(await event(t), s, t, { status: 'dead' });
    await expectNotFound(retryDelivery(db.pool, { tenantId: tenant(), id: dead }));
    await expectNotFound(retryDelivery(db.pool, { tenantId: t, id: 987_654_321 }));
    await expectNotFound(retryDelivery(db.pool, { tenantId: t, id: '12; DROP TABLE x' }));
    expect(await count('tenant_id = $1', [t])).toBe(1);
  });
});

describe('replayEvent', () => {
  it('creates one new delivery per current matching active subscription, which the relay delivers', async () => {
    const rx = await receiver();
    const t = tenant();
    const a = await sub(t, ['message.*'], rx.url('/a'));
    const b = await sub(t, ['*'], rx.url('/b'));
    await sub(t, ['order.*'], rx.url('/no-match'));
    const disabled = await sub(t, ['*'], rx.url('/disabled'));
    await subscriptions.disable(db.pool, { tenantId: t, id: disabled });
    const other = tenant();
    await sub(other, ['*'], rx.url('/other-tenant'));

    const e = await event(t, 'message.new');
    const earlier = await delivery(e, a, t, { status: 'succeeded', lastError: null });
    const result = await replayEvent(db.pool, { tenantId: t, eventId: e });
    expect(result.eventId).toBe(e);
    expect(result.alreadyPending).toEqual([]);
    const bySub = new Map(result.created.map((d) => [d.subscriptionId, d]));
    expect([...bySub.keys()].sort()).toEqual([a, b].sort());
    expect(bySub.get(a)).toMatchObject({ replayOf: earlier, status: 'pending', eventId: e, tenantId: t });
    expect(bySub.get(b)?.replayOf).toBeNull();
    // The earlier delivery is untouched.
    expect((await row(earlier))?.status).toBe('succeeded');

    // Again while they are pending: nothing doubled.
    const again = await replayEvent(db.pool, { tenantId: t, eventId: e });
    expect(again.created).toEqual([]);
    expect(again.alreadyPending.map((d) => d.id).sort()).toEqual(result.created.map((d) => d.id).sort());

    relay();
    await rx.waitFor((all) => all.length >= 2, { what: 'the two replays' });
    await waitFor(async () => (await count('event_id = $1 AND status = $2', [e, 'pending'])) === 0, {
      what: 'the replays to finish',
    });
    const got = rx.requests();
    expect(got.map((q) => q.path).sort()).toEqual(['/a', '/b']);
    expect(got.every((q) => q.headers['webhook-id'] === e)).toBe(true);
    expect(await count('event_id = $1 AND status = $2', [e, 'succeeded'])).toBe(3);
  });

  it('replays to one given subscription, and refuses one that is disabled, does not match, or is not the tenant’s', async () => {
    const t = tenant();
    const a = await sub(t, ['message.*']);
    const b = await sub(t, ['*']);
    const orders = await sub(t, ['order.*']);
    const off = await sub(t, ['*']);
    await subscriptions.disable(db.pool, { tenantId: t, id: off });
    const foreign = await sub(tenant(), ['*']);
    const e = await event(t, 'message.new');

    const one = await replayEvent(db.pool, { tenantId: t, eventId: e, subscriptionId: b });
    expect(one.created.map((d) => d.subscriptionId)).toEqual([b]);
    await expectRule(
      replayEvent(db.pool, { tenantId: t, eventId: e, subscriptionId: orders }),
      'subscriptionId',
      'no_match',
    );
    await expectRule(
      replayEvent(db.pool, { tenantId: t, eventId: e, subscriptionId: off }),
      'subscriptionId',
      'subscription_disabled',
    );
    await expectNotFound(replayEvent(db.pool, { tenantId: t, eventId: e, subscriptionId: foreign }));
    expect(await count('event_id = $1', [e])).toBe(1);
    expect(a).toBeTruthy();
  });

  it("refuses an event not fanned out yet, another tenant's event and an unknown one", async () => {
    const t = tenant();
    await sub(t);
    const pendingEvent = await event(t, 'message.new', false);
    await expectRule(replayEvent(db.pool, { tenantId: t, eventId: pendingEvent }), 'eventId', 'not_fanned_out');
    const e = await event(t);
    await expectNotFound(replayEvent(db.pool, { tenantId: tenant(), eventId: e }));
    await expectNotFound(replayEvent(db.pool, { tenantId: t, eventId: randomUUID() }));
    await expectNotFound(replayEvent(db.pool, { tenantId: t, eventId: 'not-a-uuid' }));
    expect(await count('tenant_id = $1', [t])).toBe(0);
  });
});

describe('recoverDead', () => {
  const HOUR = 3_600_000;

  /**
   * Tenant `t`: 11 dead deliveries match with no filter — 8 replayable (5 + 1 whose replay
   * was cancelled on s1, 2 on s2), 2 already replayed (a later delivery succeeded / is
   * pending), 1 to a disabled subscription — plus rows that must never match.
   */
  async function world() {
    const t = tenant();
    const s1 = await sub(t);
    const s2 = await sub(t);
    const s3 = await sub(t);
    const replayable: number[] = [];
    for (let i = 0; i < 5; i++) {
      replayable.push(await delivery(await event(t), s1, t, { completedAgoMs: i < 2 ? 72 * HOUR : 10 * 60_000 }));
    }
    const e1 = await event(t);
    const replayedOk = await delivery(e1, s1, t);
    await delivery(e1, s1, t, { status: 'succeeded', lastError: null, replayOf: replayedOk });
    const e2 = await event(t);
    const replayedPending = await delivery(e2, s1, t);
    await delivery(e2, s1, t, { status: 'pending', replayOf: replayedPending });
    const e3 = await event(t);
    const cancelledReplay = await delivery(e3, s1, t);
    await delivery(e3, s1, t, { status: 'cancelled', replayOf: cancelledReplay });
    replayable.push(cancelledReplay);
    for (let i = 0; i < 2; i++) replayable.push(await delivery(await event(t), s2, t));
    const toDisabled = await delivery(await event(t), s3, t);
    await subscriptions.disable(db.pool, { tenantId: t, id: s3 });
    // Never matched: not dead.
    await delivery(await event(t), s1, t, { status: 'succeeded', lastError: null });
    await delivery(await event(t), s1, t, { status: 'cancelled' });
    await delivery(await event(t), s1, t, { status: 'pending', attempts: 1, lastError: 'x' });
    // Another tenant's dead deliveries.
    const u = tenant();
    const us = await sub(u);
    for (let i = 0; i < 2; i++) await delivery(await event(u), us, u);
    return { t, s1, s2, s3, u, us, replayable, toDisabled };
  }

  it('dry run counts what it would replay, with filters, and writes nothing', async () => {
    const w = await world();
    const before = await count();
    const all = await recoverDead(db.pool, { tenantId: w.t, dryRun: true, batchSize: 3 });
    expect(all).toMatchObject({
      matched: 11,
      replayed: 8,
      alreadyReplayed: 2,
      subscriptionDisabled: 1,
      batches: 4,
      limitReached: false,
      dryRun: true,
    });
    // It says which endpoints the replay would go to: every one the tenant's, adding up.
    expect(all.bySubscription.length).toBeGreaterThan(0);
    expect(all.bySubscription.every((e) => e.tenantId === w.t && e.url.startsWith('http'))).toBe(true);
    expect(all.bySubscription.reduce((sum, e) => sum + e.count, 0)).toBe(8);
    expect((await recoverDead(db.pool, { tenantId: w.t, dryRun: true, subscriptionId: w.s2 })).bySubscription).toEqual([
      expect.objectContaining({ subscriptionId: w.s2, count: 2 }),
    ]);
    const dayAgo = new Date(Date.now() - 24 * HOUR);
    expect(await recoverDead(db.pool, { tenantId: w.t, dryRun: true, since: dayAgo })).toMatchObject({
      matched: 9,
      replayed: 6,
    });
    expect(await recoverDead(db.pool, { tenantId: w.t, dryRun: true, until: dayAgo })).toMatchObject({
      matched: 2,
      replayed: 2,
    });
    expect(await recoverDead(db.pool, { tenantId: w.t, dryRun: true, subscriptionId: w.s2 })).toMatchObject({
      matched: 2,
      replayed: 2,
    });
    expect(await recoverDead(db.pool, { tenantId: w.t, dryRun: true, limit: 4, batchSize: 3 })).toMatchObject({
      replayed: 4,
      limitReached: true,
    });
    expect(await recoverDead(db.pool, { allTenants: true, dryRun: true, subscriptionId: w.us })).toMatchObject({
      matched: 2,
      replayed: 2,
    });
    expect(await count()).toBe(before);
  });

  it('a dryRun that is not a boolean is refused, and nothing is replayed', async () => {
    const w = await world();
    const before = await count();
    for (const dryRun of ['true', 1, 'yes']) {
      const err = await recoverDead(db.pool, { tenantId: w.t, dryRun: dryRun as never }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ValidationError);
      expect(err).toMatchObject({ field: 'dryRun', rule: 'type' });
    }
    expect(await count()).toBe(before);
  });

  it('replays in batches, respects the limit, and replays nothing twice when run again', async () => {
    const w = await world();
    const progress: number[] = [];
    const first = await recoverDead(db.pool, {
      tenantId: w.t,
      limit: 3,
      batchSize: 2,
      onProgress: (p) => progress.push(p.replayed),
    });
    expect(first).toMatchObject({ replayed: 3, limitReached: true, dryRun: false });
    expect(progress.at(-1)).toBe(3);
    const rest = await recoverDead(db.pool, { tenantId: w.t, batchSize: 2 });
    expect(rest).toMatchObject({
      matched: 11,
      replayed: 5,
      alreadyReplayed: 5,
      subscriptionDisabled: 1,
      limitReached: false,
    });

    // Exactly one new pending delivery per replayable dead one, pointing at it, same event and endpoint.
    const { rows } = await db.pool.query(
      `SELECT n.replay_of, n.event_id = o.event_id AND n.subscription_id = o.subscription_id AS same, n.status
       FROM hookbox.deliveries n JOIN hookbox.deliveries o ON o.id = n.replay_of
       WHERE n.tenant_id = $1 AND o.status = 'dead'`,
      [w.t],
    );
    const replays = rows.filter((r) => r.status === 'pending' && w.replayable.includes(Number(r.replay_of)));
    expect(replays.map((r) => Number(r.replay_of)).sort((x, y) => x - y)).toEqual(
      [...w.replayable].sort((x, y) => x - y),
    );
    expect(replays.every((r) => r.same)).toBe(true);

    const before = await count();
    const again = await recoverDead(db.pool, { tenantId: w.t });
    expect(again).toMatchObject({ matched: 11, replayed: 0, alreadyReplayed: 10, subscriptionDisabled: 1 });
    expect(await count()).toBe(before);
    // The other tenant was never touched.
    expect(await count('tenant_id = $1 AND status = $2', [w.u, 'pending'])).toBe(0);
  });

  it("refuses another tenant's subscription, and a call without a tenant or allTenants", async () => {
    const w = await world();
    await expectNotFound(recoverDead(db.pool, { tenantId: w.t, subscriptionId: w.us }));
    await expectRule(recoverDead(db.pool, {}), 'tenantId', 'required');
    await expectRule(recoverDead(db.pool, { tenantId: w.t, allTenants: true }), 'allTenants', 'conflict');
    await expectRule(recoverDead(db.pool, { tenantId: w.t, batchSize: 0 }), 'batchSize', 'range');
    expect(await count('status = $1 AND tenant_id = ANY($2)', ['pending', [w.t, w.u]])).toBe(2);
  });
});

describe('sendTest and deliveryOutcome', () => {
  it('writes a fanned-out test event with exactly one delivery, to that endpoint only', async () => {
    const t = tenant();
    const target = await sub(t, ['*']);
    await sub(t, ['*']);
    const sent = await sendTest(db.pool, { tenantId: t, subscriptionId: target });
    const rows = await deliveries(db.pool, 'event_id = $1', [sent.eventId]);
    expect(rows.map((d) => [d.id, d.subscriptionId, d.status])).toEqual([[sent.deliveryId, target, 'pending']]);
    const { rows: ev } = await db.pool.query('SELECT type, payload, fanned_out_at FROM hookbox.events WHERE id = $1', [
      sent.eventId,
    ]);
    expect(ev[0].type).toBe('hookbox.ping');
    expect(ev[0].fanned_out_at).not.toBeNull();
    const outcome = await deliveryOutcome(db.pool, { tenantId: t, id: sent.deliveryId });
    expect(outcome).toMatchObject({ id: sent.deliveryId, status: 'pending', attempts: 0, lastAttempt: null });

    await expectNotFound(deliveryOutcome(db.pool, { tenantId: tenant(), id: sent.deliveryId }));
    await expectNotFound(sendTest(db.pool, { tenantId: tenant(), subscriptionId: target }));
    await subscriptions.disable(db.pool, { tenantId: t, id: target });
    await expectRule(
      sendTest(db.pool, { tenantId: t, subscriptionId: target }),
      'subscriptionId',
      'subscription_disabled',
    );
    await expectRule(sendTest(db.pool, { tenantId: t, subscriptionId: target, type: 'Bad Type' }), 'type', 'format');
    expect(await count('tenant_id = $1', [t])).toBe(1);
  });
});
