import { startEmbeddedPostgres } from '@hookbox/devdb';
import { subscriptions } from '@hookbox/outbox';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { migrate } from '../apps/relay/src/migrate.js';
import { useRelayFixture } from './harness/fixture.js';
import type { ReceivedRequest } from './harness/receiver.js';
import {
  deliveries,
  enqueueEvents,
  killCliRelays,
  spawnRelayCli,
  startRelay,
  waitFor,
  waitForAllFinal,
} from './harness/relay.js';

const { db, defer, tenant, receiver } = useRelayFixture();
afterAll(killCliRelays);

/** `path webhook-id` of a request: one per delivery. */
const key = (r: ReceivedRequest) => `${r.path} ${r.headers['webhook-id']}`;

function countBy(reqs: readonly ReceivedRequest[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of reqs) m.set(key(r), (m.get(key(r)) ?? 0) + 1);
  return m;
}

/** The `path webhook-id` keys of succeeded deliveries, from the database. */
async function succeededKeys(pool: pg.Pool, t: string): Promise<Set<string>> {
  const { rows } = await pool.query<{ url: string; event_id: string }>(
    `SELECT s.url, d.event_id FROM hookbox.deliveries d JOIN hookbox.subscriptions s ON s.id = d.subscription_id
     WHERE d.tenant_id = $1 AND d.status = 'succeeded'`,
    [t],
  );
  return new Set(rows.map((r) => `${new URL(r.url).pathname} ${r.event_id}`));
}

describe('a relay process killed with SIGKILL mid-batch', () => {
  it('loses nothing: a second relay completes every delivery, duplicates only for the in-flight set', async () => {
    const rx = await receiver();
    rx.on('/k1', { delayMs: 400 });
    rx.on('/k2', { delayMs: 400 });
    const t = tenant();
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/k1'), eventTypes: ['*'] });
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/k2'), eventTypes: ['*'] });
    const ids = await enqueueEvents(
      db.pool,
      Array.from({ length: 30 }, (_, n) => ({ tenantId: t, type: 'order.placed', payload: { n } })),
    );
    const expected = ids.flatMap((id) => [`/k1 ${id}`, `/k2 ${id}`]);

    const first = spawnRelayCli(db.url, { concurrency: 8, batchSize: 4, lease: '2s', requestTimeout: '1s' });
    defer(() => first.kill());
    // Kill it once a batch has completed and the next one is on the wire.
    await waitFor(async () => rx.inFlight >= 4 && (await succeededKeys(db.pool, t)).size >= 4, {
      timeoutMs: 20_000,
      intervalMs: 5,
      what: 'some deliveries done and others in flight',
    });
    const inFlightAtKill = new Set(
      rx
        .requests()
        .filter((r) => r.closedAt === null)
        .map(key),
    );
    await first.kill();
    // What the dead relay wrote may still be in the receiver's socket buffers: read all of
    // it (its connections close after their data) before taking the snapshot.
    await waitFor(() => rx.openConnections === 0, { what: "the dead relay's connections to close" });
    const receivedBeforeKill = new Set(rx.requests().map(key));
    const recordedBeforeKill = await succeededKeys(db.pool, t);
    expect(inFlightAtKill.size).toBeGreaterThanOrEqual(4);
    expect(recordedBeforeKill.size).toBeLessThan(expected.length);

    // The endpoint is quick now; a second relay drains everything and exits when idle.
    rx.on('/k1', {});
    rx.on('/k2', {});
    const second = spawnRelayCli(db.url, { concurrency: 8, exitWhenIdle: true });
    defer(() => second.kill());
    const { code } = await second.exit;
    expect({ code, stderr: second.stderr() }).toEqual({ code: 0, stderr: '' });

    const final = await deliveries(db.pool, 'tenant_id = $1', [t]);
    expect(final).toHaveLength(expected.length);
    expect(final.every((d) => d.status === 'succeeded')).toBe(true);
    const counts = countBy(rx.requests());
    expect([...counts.keys()].sort()).toEqual([...expected].sort());
    const duplicates = [...counts].filter(([, n]) => n > 1).map(([k]) => k);
    expect(Math.max(...counts.values())).toBe(2);
    // Duplicated: exactly what the dead relay had sent without recording the answer...
    for (const k of duplicates) {
      expect(receivedBeforeKill.has(k) && !recordedBeforeKill.has(k), k).toBe(true);
    }
    // ...which includes every request that was on the wire when it died.
    for (const k of inFlightAtKill) expect(duplicates).toContain(k);
  });
});

describe('SIGTERM to a relay process', () => {
  it('lets in-flight requests finish, records them, releases unstarted claims and exits 0', async () => {
    const rx = await receiver();
    rx.on('/t1', { delayMs: 700 });
    rx.on('/t2', { delayMs: 700 });
    const t = tenant();
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/t1'), eventTypes: ['*'] });
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/t2'), eventTypes: ['*'] });
    const ids = await enqueueEvents(
      db.pool,
      Array.from({ length: 10 }, (_, n) => ({ tenantId: t, type: 'order.placed', payload: { n } })),
    );

    // 4 in flight; fan-out of 4 events makes 8 leased deliveries, so 4 wait in the queue.
    const cli = spawnRelayCli(db.url, { concurrency: 4, lease: '5s', requestTimeout: '2s' });
    defer(() => cli.kill());
    await rx.waitFor((all) => all.length >= 4, { timeoutMs: 20_000, what: '4 requests in flight' });
    cli.signal('SIGTERM');
    const { code, signal } = await cli.exit;
    expect({ code, signal }).toEqual({ code: 0, signal: null });

    const received = rx.requests();
    expect(received.length).toBeGreaterThanOrEqual(4);
    // Every request it started was answered in full (not cut off) and recorded as succeeded.
    expect(received.every((r) => r.closedAt !== null)).toBe(true);
    expect(rx.traces.every((tr) => tr.completed)).toBe(true);
    const recorded = await succeededKeys(db.pool, t);
    expect([...recorded].sort()).toEqual(received.map(key).sort());
    // Nothing is left leased: the rest is pending, due, with its attempt count intact.
    const rest = await deliveries(db.pool, `tenant_id = $1 AND status <> 'succeeded'`, [t]);
    for (const d of rest) expect(d).toMatchObject({ status: 'pending', attempts: 0, lockedUntil: null });
    const logs = cli.logs().map((l) => String(l.msg));
    expect(logs).toContain('waiting for in-flight deliveries');
    expect(logs).toContain('relay stopped');

    // A later run picks up where it stopped, with no duplicate.
    rx.on('/t1', {});
    rx.on('/t2', {});
    const again = spawnRelayCli(db.url, { exitWhenIdle: true });
    defer(() => again.kill());
    expect((await again.exit).code).toBe(0);
    const counts = countBy(rx.requests());
    expect(counts.size).toBe(20);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect([...counts.keys()].sort()).toEqual(ids.flatMap((id) => [`/t1 ${id}`, `/t2 ${id}`]).sort());
  });
});

describe('SIGTERM past the shutdown grace period', () => {
  it('cuts what is still in flight, records it for a retry, and exits 0', async () => {
    const rx = await receiver();
    rx.on('/late', { delayMs: 1_500 });
    const t = tenant();
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/late'), eventTypes: ['*'] });
    const ids = await enqueueEvents(
      db.pool,
      Array.from({ length: 4 }, (_, n) => ({ tenantId: t, type: 'order.placed', payload: { n } })),
    );
    const cli = spawnRelayCli(db.url, { concurrency: 4, lease: '5s', requestTimeout: '3s', shutdownGrace: '200ms' });
    defer(() => cli.kill());
    await rx.waitFor((all) => all.length >= 4, { timeoutMs: 20_000, what: '4 requests in flight' });
    cli.signal('SIGTERM');
    const exit = await Promise.race([cli.exit, new Promise((r) => setTimeout(() => r('still running'), 10_000))]);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(cli.logs().map((l) => String(l.msg))).toContain('grace period over; aborting in-flight deliveries');

    // The cut attempts are in the log and due for a retry; nothing waits for a lease to lapse.
    const rows = await deliveries(db.pool, 'tenant_id = $1', [t]);
    expect(rows).toHaveLength(4);
    for (const d of rows) {
      expect(d).toMatchObject({ status: 'pending', attempts: 1, lockedUntil: null });
      expect(d.lastError).toMatch(/^network/);
    }
    rx.on('/late', {});
    const again = spawnRelayCli(db.url, { exitWhenIdle: true });
    defer(() => again.kill());
    expect((await again.exit).code).toBe(0);
    const final = await deliveries(db.pool, 'tenant_id = $1', [t]);
    expect(final.map((d) => [d.status, d.attempts])).toEqual(Array(4).fill(['succeeded', 2]));
    const counts = countBy(rx.requests());
    expect([...counts.keys()].sort()).toEqual(ids.map((id) => `/late ${id}`).sort());
  });
});

describe('Postgres trouble under a running relay', () => {
  it('carries on when its database connections are terminated again and again', async () => {
    const rx = await receiver();
    const t = tenant();
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/pg1'), eventTypes: ['*'] });
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/pg2'), eventTypes: ['*'] });
    const relay = startRelay(db.url, { leaseMs: 1_500, requestTimeoutMs: 500 });
    defer(() => relay.stop());
    let stopped = false;
    void relay.relay.done.then(() => {
      stopped = true;
    });

    const ids: string[] = [];
    let terminated = 0;
    for (let round = 0; round < 15; round++) {
      ids.push(
        ...(await enqueueEvents(
          db.pool,
          Array.from({ length: 8 }, (_, n) => ({ tenantId: t, type: 'tick', payload: { round, n } })),
        )),
      );
      // Each round cuts whatever connections the relay holds by then; on a busy machine
      // the relay may not have reconnected yet, so wait (bounded) until it has one.
      const deadline = Date.now() + 5_000;
      for (;;) {
        const { rows } = await db.pool.query(
          `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
           WHERE application_name LIKE 'hookbox-relay%' AND datname = current_database()`,
        );
        terminated += rows.length;
        if (rows.length > 0 || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, 40));
    }
    // Cut again and again: at least one connection in (nearly) every round.
    expect(terminated).toBeGreaterThanOrEqual(14);

    await waitForAllFinal(db.pool, { tenants: [t], atLeast: ids.length * 2, timeoutMs: 20_000 });
    const final = await deliveries(db.pool, 'tenant_id = $1', [t]);
    expect(final).toHaveLength(ids.length * 2);
    expect(final.every((d) => d.status === 'succeeded')).toBe(true);
    const counts = countBy(rx.requests());
    expect([...counts.keys()].sort()).toEqual(ids.flatMap((id) => [`/pg1 ${id}`, `/pg2 ${id}`]).sort());
    expect(stopped).toBe(false);
    // It noticed, and said so.
    expect(relay.logs.lines.some((l) => (l.level as number) >= 40)).toBe(true);
  });

  it('recovers from a real Postgres restart and delivers everything', async () => {
    // Its own server: pause() stops it and keeps its data, resume() starts it again.
    const server = await startEmbeddedPostgres();
    defer(() => server.stop());
    const url = server.url;
    await migrate(url);
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    pool.on('error', () => {}); // the test's own pool sees the restart too
    defer(() => pool.end());

    const rx = await receiver();
    const t = tenant();
    await subscriptions.create(pool, { tenantId: t, url: rx.url('/restart'), eventTypes: ['*'] });
    // The first events are answered slowly, so the server goes down while they are in
    // flight: their outcomes must wait in the relay and be recorded after the restart.
    rx.on('/restart', (req) => (JSON.parse(req.body).type === 'before' ? { delayMs: 400 } : {}));
    const relay = startRelay(url, { leaseMs: 5_000, requestTimeoutMs: 1_000 });
    defer(() => relay.stop());
    const ids = await enqueueEvents(
      pool,
      Array.from({ length: 10 }, (_, n) => ({ tenantId: t, type: 'before', payload: { n } })),
    );
    await rx.waitFor((all) => all.length >= 10, { what: 'the events before the restart, in flight' });

    await server.pause();
    await rx.waitFor(() => rx.inFlight === 0, { what: 'the in-flight answers, while the server is down' });
    await server.resume();

    // The pool's old connections are dead; retry the first write until one gets through.
    const after = await waitFor(
      () =>
        enqueueEvents(
          pool,
          Array.from({ length: 10 }, (_, n) => ({ tenantId: t, type: 'after', payload: { n } })),
        ).catch(() => undefined),
      { what: 'the restarted server to accept writes' },
    );
    ids.push(...after);
    await waitForAllFinal(pool, { tenants: [t], atLeast: 20, timeoutMs: 20_000 });
    const final = await deliveries(pool);
    expect(final.map((d) => d.status)).toEqual(Array(20).fill('succeeded'));
    // It lost its connections, said so, and carried on.
    expect(relay.logs.lines.some((l) => (l.level as number) >= 40)).toBe(true);
    expect(relay.relay.stats.delivered).toBeGreaterThanOrEqual(20);
    expect([...new Set(rx.requests().map((r) => r.headers['webhook-id']))].sort()).toEqual([...ids].sort());
    // Nothing was re-sent: the answers learned while the server was down were kept and recorded.
    expect(rx.requests()).toHaveLength(20);
    expect(final.every((d) => d.attempts === 1)).toBe(true);
  });
});
