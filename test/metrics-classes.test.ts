/**
 * The attempt classes and outcomes the main metrics test never produces: a redirect (3xx),
 * a timeout, a refused connection (network) and a delivery held (not sent) because its
 * subscription was disabled — each counted exactly once.
 */
import { createServer } from 'node:net';
import { subscriptions } from '@hookbox/outbox';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetricsRegistry } from '../apps/relay/src/metrics/metrics.js';
import { useTestDatabase } from './harness/db.js';
import { startReceiver } from './harness/receiver.js';
import { deliveries, enqueueEvents, startRelay, useCleanup, waitFor } from './harness/relay.js';

const db = useTestDatabase();
const defer = useCleanup(afterEach);

async function refusedPort(): Promise<number> {
  // Bind and close: nothing listens there any more, so connecting is refused.
  return await new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function value(
  registry: ReturnType<typeof createMetricsRegistry>['registry'],
  name: string,
  label: Record<string, string>,
) {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const v = (metric?.values ?? []).find((x) => Object.entries(label).every(([k, l]) => x.labels[k] === l));
  return v?.value ?? 0;
}

async function registryTotal(registry: ReturnType<typeof createMetricsRegistry>['registry'], name: string) {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  return (metric?.values ?? []).reduce((sum, v) => sum + v.value, 0);
}

describe('metrics for 3xx, timeout, network and cancelled', () => {
  it('count each class and outcome exactly once', async () => {
    const r = await startReceiver();
    defer(() => r.close());
    r.on('/moved', { status: 302, headers: { location: '/elsewhere' } });
    r.on('/hang', { hang: true });
    const t = `mc-${Date.now().toString(36)}`;
    const port = await refusedPort();
    await subscriptions.create(db.pool, { tenantId: t, url: r.url('/moved'), eventTypes: ['moved'] });
    await subscriptions.create(db.pool, { tenantId: t, url: r.url('/hang'), eventTypes: ['hang'] });
    await subscriptions.create(db.pool, { tenantId: t, url: `http://127.0.0.1:${port}/x`, eventTypes: ['refused'] });
    const off = await subscriptions.create(db.pool, { tenantId: t, url: r.url('/off'), eventTypes: ['off'] });

    // A pending delivery whose subscription was disabled after the delivery was made.
    const [offEvent] = await enqueueEvents(db.pool, [{ tenantId: t, type: 'off', payload: {} }]);
    await db.pool.query(`UPDATE hookbox.events SET fanned_out_at = now() WHERE id = $1`, [offEvent]);
    await db.pool.query(`INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id) VALUES ($1, $2, $3)`, [
      offEvent,
      off.id,
      t,
    ]);
    await db.pool.query('UPDATE hookbox.subscriptions SET active = false WHERE id = $1', [off.id]);

    const metrics = createMetricsRegistry({ defaultMetrics: false });
    const relay = startRelay(
      db.url,
      // A timeout that only the hanging endpoint reaches, also on a loaded machine.
      { retry: { maxAttempts: 1 }, requestTimeoutMs: 3_000, leaseMs: 10_000 },
      { observer: metrics.observer },
    );
    defer(() => relay.stop());
    await enqueueEvents(db.pool, [
      { tenantId: t, type: 'moved', payload: {} },
      { tenantId: t, type: 'hang', payload: {} },
      { tenantId: t, type: 'refused', payload: {} },
    ]);
    // The disabled subscription's delivery is kept, not cancelled: held (no attempt spent)
    // until the subscription is enabled again.
    await waitFor(async () => {
      const { rows } = await db.pool.query(
        `SELECT attempts, next_attempt_at = 'infinity' AS held FROM hookbox.deliveries WHERE event_id = $1`,
        [offEvent],
      );
      return rows[0]?.held === true && rows[0]?.attempts === 0;
    });
    const rows = await waitFor(
      async () => {
        const all = await deliveries(db.pool, 'tenant_id = $1', [t]);
        return all.filter((d) => d.status !== 'pending').length >= 3 ? all : undefined;
      },
      { timeoutMs: 15_000 },
    );
    expect(rows.map((d) => d.status).sort()).toEqual(['dead', 'dead', 'dead', 'pending']);

    const reg = metrics.registry;
    // The counters move once an outcome is recorded, which may be a moment after the
    // database shows it: wait for the three attempts, then check each was counted once.
    await waitFor(async () => {
      const all = await registryTotal(reg, 'hookbox_delivery_attempts_total');
      return all >= 3 || undefined;
    });
    expect(await registryTotal(reg, 'hookbox_delivery_attempts_total')).toBe(3);
    expect(await value(reg, 'hookbox_delivery_attempts_total', { status_class: '3xx' })).toBe(1);
    expect(await value(reg, 'hookbox_delivery_attempts_total', { status_class: 'timeout' })).toBe(1);
    expect(await value(reg, 'hookbox_delivery_attempts_total', { status_class: 'network' })).toBe(1);
    expect(await value(reg, 'hookbox_delivery_attempts_total', { status_class: '2xx' })).toBe(0);
    expect(await value(reg, 'hookbox_deliveries_total', { outcome: 'dead' })).toBe(3);
    expect(await value(reg, 'hookbox_deliveries_total', { outcome: 'cancelled' })).toBe(0);
    // A held delivery makes no HTTP attempt.
    expect(r.requests('/off')).toHaveLength(0);
  });
});
