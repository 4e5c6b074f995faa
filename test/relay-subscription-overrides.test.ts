/**
 * Per-subscription request timeout and retry schedule (issue #9): a subscription's own
 * values replace the relay's for its deliveries only.
 */
import { randomUUID } from 'node:crypto';
import { subscriptions } from '@hookbox/outbox';
import { afterEach, describe, expect, it } from 'vitest';
import { useTestDatabase } from './harness/db.js';
import { startReceiver } from './harness/receiver.js';
import { enqueueEvents, startRelay, useCleanup, waitFor } from './harness/relay.js';

const db = useTestDatabase();
const defer = useCleanup(afterEach);

async function attemptsOf(subscriptionId: string) {
  const { rows } = await db.pool.query<{
    status: string;
    attempts: number;
    error_class: string | null;
    started_at: Date;
  }>(
    `SELECT d.status, d.attempts, a.error_class, a.started_at
     FROM hookbox.deliveries d JOIN hookbox.delivery_attempts a ON a.delivery_id = d.id
     WHERE d.subscription_id = $1 ORDER BY a.attempt`,
    [subscriptionId],
  );
  return rows;
}

describe('per-subscription overrides', () => {
  it("a subscription's short timeout cuts a request that the relay's default lets finish", async () => {
    const tenantId = `timeout-${randomUUID().slice(0, 8)}`;
    const receiver = await startReceiver();
    defer(() => receiver.close());
    receiver.on('/slow-short', { delayMs: 1_500 });
    receiver.on('/slow-default', { delayMs: 1_500 });
    const short = await subscriptions.create(db.pool, {
      tenantId,
      url: receiver.url('/slow-short'),
      eventTypes: ['*'],
      requestTimeoutMs: 200,
    });
    const plain = await subscriptions.create(db.pool, {
      tenantId,
      url: receiver.url('/slow-default'),
      eventTypes: ['*'],
    });
    const relay = startRelay(db.url, {
      requestTimeoutMs: 10_000,
      leaseMs: 30_000,
      slowAfterMs: 10_000,
      retry: { scheduleMs: [60_000] },
    });
    defer(() => relay.stop());
    await enqueueEvents(db.pool, [{ tenantId, type: 'order.created', payload: {} }]);

    await waitFor(async () => (await attemptsOf(plain.id)).some((a) => a.status === 'succeeded'), {
      timeoutMs: 30_000,
      what: 'the default-timeout delivery to succeed',
    });
    const shortAttempts = await waitFor(
      async () => {
        const rows = await attemptsOf(short.id);
        return rows.length > 0 ? rows : undefined;
      },
      { timeoutMs: 30_000, what: 'the short-timeout attempt' },
    );
    expect(shortAttempts).toHaveLength(1);
    expect(shortAttempts[0]).toMatchObject({ status: 'pending', attempts: 1, error_class: 'timeout' });
  }, 60_000);

  it("a subscription's retry schedule is followed and runs out to dead after its length", async () => {
    const tenantId = `schedule-${randomUUID().slice(0, 8)}`;
    const receiver = await startReceiver();
    defer(() => receiver.close());
    receiver.on('/down', { status: 500 });
    receiver.on('/down-once', { status: 500 });
    const custom = await subscriptions.create(db.pool, {
      tenantId,
      url: receiver.url('/down'),
      eventTypes: ['*'],
      retryScheduleMs: [300, 900],
    });
    const none = await subscriptions.create(db.pool, {
      tenantId,
      url: receiver.url('/down-once'),
      eventTypes: ['*'],
      retryScheduleMs: [],
    });
    // The relay's own schedule would wait a minute before the first retry.
    const relay = startRelay(db.url, { retry: { scheduleMs: [60_000, 60_000, 60_000] } });
    defer(() => relay.stop());
    await enqueueEvents(db.pool, [{ tenantId, type: 'order.created', payload: {} }]);

    const rows = await waitFor(
      async () => {
        const r = await attemptsOf(custom.id);
        return r.length === 3 && r[0]?.status === 'dead' ? r : undefined;
      },
      { timeoutMs: 30_000, what: 'three attempts and dead' },
    );
    const gaps = rows
      .slice(1)
      .map((r, i) => r.started_at.getTime() - (rows[i] as (typeof rows)[number]).started_at.getTime());
    // Each gap is at least its scheduled delay and far below the relay's minute.
    expect(gaps[0]).toBeGreaterThanOrEqual(300);
    expect(gaps[1]).toBeGreaterThanOrEqual(900);
    expect(gaps.every((g) => g < 30_000)).toBe(true);
    expect(rows[0]?.attempts).toBe(3);

    // An empty schedule: no retry at all.
    const once = await waitFor(
      async () => {
        const r = await attemptsOf(none.id);
        return r[0]?.status === 'dead' ? r : undefined;
      },
      { timeoutMs: 30_000, what: 'the no-retry delivery to be dead' },
    );
    expect(once).toHaveLength(1);
  }, 60_000);
});
