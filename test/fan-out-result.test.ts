/**
 * What one fan-out statement reports besides its claims (sql.ts FAN_OUT): the batch's
 * event and match counts, tenants, last tenant and ordering keys, with many deliveries in
 * the batch, with events that match nothing (no delivery row), and with nothing pending.
 */
import { subscriptions } from '@hookbox/outbox';
import { describe, expect, it } from 'vitest';
import { fanOut } from '../apps/relay/src/relay/sql.js';
import { useTestDatabase } from './harness/db.js';
import { enqueueEvents } from './harness/relay.js';

const db = useTestDatabase();
const run = Date.now().toString(36);

describe('fan-out result', () => {
  it('reports the batch with many deliveries, with none, and with nothing pending', async () => {
    const tenants = ['a', 'b', 'c'].map((t) => `fo-${t}-${run}`);
    const subs: string[] = [];
    for (const t of tenants) {
      for (const path of ['/1', '/2']) {
        subs.push(
          (await subscriptions.create(db.pool, { tenantId: t, url: `https://example.com${path}`, eventTypes: ['a.*'] }))
            .id,
        );
      }
    }
    // 2 events per tenant, one ordered; 1 event per tenant that matches nothing.
    await enqueueEvents(
      db.pool,
      tenants.flatMap((t) => [
        { tenantId: t, type: 'a.x', payload: { n: 1 } },
        { tenantId: t, type: 'a.y', payload: { n: 2 }, orderingKey: 'k' },
        { tenantId: t, type: 'z.z', payload: { n: 3 } },
      ]),
    );
    const only = { onlyTenants: tenants };
    const res = await fanOut(db.pool, 100, 60_000, only);
    expect(res.events).toBe(9);
    expect(res.matched).toBe(6);
    expect(res.claimed).toHaveLength(12);
    expect(new Set(res.claimed.map((c) => c.subscriptionId))).toEqual(new Set(subs));
    expect([...res.tenants].sort()).toEqual([...tenants].sort());
    expect(res.lastTenant).toBe([...tenants].sort()[2]);
    expect([...res.orderingKeys].sort()).toEqual(tenants.map((t) => [t, 'k']).sort());

    // Events that match no subscription: counts with no delivery row at all.
    await enqueueEvents(db.pool, [{ tenantId: tenants[0] as string, type: 'z.z', payload: {} }]);
    const none = await fanOut(db.pool, 100, 60_000, only);
    expect(none).toMatchObject({ events: 1, matched: 0, claimed: [], tenants: [tenants[0]], lastTenant: tenants[0] });

    const empty = await fanOut(db.pool, 100, 60_000, only);
    expect(empty).toMatchObject({ events: 0, matched: 0, claimed: [], tenants: [], lastTenant: '', orderingKeys: [] });
  });
});
