/**
 * The ordering sweep (every 5 s, relay.ts) promotes parked deliveries whose head finished
 * without promoting them. stop() must wait for a sweep under way: one that landed after
 * stop() had returned leased its heads to a relay that could no longer send or release
 * them, so each waited out a lease with an attempt number spent.
 */
import { subscriptions } from '@hookbox/outbox';
import { describe, expect, it } from 'vitest';
import { useRelayFixture } from './harness/fixture.js';
import { holdInTransaction, startRelay, waitFor } from './harness/relay.js';

const { db, defer, tenant, receiver } = useRelayFixture();

describe('ordering sweep at shutdown', () => {
  it('stop() waits for a sweep under way, and the heads it promoted are handed back', async () => {
    const r = await receiver();
    const t = tenant();
    const sub = await subscriptions.create(db.pool, { tenantId: t, url: r.url('/k'), eventTypes: ['*'] });
    // Two ordered events on one key, fanned out: the first delivered, the second parked
    // behind it and never promoted (as after a relay died between the two).
    const { rows: events } = await db.pool.query<{ id: string }>(
      `INSERT INTO hookbox.events (tenant_id, type, payload, ordering_key, ordering_seq, fanned_out_at)
       VALUES ($1, 'a.b', '{}', 'k', 1, now()), ($1, 'a.b', '{}', 'k', 2, now()) RETURNING id`,
      [t],
    );
    const { rows: deliveries } = await db.pool.query<{ id: string }>(
      `INSERT INTO hookbox.deliveries
         (event_id, subscription_id, tenant_id, status, attempts, next_attempt_at, completed_at, ordering_key, ordering_seq)
       VALUES ($1, $3, $4, 'succeeded', 1, now(), now(), 'k', 1), ($2, $3, $4, 'pending', 0, 'infinity', NULL, 'k', 2)
       RETURNING id`,
      [events[0]?.id, events[1]?.id, sub.id, t],
    );
    const parked = deliveries[1]?.id;
    // Hold the parked row, so that the sweep's update waits on it.
    const blocker = await holdInTransaction(
      db.pool,
      defer,
      'SELECT 1 FROM hookbox.deliveries WHERE id = $1 FOR UPDATE',
      [parked],
    );
    const relay = startRelay(db.url);
    defer(() => relay.stop());
    await waitFor(
      async () => {
        const { rows } = await db.pool.query(
          `SELECT 1 FROM pg_stat_activity
           WHERE application_name = 'hookbox-relay-test' AND datname = current_database() AND wait_event_type = 'Lock'`,
        );
        return rows.length > 0;
      },
      { timeoutMs: 15_000, what: 'the sweep waiting on the parked row' },
    );
    let stopped = false;
    const stopping = relay.stop().then(() => {
      stopped = true;
    });
    await new Promise((res) => setTimeout(res, 300));
    expect(stopped).toBe(false); // still waiting for the sweep
    await blocker.query('ROLLBACK');
    await stopping;
    const { rows } = await db.pool.query(
      `SELECT status, attempts, locked_until, next_attempt_at <= now() AS due FROM hookbox.deliveries WHERE id = $1`,
      [parked],
    );
    // Promoted (due now), and not held by the stopped relay's lease: the next relay sends it at once.
    expect(rows[0]).toMatchObject({ status: 'pending', attempts: 0, locked_until: null, due: true });
    expect(r.requests()).toEqual([]);
  }, 30_000);
});
