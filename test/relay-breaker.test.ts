/**
 * The circuit breaker, shared through the database: after N consecutive failures a
 * subscription's circuit opens and its deliveries are held without spending attempts; after
 * the cooldown exactly one probe is out at a time, across relays; a successful probe closes
 * the circuit and the held backlog is delivered.
 */
import { subscriptions } from '@hookbox/outbox';
import { describe, expect, it } from 'vitest';
import { createMetricsRegistry } from '../apps/relay/src/metrics/metrics.js';
import { sampleGauges } from '../apps/relay/src/metrics/sampler.js';
import { recordOutcomes } from '../apps/relay/src/relay/sql.js';
import { envWithout, runCli } from './harness/cli.js';
import { useRelayFixture } from './harness/fixture.js';
import type { ReceivedRequest } from './harness/receiver.js';
import {
  attemptOutcome,
  deliveries,
  enqueueEvents,
  type TestRelayOptions,
  waitFor,
  waitForAllFinal,
} from './harness/relay.js';

const fx = useRelayFixture();
const { db } = fx;
const tenant = () => fx.tenant('br');

const BREAKER: TestRelayOptions = {
  // Retries every 50 ms and never dead: without the breaker, a failing endpoint would get
  // an attempt per delivery every 50 ms.
  retry: { scheduleMs: [50], maxAttempts: 1_000 },
  breaker: { failAfter: 3, cooldownMs: 400, maxCooldownMs: 800, disableAfterMs: null },
};

const relay = (overrides: TestRelayOptions = {}) => fx.relay({ ...BREAKER, ...overrides });

async function circuit(id: string) {
  const { rows } = await db.pool.query(
    `SELECT circuit_open_until, circuit_cooldown_ms, probe_until, failure_streak, failing_since
     FROM hookbox.subscriptions WHERE id = $1`,
    [id],
  );
  return rows[0] as {
    circuit_open_until: Date | null;
    circuit_cooldown_ms: number | null;
    failure_streak: number;
    failing_since: Date | null;
  };
}

/** Runs the CLI against this file's database; resolves with its stdout (fails on a non-zero exit). */
async function hookbox(...args: string[]): Promise<string> {
  const r = await runCli([...args, '--database-url', db.url], {
    env: envWithout(['DATABASE_URL']),
    timeoutMs: 120_000,
  });
  if (r.code !== 0) throw new Error(`hookbox ${args.join(' ')} exited ${r.code}\n${r.stderr}`);
  return r.stdout;
}

const events = (t: string, n: number, tag: string) =>
  Array.from({ length: n }, (_, i) => ({ tenantId: t, type: 'thing.happened', payload: { tag, i } }));

describe('circuit breaker', () => {
  it('opens after N failures, holds deliveries without attempts, probes one at a time across two relays, closes and delivers the backlog', async () => {
    const rx = await fx.receiver();
    let failing = true;
    // Each answer takes a while, so overlapping probes would show as overlapping requests.
    rx.on('/ep', () => (failing ? { status: 503, delayMs: 150 } : { status: 200 }));
    const t = tenant();
    const sub = await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/ep'), eventTypes: ['*'] });
    const a = relay();
    const b = relay();

    await enqueueEvents(db.pool, events(t, 3, 'first'));
    await waitFor(async () => (await circuit(sub.id)).circuit_open_until !== null, {
      timeoutMs: 20_000,
      what: 'the circuit to open',
    });
    const opened = await circuit(sub.id);
    expect(opened.failure_streak).toBeGreaterThanOrEqual(3);
    expect(opened.failing_since).not.toBeNull();
    // Requests already in flight when it opened may still finish; start counting after them.
    await new Promise((r) => setTimeout(r, 500));
    const since = Date.now();

    const held = await enqueueEvents(db.pool, events(t, 20, 'held'));
    // Several cooldowns pass (400 ms, then 800 ms): a few probes, one at a time.
    await new Promise((r) => setTimeout(r, 4_000));
    const during: ReceivedRequest[] = rx.requests('/ep').filter((r) => r.receivedAt >= since);
    const heldRows = await deliveries(db.pool, 'event_id = ANY($1)', [held]);
    expect(heldRows).toHaveLength(20);
    // The delivery log proves it: only the probes spent attempts; most held deliveries none.
    const spent = heldRows.reduce((n, d) => n + d.attempts, 0);
    expect(spent).toBeLessThanOrEqual(during.length + 2);
    expect(during.length).toBeLessThanOrEqual(12); // without the breaker: ~20 every 50 ms
    expect(heldRows.filter((d) => d.attempts === 0).length).toBeGreaterThanOrEqual(15);
    expect(heldRows.every((d) => d.status === 'pending')).toBe(true);
    // At least one probe was made, and never two at once (two relays share the probe lease).
    await waitFor(() => rx.requests('/ep').filter((r) => r.receivedAt >= since).length >= 1, {
      timeoutMs: 10_000,
      what: 'a probe',
    });
    const probes = rx.requests('/ep').filter((r) => r.receivedAt >= since);
    for (let i = 1; i < probes.length; i++) {
      const prev = probes[i - 1]!;
      expect(prev.closedAt).not.toBeNull();
      expect(probes[i]!.receivedAt).toBeGreaterThanOrEqual(prev.closedAt!);
    }

    // The endpoint recovers: the next probe closes the circuit and the backlog goes out.
    failing = false;
    const final = await waitForAllFinal(db.pool, { tenants: [t], atLeast: 23, timeoutMs: 30_000 });
    expect(final.every((d) => d.status === 'succeeded')).toBe(true);
    const closed = await circuit(sub.id);
    expect(closed).toMatchObject({ circuit_open_until: null, circuit_cooldown_ms: null, failure_streak: 0 });
    expect(closed.failing_since).toBeNull();
    const logs = [...a.logs.lines, ...b.logs.lines];
    expect(logs.some((l) => String(l.msg).startsWith('circuit opened') && l.level === 40)).toBe(true);
    expect(logs.some((l) => String(l.msg).startsWith('circuit closed') && l.level === 30)).toBe(true);
  });

  it('a new delivery to an open circuit is inserted unleased with no attempt, due at the reopen time', async () => {
    const rx = await fx.receiver();
    rx.on('/ep', { status: 200 });
    const t = tenant();
    const sub = await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/ep'), eventTypes: ['*'] });
    await db.pool.query(
      `UPDATE hookbox.subscriptions SET circuit_open_until = now() + interval '1 hour', circuit_cooldown_ms = 3600000,
         failure_streak = 5, failing_since = now() WHERE id = $1`,
      [sub.id],
    );
    relay();
    const [id] = await enqueueEvents(db.pool, events(t, 1, 'x'));
    const [d] = await waitFor(async () => {
      const rows = await deliveries(db.pool, 'event_id = $1', [id]);
      return rows.length > 0 ? rows : undefined;
    });
    expect(d).toMatchObject({ status: 'pending', attempts: 0, lockedUntil: null });
    expect(d!.nextAttemptAt.getTime()).toBeGreaterThan(Date.now() + 30 * 60_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(rx.requests('/ep')).toHaveLength(0);

    // Visible to operators: subscriptions show / list, stats, /metrics.
    const show = await hookbox('subscriptions', 'show', sub.id, '--tenant', t);
    expect(show).toMatch(/circuit\s+open until .*deliveries held, no attempts spent, cooldown 1h/);
    expect(show).toMatch(/failing since\s+\d{4}-/);
    expect(await hookbox('subscriptions', 'list', '--tenant', t)).toContain('active, circuit open');
    const shown = JSON.parse(await hookbox('subscriptions', 'show', sub.id, '--tenant', t, '--json'));
    expect(shown).toMatchObject({ circuit: 'open', circuitCooldownMs: 3_600_000 });
    const stats = JSON.parse(await hookbox('stats', '--tenant', t, '--json'));
    expect(stats.subscriptions[0]).toMatchObject({ circuit: 'open', pending: 1 });
    const metrics = createMetricsRegistry({ defaultMetrics: false });
    await sampleGauges(db.pool, metrics.instruments);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^hookbox_open_circuits [1-9]/m);
    expect(text).toContain(`hookbox_endpoint_circuit_open{subscription_id="${sub.id}",tenant="${t}"} 1`);
  });

  it('auto-disables after sustained failure, keeps the pending deliveries, and enable resumes them with the count', async () => {
    const rx = await fx.receiver();
    let failing = true;
    rx.on('/ep', () => (failing ? { status: 500 } : { status: 200 }));
    const t = tenant();
    const sub = await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/ep'), eventTypes: ['*'] });
    const r = relay({
      breaker: { failAfter: 3, cooldownMs: 200, maxCooldownMs: 200, disableAfterMs: 1_500 },
    });
    const ids = await enqueueEvents(db.pool, events(t, 10, 'kept'));
    const disabled = await waitFor(
      async () => {
        const got = await subscriptions.get(db.pool, { tenantId: t, id: sub.id });
        return got.active ? undefined : got;
      },
      { timeoutMs: 30_000, what: 'the subscription to be auto-disabled' },
    );
    expect(disabled.disabledReason).toMatch(/^auto-disabled: every attempt failed since \d{4}-\d\d-\d\dT/);
    expect(disabled.disabledAt).not.toBeNull();
    expect(r.logs.lines.some((l) => String(l.msg).startsWith('subscription auto-disabled') && l.level === 40)).toBe(
      true,
    );
    // Nothing is lost: every delivery is still pending, and no more requests go out.
    await new Promise((res) => setTimeout(res, 1_000));
    const sent = rx.requests('/ep').length;
    await new Promise((res) => setTimeout(res, 1_000));
    expect(rx.requests('/ep').length).toBe(sent);
    const kept = await deliveries(db.pool, 'event_id = ANY($1)', [ids]);
    expect(kept).toHaveLength(10);
    expect(kept.every((d) => d.status === 'pending')).toBe(true);

    failing = false;
    const out = await hookbox('subscriptions', 'enable', sub.id, '--tenant', t);
    expect(out.trim()).toBe(`enabled subscription ${sub.id}; resumed 10 pending deliveries`);
    const final = await waitForAllFinal(db.pool, { tenants: [t], atLeast: 10, timeoutMs: 30_000 });
    expect(final.map((d) => d.status)).toEqual(Array(10).fill('succeeded'));
    const after = await subscriptions.get(db.pool, { tenantId: t, id: sub.id });
    expect(after).toMatchObject({ active: true, disabledReason: null, failureStreak: 0, circuitOpenUntil: null });
  });

  it('manual disable keeps pending deliveries too; enable through the library returns the count', async () => {
    const rx = await fx.receiver();
    const t = tenant();
    const sub = await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/ep'), eventTypes: ['*'] });
    await subscriptions.disable(db.pool, { tenantId: t, id: sub.id, reason: 'maintenance' });
    // Deliveries made before the disable (fan-out makes none for a disabled subscription).
    const ids = await enqueueEvents(db.pool, events(t, 3, 'm'));
    await db.pool.query('UPDATE hookbox.events SET fanned_out_at = now() WHERE id = ANY($1)', [ids]);
    await db.pool.query(
      `INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id) SELECT unnest($1::uuid[]), $2, $3`,
      [ids, sub.id, t],
    );
    relay();
    await waitFor(async () => {
      const { rows } = await db.pool.query(
        `SELECT count(*)::int AS n FROM hookbox.deliveries WHERE subscription_id = $1 AND next_attempt_at = 'infinity'`,
        [sub.id],
      );
      return rows[0]?.n === 3;
    });
    expect((await deliveries(db.pool, 'subscription_id = $1', [sub.id])).map((d) => [d.status, d.attempts])).toEqual(
      Array(3).fill(['pending', 0]),
    );
    expect(rx.requests('/ep')).toHaveLength(0);
    const enabled = await subscriptions.enable(db.pool, { tenantId: t, id: sub.id });
    expect(enabled.resumedDeliveries).toBe(3);
    await waitForAllFinal(db.pool, { tenants: [t], atLeast: 3 });
    expect(rx.requests('/ep')).toHaveLength(3);
  });
});

describe('attempts the relay itself cut off', () => {
  it('are logged but move neither the failure streak nor the circuit', async () => {
    const t = tenant();
    const cutSub = await subscriptions.create(db.pool, {
      tenantId: t,
      url: 'https://example.com/cut',
      eventTypes: ['*'],
    });
    const failSub = await subscriptions.create(db.pool, {
      tenantId: t,
      url: 'https://example.com/fail',
      eventTypes: ['*'],
    });
    const events = await enqueueEvents(
      db.pool,
      Array.from({ length: 4 }, (_, i) => ({ tenantId: t, type: 'a.b', payload: { i } })),
    );
    const claimed = async (sub: string) =>
      (
        await db.pool.query<{ id: string }>(
          `INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, attempts)
           SELECT e, $2, $3, 1 FROM unnest($1::uuid[]) e RETURNING id`,
          [events, sub, t],
        )
      ).rows.map((r) => Number(r.id));
    const failed = (id: number, sub: string, countsForBreaker: boolean) =>
      attemptOutcome(id, sub, {
        status: 'pending',
        delayMs: 0,
        statusCode: null,
        errorClass: 'network',
        errorMessage: 'cut off by relay shutdown (socket closed)',
        countsForBreaker,
      });
    const breaker = { failAfter: 3, cooldownMs: 400, maxCooldownMs: 800, disableAfterMs: 1 };
    const cut = await claimed(cutSub.id);
    await recordOutcomes(
      db.pool,
      cut.map((id) => failed(id, cutSub.id, false)),
      breaker,
    );
    expect(await circuit(cutSub.id)).toMatchObject({
      failure_streak: 0,
      circuit_open_until: null,
      failing_since: null,
    });
    const { rows } = await db.pool.query('SELECT active FROM hookbox.subscriptions WHERE id = $1', [cutSub.id]);
    expect(rows[0].active).toBe(true);
    const logged = await db.pool.query(
      'SELECT count(*)::int AS n FROM hookbox.delivery_attempts WHERE delivery_id = ANY($1)',
      [cut],
    );
    expect(logged.rows[0].n).toBe(4);
    // The same failures from the endpoint itself open the circuit.
    const real = await claimed(failSub.id);
    await recordOutcomes(
      db.pool,
      real.map((id) => failed(id, failSub.id, true)),
      breaker,
    );
    const open = await circuit(failSub.id);
    expect(open.failure_streak).toBe(4);
    expect(open.circuit_open_until).not.toBeNull();
  });
});
