/**
 * Enabling a subscription (subscriptions.enable, or update with active: true) makes due
 * only the held ordered deliveries that head their key, by the relay's own head check
 * (orderingHead): a dead delivery under policy `block` with no replay holds its key, so
 * the deliveries parked behind it stay parked ('infinity') instead of becoming due ones no
 * claim will ever take (which kept `hasUnfinishedWork` true and the due gauges growing).
 * Replaying the dead head still releases them in order; under policy `skip` the successor
 * resumes at once. The outbox's copy of the head check must stay the relay's text.
 */
import { createOutbox, type OrderingOnDead, subscriptions } from '@hookbox/outbox';
import { retryDelivery } from '@hookbox/outbox/admin';
import { describe, expect, it } from 'vitest';
import { fanOut, hasUnfinishedWork, orderingHead } from '../apps/relay/src/relay/sql.js';
import { orderingHead as resumeHead } from '../packages/outbox/src/subscriptions.js';
import { useRelayFixture } from './harness/fixture.js';
import { orderedChain } from './harness/ordered-chain.js';
import { waitForAllFinal } from './harness/relay.js';

const fixture = useRelayFixture();
const { db, defer, tenant, relay } = fixture;
const outbox = createOutbox();

/** One key's three events: seq 1 dead (retries exhausted), seq 2 and 3 parked behind it. */
const deadHeadChain = (t: string, subscriptionId: string, key: string) =>
  orderedChain(db.pool, outbox, { tenantId: t, subscriptionId, key, head: 'dead' });

/**
 * hasUnfinishedWork after fanning out what is pending (the operational events that disable
 * and enable enqueue): whether `relay --exit-when-idle` would go on.
 */
async function unfinishedWork(): Promise<boolean> {
  while ((await fanOut(db.pool, 500, 60_000)).events > 0);
  return hasUnfinishedWork(db.pool);
}

/** 'parked' (next_attempt_at infinity), 'due' (now or earlier), or the status when final. */
async function stateOf(id: number | undefined): Promise<string> {
  const { rows } = await db.pool.query(
    `SELECT CASE WHEN status <> 'pending' THEN status
                 WHEN next_attempt_at = 'infinity' THEN 'parked'
                 WHEN next_attempt_at <= now() THEN 'due' ELSE 'later' END AS state
     FROM hookbox.deliveries WHERE id = $1`,
    [id],
  );
  return rows[0]?.state as string;
}

async function subscription(t: string, url: string, orderingOnDead: OrderingOnDead) {
  const sub = await subscriptions.create(db.pool, { tenantId: t, url, eventTypes: ['*'], orderingOnDead });
  // Its deliveries go with it (cascade): none left due for the next test's work checks.
  defer(() => subscriptions.delete(db.pool, { tenantId: t, id: sub.id }).catch(() => undefined));
  return sub;
}

describe('enable and resume behind a dead ordered head', () => {
  it('block: enable leaves the successors of a dead head parked', async () => {
    const t = tenant();
    const sub = await subscription(t, 'https://example.com/a', 'block');
    const chain = await deadHeadChain(t, sub.id, 'k1');
    await subscriptions.disable(db.pool, { tenantId: t, id: sub.id, reason: 'maintenance' });
    await subscriptions.enable(db.pool, { tenantId: t, id: sub.id });
    expect([await stateOf(chain.get(2)), await stateOf(chain.get(3))]).toEqual(['parked', 'parked']);
    // Nothing the relay could send is left: `relay --exit-when-idle` may exit.
    expect(await unfinishedWork()).toBe(false);
  });

  it('block: update({active: true}) leaves the successors of a dead head parked', async () => {
    const t = tenant();
    const sub = await subscription(t, 'https://example.com/a', 'block');
    const chain = await deadHeadChain(t, sub.id, 'k1');
    await subscriptions.disable(db.pool, { tenantId: t, id: sub.id, reason: 'maintenance' });
    await subscriptions.update(db.pool, { tenantId: t, id: sub.id, active: true });
    expect([await stateOf(chain.get(2)), await stateOf(chain.get(3))]).toEqual(['parked', 'parked']);
    expect(await unfinishedWork()).toBe(false);
  });

  it('block: after enable, replaying the dead head sends it again and the rest follow in order', async () => {
    const rx = await fixture.receiver();
    const t = tenant();
    const sub = await subscription(t, rx.url('/a'), 'block');
    const chain = await deadHeadChain(t, sub.id, 'k1');
    await subscriptions.disable(db.pool, { tenantId: t, id: sub.id, reason: 'maintenance' });
    await subscriptions.enable(db.pool, { tenantId: t, id: sub.id });
    const replay = await retryDelivery(db.pool, { tenantId: t, id: chain.get(1) as number });
    expect(replay.created).toBe(true);
    relay();
    const final = await waitForAllFinal(db.pool, { tenants: [t], atLeast: 4 });
    expect(final.map((d) => d.status).sort()).toEqual(['dead', 'succeeded', 'succeeded', 'succeeded']);
    const sent = rx.requests('/a').map((r) => Number(r.headers['webhook-ordering-seq']));
    expect(sent).toEqual([1, 2, 3]);
  });

  it('block: a dead head whose replay already succeeded no longer holds the key on enable', async () => {
    const t = tenant();
    const sub = await subscription(t, 'https://example.com/a', 'block');
    const chain = await deadHeadChain(t, sub.id, 'k1');
    // The replay went out and succeeded, but the subscription was disabled before the
    // successor was promoted: it stayed held.
    await db.pool.query(
      `INSERT INTO hookbox.deliveries
         (event_id, subscription_id, tenant_id, replay_of, status, attempts, completed_at, ordering_key, ordering_seq)
       SELECT event_id, subscription_id, tenant_id, id, 'succeeded', 1, now(), ordering_key, ordering_seq
       FROM hookbox.deliveries WHERE id = $1`,
      [chain.get(1)],
    );
    await subscriptions.disable(db.pool, { tenantId: t, id: sub.id, reason: 'maintenance' });
    await subscriptions.enable(db.pool, { tenantId: t, id: sub.id });
    // Seq 2 heads the key now; seq 3 waits behind it (pending).
    expect([await stateOf(chain.get(2)), await stateOf(chain.get(3))]).toEqual(['due', 'parked']);
  });

  it('skip: a dead head does not hold its key, so enable resumes its successor', async () => {
    const t = tenant();
    const sub = await subscription(t, 'https://example.com/a', 'skip');
    const chain = await deadHeadChain(t, sub.id, 'k1');
    await subscriptions.disable(db.pool, { tenantId: t, id: sub.id, reason: 'maintenance' });
    await subscriptions.enable(db.pool, { tenantId: t, id: sub.id });
    expect([await stateOf(chain.get(2)), await stateOf(chain.get(3))]).toEqual(['due', 'parked']);

    await subscriptions.disable(db.pool, { tenantId: t, id: sub.id, reason: 'maintenance' });
    await db.pool.query(`UPDATE hookbox.deliveries SET next_attempt_at = 'infinity' WHERE id = $1`, [chain.get(2)]);
    await subscriptions.update(db.pool, { tenantId: t, id: sub.id, active: true });
    expect([await stateOf(chain.get(2)), await stateOf(chain.get(3))]).toEqual(['due', 'parked']);
  });

  it("enable's copy of the head check is the relay's orderingHead, character for character", () => {
    expect(resumeHead('d')).toBe(orderingHead('d'));
  });
});
