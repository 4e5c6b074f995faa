/**
 * Failure modes found in review: a single bad outcome must not stop all recording; a relay
 * must not re-send its own work while its writes are slow; a delivery that throws inside
 * the relay must not crash it.
 */
import { subscriptions } from '@hookbox/outbox';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../apps/relay/src/logger.js';
import { Recorder } from '../apps/relay/src/relay/recorder.js';
import type { Outcome } from '../apps/relay/src/relay/sql.js';
import { useRelayFixture } from './harness/fixture.js';
import {
  attemptOutcome,
  enqueueEvents,
  holdInTransaction,
  killCliRelays,
  spawnRelayCli,
  startRelay,
  waitFor,
  waitForAllFinal,
} from './harness/relay.js';

const { db, defer, tenant: newTenant, receiver } = useRelayFixture();
afterAll(killCliRelays);
const tenant = () => newTenant('rob');

/** Blocks inserts into the attempt log (as a long migration or lock contention would) until the returned client rolls back. */
function blockAttemptLog() {
  return holdInTransaction(db.pool, defer, 'LOCK TABLE hookbox.delivery_attempts IN SHARE MODE');
}
describe('relay robustness', () => {
  it('records a response body containing NUL (stripped) and keeps recording everything else', async () => {
    const r = await receiver();
    r.on('/nul', { status: 200, body: 'ok\u0000done' });
    const t = tenant();
    await subscriptions.create(db.pool, { tenantId: t, url: r.url('/nul'), eventTypes: ['a.*'] });
    await subscriptions.create(db.pool, { tenantId: t, url: r.url('/plain'), eventTypes: ['a.*'] });
    const relay = startRelay(db.url);
    defer(() => relay.stop());
    await enqueueEvents(
      db.pool,
      [1, 2, 3].map((i) => ({ tenantId: t, type: 'a.b', payload: { i } })),
    );
    const rows = await waitForAllFinal(db.pool, { atLeast: 6, tenants: [t] });
    expect(rows.map((d) => d.status)).toEqual(Array(6).fill('succeeded'));
    const { rows: excerpts } = await db.pool.query(
      `SELECT a.response_excerpt FROM hookbox.delivery_attempts a JOIN hookbox.deliveries d ON d.id = a.delivery_id
       JOIN hookbox.subscriptions s ON s.id = d.subscription_id WHERE s.url LIKE '%/nul'`,
    );
    expect(excerpts.map((e) => e.response_excerpt)).toEqual(['okdone', 'okdone', 'okdone']);
  });

  it('drops only the outcome that can never be written; the rest of its batch lands', async () => {
    const t = tenant();
    const sub = await subscriptions.create(db.pool, {
      tenantId: t,
      url: 'https://example.com/h',
      eventTypes: ['*'],
    });
    const [eventId] = await enqueueEvents(db.pool, [{ tenantId: t, type: 'a.b', payload: {} }]);
    const { rows } = await db.pool.query<{ id: string }>(
      `INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, attempts)
       SELECT $1, $2, $3, 1 FROM generate_series(1, 3) RETURNING id`,
      [eventId, sub.id, t],
    );
    const ids = rows.map((r) => Number(r.id));
    // 'exploded' is no status: the check constraint refuses it.
    const outcome = (id: number, status: string) => attemptOutcome(id, sub.id, { status: status as Outcome['status'] });
    const recorder = new Recorder(db.pool, createLogger('silent'));
    // The middle one violates the status check constraint: no retry can ever write it.
    recorder.add(outcome(ids[0] as number, 'succeeded'));
    recorder.add(outcome(ids[1] as number, 'exploded'));
    recorder.add(outcome(ids[2] as number, 'succeeded'));
    await recorder.drain();
    const { rows: after } = await db.pool.query<{ id: string; status: string }>(
      'SELECT id, status FROM hookbox.deliveries WHERE id = ANY($1) ORDER BY id',
      [ids],
    );
    expect(after.map((r) => r.status)).toEqual(['succeeded', 'pending', 'succeeded']);
    expect(recorder.unwrittenIds()).toEqual([]);
    expect(recorder.healthy).toBe(true);
  });

  it('does not send its own deliveries again while their outcomes wait to be written', async () => {
    const r = await receiver();
    const t = tenant();
    await subscriptions.create(db.pool, { tenantId: t, url: r.url('/once'), eventTypes: ['*'] });
    // Writes blocked for longer than the lease.
    const blocker = await blockAttemptLog();
    const relay = startRelay(db.url, { leaseMs: 1_500, requestTimeoutMs: 500 });
    defer(() => relay.stop());
    await enqueueEvents(
      db.pool,
      [1, 2, 3, 4].map((i) => ({ tenantId: t, type: 'a.b', payload: { i } })),
    );
    await r.waitFor((all) => all.length >= 4, { what: 'the four first sends' });
    await new Promise((res) => setTimeout(res, 3_500)); // two leases go by while writes are blocked
    await blocker.query('ROLLBACK');
    const rows = await waitForAllFinal(db.pool, { atLeast: 4, tenants: [t] });
    expect(rows.map((d) => d.status)).toEqual(Array(4).fill('succeeded'));
    const ids = r.requests('/once').map((q) => q.headers['webhook-id']);
    expect(ids).toHaveLength(4);
    expect(new Set(ids).size).toBe(4);
  });

  it('claims nothing new while outcomes pile up unwritten, in either lane, and goes on once they are written', async () => {
    const r = await receiver();
    // Two tenants, the first with four endpoints: a batch then holds 32 or more of its
    // deliveries while the other tenant has work, which sends it to the side lane (lanes.ts):
    // both lanes fan out while the writes are blocked.
    const tenants = [tenant(), tenant()];
    const [a, b] = tenants as [string, string];
    const paths = { '/a1': a, '/a2': a, '/a3': a, '/a4': a, '/b': b };
    for (const [path, t] of Object.entries(paths)) {
      await subscriptions.create(db.pool, { tenantId: t, url: r.url(path), eventTypes: ['*'] });
    }
    const EVENTS = 600;
    const DELIVERIES = 5 * EVENTS;
    // The relay first, so that cleanup releases the lock before it stops the relay (whose
    // stop waits for its blocked write).
    const relay = startRelay(db.url, { concurrency: 16 });
    defer(() => relay.stop());
    const blocker = await blockAttemptLog();
    await enqueueEvents(
      db.pool,
      Array.from({ length: 2 * EVENTS }, (_, i) => ({ tenantId: i % 2 ? a : b, type: 'a.b', payload: { i } })),
    );
    // Writes are blocked: the relay stops claiming once 1,000 outcomes wait (at concurrency
    // 16 the floor of the bound), plus what it had claimed by then: the buffer (at most
    // twice four rounds), one round in flight and a claim under way in each lane (a batch
    // each). Before, it sent all 3,000.
    await r.waitFor((all) => all.length >= 1_000, { what: 'the first thousand sends' });
    let seen = -1;
    while (seen !== r.requests().length) {
      seen = r.requests().length;
      await new Promise((res) => setTimeout(res, 500));
    }
    expect(seen).toBeLessThanOrEqual(1_000 + 2 * 4 * 16 + 16 + 2 * 50);
    await blocker.query('ROLLBACK');
    const rows = await waitForAllFinal(db.pool, { atLeast: DELIVERIES, tenants });
    expect(rows.filter((d) => d.status === 'succeeded')).toHaveLength(DELIVERIES);
    // Each delivery sent once: no lease ran out while its outcome waited.
    for (const path of Object.keys(paths)) {
      const ids = r.requests(path).map((q) => q.headers['webhook-id']);
      expect(ids).toHaveLength(EVENTS);
      expect(new Set(ids).size).toBe(EVENTS);
    }
  }, 60_000);

  it('ends a delivery whose stored secret no longer parses as dead, and keeps running', async () => {
    const r = await receiver();
    const t = tenant();
    const good = await subscriptions.create(db.pool, { tenantId: t, url: r.url('/good'), eventTypes: ['*'] });
    const bad = await subscriptions.create(db.pool, { tenantId: t, url: r.url('/bad'), eventTypes: ['*'] });
    await db.pool.query(`UPDATE hookbox.subscriptions SET secret = 'whsec_short' WHERE id = $1`, [bad.id]);
    const relay = startRelay(db.url);
    defer(() => relay.stop());
    await enqueueEvents(db.pool, [{ tenantId: t, type: 'a.b', payload: {} }]);
    const rows = await waitForAllFinal(db.pool, { atLeast: 2, tenants: [t] });
    const bySub = new Map(rows.map((d) => [d.subscriptionId, d]));
    expect(bySub.get(good.id)?.status).toBe('succeeded');
    expect(bySub.get(bad.id)?.status).toBe('dead');
    expect(bySub.get(bad.id)?.lastError).toMatch(/^internal: /);
    expect(r.requests('/bad')).toHaveLength(0);
    // Still alive: a later event is delivered.
    await enqueueEvents(db.pool, [{ tenantId: t, type: 'a.c', payload: {} }]);
    await waitFor(() => r.requests('/good').length === 2, { what: 'the second event' });
  });

  it('never logs secrets, signatures or custom header values, even at trace level', async () => {
    const r = await receiver();
    let calls = 0;
    r.on('/flaky', () => ({ status: ++calls === 1 ? 500 : 200 }));
    const t = tenant();
    const sub = await subscriptions.create(db.pool, {
      tenantId: t,
      url: r.url('/flaky'),
      eventTypes: ['*'],
      headers: { 'x-api-token': 'tok_very_private_value' },
    });
    const relay = startRelay(db.url, {}, { logLevel: 'trace' });
    defer(() => relay.stop());
    await enqueueEvents(db.pool, [{ tenantId: t, type: 'a.b', payload: { hello: 'world' } }]);
    await waitForAllFinal(db.pool, { atLeast: 1, tenants: [t] });
    await relay.stop();
    const logText = JSON.stringify(relay.logs.lines);
    // The relay did log this delivery (the check below is not vacuous)...
    expect(relay.logs.lines.some((l) => l.subscriptionId === sub.id)).toBe(true);
    // ...but none of the secret material.
    const signatures = r.requests('/flaky').map((q) => String(q.headers['webhook-signature']));
    expect(signatures.length).toBe(2);
    expect(logText).not.toContain(sub.secret);
    expect(logText).not.toContain(sub.secret.slice('whsec_'.length));
    for (const sig of signatures) expect(logText).not.toContain(sig.slice(3));
    expect(logText).not.toContain('tok_very_private_value');
  });

  it('exits at once on a second signal while the first waits for in-flight requests', async () => {
    const r = await receiver();
    r.on('/hang', { hang: true });
    const t = tenant();
    await subscriptions.create(db.pool, { tenantId: t, url: r.url('/hang'), eventTypes: ['*'] });
    const cli = spawnRelayCli(db.url, { shutdownGrace: '60s', requestTimeout: '60s', lease: '2m' });
    defer(() => cli.kill());
    await enqueueEvents(db.pool, [{ tenantId: t, type: 'a.b', payload: {} }]);
    await r.waitFor((all) => all.length === 1, { what: 'the request to hang' });
    cli.signal('SIGTERM');
    await waitFor(() => cli.logs().some((l) => String(l.msg).includes('waiting for in-flight')), {
      what: 'the first signal to start the graceful wait',
    });
    const before = Date.now();
    cli.signal('SIGTERM');
    const { code } = await cli.exit;
    expect(code).toBe(130);
    // Exit code 130 says the second signal cut the wait; this only says it was not the 60 s grace.
    expect(Date.now() - before).toBeLessThan(30_000);
  });

  it('holds a subscription to its own max_in_flight, while one without a cap runs in parallel', async () => {
    const r = await receiver();
    let seenCapped = 0;
    let seenFree = 0;
    let nowCapped = 0;
    let nowFree = 0;
    r.on('/capped', () => {
      nowCapped++;
      seenCapped = Math.max(seenCapped, nowCapped);
      setTimeout(() => nowCapped--, 100);
      return { delayMs: 100 };
    });
    r.on('/free', () => {
      nowFree++;
      seenFree = Math.max(seenFree, nowFree);
      setTimeout(() => nowFree--, 100);
      return { delayMs: 100 };
    });
    const t = tenant();
    await subscriptions.create(db.pool, { tenantId: t, url: r.url('/capped'), eventTypes: ['*'], maxInFlight: 1 });
    await subscriptions.create(db.pool, { tenantId: t, url: r.url('/free'), eventTypes: ['*'] });
    const relay = startRelay(db.url);
    defer(() => relay.stop());
    await enqueueEvents(
      db.pool,
      [1, 2, 3, 4, 5].map((i) => ({ tenantId: t, type: 'a.b', payload: { i } })),
    );
    const rows = await waitForAllFinal(db.pool, { atLeast: 10, tenants: [t], timeoutMs: 20_000 });
    expect(rows.map((d) => d.status)).toEqual(Array(10).fill('succeeded'));
    expect(seenCapped).toBe(1);
    expect(seenFree).toBeGreaterThan(1);
  });
});
