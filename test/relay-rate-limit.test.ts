/**
 * A subscription's rate limit holds across relays (issue #9): two relays share one
 * database and one rate-limited subscription; the receiver's arrival times must never show
 * more than the limit per second (with a generous tolerance: windows are whole seconds of
 * the database's clock, the receiver's are sliding), and work over the limit waits without
 * spending attempts.
 */
import { randomUUID } from 'node:crypto';
import { subscriptions } from '@hookbox/outbox';
import { afterEach, describe, expect, it } from 'vitest';
import { useTestDatabase } from './harness/db.js';
import { startReceiver } from './harness/receiver.js';
import { enqueueEvents, holdInTransaction, startRelay, useCleanup, waitForAllFinal } from './harness/relay.js';

const db = useTestDatabase();
const defer = useCleanup(afterEach);

describe('per-subscription rate limit', () => {
  it('two relays together send at most N requests per second, every delivery on its first attempt', async () => {
    const tenantId = `rate-${randomUUID().slice(0, 8)}`;
    const receiver = await startReceiver();
    defer(() => receiver.close());
    const RATE = 5;
    const EVENTS = 30;
    await subscriptions.create(db.pool, {
      tenantId,
      url: receiver.url('/limited'),
      eventTypes: ['*'],
      rateLimit: RATE,
    });
    // A neighbour without a limit is not held back by it.
    await subscriptions.create(db.pool, { tenantId, url: receiver.url('/free'), eventTypes: ['*'] });
    // Leases far longer than a loaded machine could hold a claim: a lease running out would
    // send a delivery twice and count a second attempt for a reason that is not the limit.
    const a = startRelay(db.url, { leaseMs: 30_000 });
    const b = startRelay(db.url, { leaseMs: 30_000 });
    defer(() => a.stop());
    defer(() => b.stop());
    await enqueueEvents(
      db.pool,
      Array.from({ length: EVENTS }, (_, n) => ({ tenantId, type: 'order.created', payload: { n } })),
    );

    const rows = await waitForAllFinal(db.pool, { tenants: [tenantId], atLeast: 2 * EVENTS, timeoutMs: 60_000 });
    expect(rows.map((d) => d.status)).toEqual(Array(2 * EVENTS).fill('succeeded'));
    // Deferred work spent no attempts: every delivery succeeded on its first.
    const { rows: attempts } = await db.pool.query<{ attempts: number; logged: number }>(
      `SELECT d.attempts, (SELECT count(*)::int FROM hookbox.delivery_attempts a WHERE a.delivery_id = d.id) AS logged
       FROM hookbox.deliveries d WHERE d.tenant_id = $1`,
      [tenantId],
    );
    expect(attempts.every((r) => r.attempts === 1 && r.logged === 1)).toBe(true);

    expect(receiver.requests('/limited')).toHaveLength(EVENTS);
    // When each request was sent (taken right after its token): any sliding second holds at
    // most two windows' worth (a window of the database's clock ends inside it).
    const { rows: sent } = await db.pool.query<{ ms: number }>(
      `SELECT (extract(epoch FROM a.started_at) * 1000)::float8 AS ms
       FROM hookbox.delivery_attempts a JOIN hookbox.deliveries d ON d.id = a.delivery_id
       JOIN hookbox.subscriptions s ON s.id = d.subscription_id
       WHERE d.tenant_id = $1 AND s.rate_limit IS NOT NULL ORDER BY 1`,
      [tenantId],
    );
    const times = sent.map((r) => r.ms);
    expect(times).toHaveLength(EVENTS);
    const mostInOneSecond = Math.max(...times.map((t) => times.filter((u) => u >= t && u < t + 1_000).length));
    expect(mostInOneSecond).toBeLessThanOrEqual(2 * RATE);
    // 30 requests at 5 per second take at least 5 windows after the first.
    expect((times.at(-1) as number) - (times[0] as number)).toBeGreaterThanOrEqual(4_000);
    // The neighbour without a limit got everything.
    expect(receiver.requests('/free')).toHaveLength(EVENTS);
  }, 90_000);

  it('does not send a claim whose lease ran out while it waited for its token', async () => {
    const tenantId = `rate-${randomUUID().slice(0, 8)}`;
    const receiver = await startReceiver();
    defer(() => receiver.close());
    await subscriptions.create(db.pool, { tenantId, url: receiver.url('/held'), eventTypes: ['*'], rateLimit: 100 });
    // The token statement waits behind a lock for longer than a lease, in both relays.
    const blocker = await holdInTransaction(db.pool, defer, 'LOCK TABLE hookbox.rate_windows IN EXCLUSIVE MODE');
    const options = { leaseMs: 1_500, requestTimeoutMs: 500 };
    const a = startRelay(db.url, options);
    const b = startRelay(db.url, options);
    defer(() => a.stop());
    defer(() => b.stop());
    await enqueueEvents(db.pool, [{ tenantId, type: 'order.created', payload: {} }]);
    // One relay claims it and waits for its token; its lease runs out and the other relay
    // claims it again (and waits too).
    await new Promise((r) => setTimeout(r, 3_500));
    await blocker.query('ROLLBACK');
    const rows = await waitForAllFinal(db.pool, { tenants: [tenantId], atLeast: 1, timeoutMs: 20_000 });
    expect(rows.map((d) => d.status)).toEqual(['succeeded']);
    await new Promise((r) => setTimeout(r, 500)); // a second send would land by now
    // Before: both relays sent it once their tokens came, one of them past its lease.
    expect(receiver.requests('/held')).toHaveLength(1);
  }, 40_000);
});
