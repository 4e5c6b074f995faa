/**
 * `stats` against a real PostgreSQL: per-subscription counts, success rate and latency
 * percentiles computed from known inserted attempts (the expected percentiles computed here,
 * independently, with the same linear interpolation as percentile_cont), the time window,
 * tenant scoping and per-tenant usage.
 */
import { randomUUID } from 'node:crypto';
import { ValidationError } from '@hookbox/outbox';
import { stats } from '@hookbox/outbox/admin';
import { drizzle } from 'drizzle-orm/node-postgres';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from './harness/db.js';

const db = useTestDatabase();

const HOUR = 3_600_000;
const ago = (ms: number) => new Date(Date.now() - ms);
let seq = 0;
const newTenant = () => `st-${++seq}-${randomUUID().slice(0, 8)}`;

/** Linear interpolation between closest ranks: the definition percentile_cont uses. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const pos = p * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

async function addSubscription(tenantId: string, url = 'https://example.com/h'): Promise<string> {
  const { rows } = await db.pool.query(
    `INSERT INTO hookbox.subscriptions (tenant_id, url, event_types, secret) VALUES ($1, $2, '{*}', 'whsec_x') RETURNING id`,
    [tenantId, url],
  );
  return rows[0].id;
}

async function addEvent(tenantId: string, createdAt = new Date()): Promise<string> {
  const { rows } = await db.pool.query(
    `INSERT INTO hookbox.events (tenant_id, type, payload, created_at, fanned_out_at)
     VALUES ($1, 'message.new', '{}', $2, $2) RETURNING id`,
    [tenantId, createdAt],
  );
  return rows[0].id;
}

async function addDelivery(
  tenantId: string,
  subscriptionId: string,
  status: string,
  { createdAt = new Date(), completedAt = status === 'pending' ? null : (new Date() as Date | null) } = {},
): Promise<number> {
  const eventId = await addEvent(tenantId, createdAt);
  const { rows } = await db.pool.query(
    `INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, status, created_at, completed_at)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
    [eventId, subscriptionId, tenantId, status, createdAt, completedAt],
  );
  return Number(rows[0].id);
}

interface A {
  ms: number;
  ok: boolean;
  at?: Date;
}

async function addAttempts(deliveryId: number, attempts: A[]): Promise<void> {
  let n = 0;
  for (const a of attempts) {
    await db.pool.query(
      `INSERT INTO hookbox.delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error_class)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [deliveryId, ++n, a.at ?? new Date(), a.ms, a.ok ? 200 : 500, a.ok ? null : 'http_status'],
    );
  }
}

describe('stats per subscription', () => {
  it('counts attempts and successes and computes p50/p95 from the attempt durations', async () => {
    const t = newTenant();
    const sub = await addSubscription(t);
    const idle = await addSubscription(t, 'https://idle.example/h');
    const durations = [12, 250, 31, 44, 5, 900, 61, 73, 18, 120, 33];
    const okFlags = durations.map((_, i) => i % 3 !== 0); // 7 of 11 succeed
    const lastOk = ago(10 * 60_000);
    const lastFail = ago(20 * 60_000);
    const d1 = await addDelivery(t, sub, 'succeeded');
    const d2 = await addDelivery(t, sub, 'dead');
    await addDelivery(t, sub, 'dead');
    await addDelivery(t, sub, 'pending');
    await addDelivery(t, sub, 'pending');
    await addDelivery(t, sub, 'pending');
    const attempts: A[] = durations.map((ms, i) => ({ ms, ok: okFlags[i]!, at: ago(HOUR + i * 1000) }));
    attempts.push({ ms: 40, ok: true, at: lastOk }, { ms: 41, ok: false, at: lastFail });
    await addAttempts(d1, attempts.slice(0, 7));
    await addAttempts(d2, attempts.slice(7));

    const result = await stats(db.pool, { tenantId: t });
    expect(result.subscriptions.map((s) => s.subscriptionId).sort()).toEqual([sub, idle].sort());
    const s = result.subscriptions.find((x) => x.subscriptionId === sub)!;
    const all = attempts.map((a) => a.ms);
    const successes = attempts.filter((a) => a.ok).length;
    expect(s).toMatchObject({
      tenantId: t,
      url: 'https://example.com/h',
      active: true,
      attempts: attempts.length,
      successes,
      failures: attempts.length - successes,
      dead: 2,
      pending: 3,
    });
    expect(s.successRate).toBeCloseTo(successes / attempts.length, 12);
    expect(s.p50Ms).toBeCloseTo(percentile(all, 0.5), 9);
    expect(s.p95Ms).toBeCloseTo(percentile(all, 0.95), 9);
    // Non-trivial interpolation: p95 falls between the two largest durations.
    expect(s.p95Ms).toBeGreaterThan(250);
    expect(s.p95Ms).toBeLessThan(900);
    expect(s.lastSuccessAt?.getTime()).toBe(lastOk.getTime());
    expect(s.lastFailureAt?.getTime()).toBe(lastFail.getTime());

    const i = result.subscriptions.find((x) => x.subscriptionId === idle)!;
    expect(i).toMatchObject({ attempts: 0, successes: 0, successRate: null, p50Ms: null, p95Ms: null, dead: 0 });
    expect(i.lastSuccessAt).toBeNull();
  });

  it('counts only the window: attempts started and deliveries died since `since`', async () => {
    const t = newTenant();
    const sub = await addSubscription(t);
    const oldDead = await addDelivery(t, sub, 'dead', { createdAt: ago(72 * HOUR), completedAt: ago(48 * HOUR) });
    await addDelivery(t, sub, 'dead', { createdAt: ago(30 * HOUR), completedAt: ago(2 * HOUR) });
    await addAttempts(oldDead, [
      { ms: 1000, ok: false, at: ago(49 * HOUR) },
      { ms: 2000, ok: false, at: ago(48 * HOUR) },
    ]);
    const recent = await addDelivery(t, sub, 'succeeded');
    await addAttempts(recent, [
      { ms: 10, ok: false, at: ago(3 * HOUR) },
      { ms: 20, ok: true, at: ago(2 * HOUR) },
    ]);

    const day = await stats(db.pool, { tenantId: t, since: ago(24 * HOUR) });
    const s = day.subscriptions[0]!;
    expect(s).toMatchObject({ attempts: 2, successes: 1, dead: 1, p50Ms: 15 });
    expect(s.p95Ms).toBeCloseTo(19.5, 9);
    expect(s.successRate).toBe(0.5);
    expect(day.since?.getTime()).toBeLessThanOrEqual(Date.now() - 24 * HOUR);

    const ever = await stats(db.pool, { tenantId: t });
    expect(ever.since).toBeNull();
    expect(ever.subscriptions[0]).toMatchObject({ attempts: 4, successes: 1, dead: 2 });
    expect(ever.subscriptions[0]!.p50Ms).toBe(percentile([1000, 2000, 10, 20], 0.5));
    // The last failure is the newest failed attempt, in or out of the window.
    expect(ever.subscriptions[0]!.lastFailureAt!.getTime()).toBeGreaterThan(Date.now() - 3 * HOUR - 1000);
  });

  it("prefers the relay's last success/failure on the subscription when it is newer than the log", async () => {
    const t = newTenant();
    const sub = await addSubscription(t);
    const d = await addDelivery(t, sub, 'succeeded');
    const logged = ago(5 * HOUR);
    await addAttempts(d, [{ ms: 5, ok: true, at: logged }]);
    const recorded = ago(HOUR); // e.g. attempts already removed by retention
    await db.pool.query('UPDATE hookbox.subscriptions SET last_success_at = $2 WHERE id = $1', [sub, recorded]);
    const s = (await stats(db.pool, { tenantId: t })).subscriptions[0]!;
    expect(s.lastSuccessAt?.getTime()).toBe(recorded.getTime());
    expect(s.lastFailureAt).toBeNull();
  });
});

describe('usage per tenant', () => {
  it('counts events, deliveries by status and attempts per tenant, scoped and windowed', async () => {
    const a = newTenant();
    const b = newTenant();
    const sa = await addSubscription(a);
    const sb = await addSubscription(b);
    await addEvent(a); // an event with no delivery still counts as usage
    await addEvent(a, ago(48 * HOUR)); // outside a 24 h window
    const da = await addDelivery(a, sa, 'succeeded');
    await addDelivery(a, sa, 'dead');
    await addDelivery(a, sa, 'pending');
    await addDelivery(a, sa, 'cancelled', { createdAt: ago(48 * HOUR) });
    await addAttempts(da, [
      { ms: 5, ok: false },
      { ms: 6, ok: true },
    ]);
    const db1 = await addDelivery(b, sb, 'succeeded');
    await addAttempts(db1, [{ ms: 7, ok: true }]);

    const onlyA = await stats(db.pool, { tenantId: a, since: ago(24 * HOUR) });
    expect(onlyA.tenants).toEqual([
      { tenantId: a, events: 4, deliveries: 3, pending: 1, succeeded: 1, dead: 1, cancelled: 0, attempts: 2 },
    ]);
    expect(onlyA.subscriptions.every((s) => s.tenantId === a)).toBe(true);

    const everA = await stats(db.pool, { tenantId: a });
    expect(everA.tenants[0]).toMatchObject({ events: 6, deliveries: 4, cancelled: 1 });

    // allTenants: every tenant, each counted on its own.
    const all = await stats(drizzle(db.pool), { allTenants: true, since: ago(24 * HOUR) });
    const byTenant = new Map(all.tenants.map((u) => [u.tenantId, u]));
    expect(byTenant.get(a)).toEqual(onlyA.tenants[0]);
    expect(byTenant.get(b)).toEqual({
      tenantId: b,
      events: 1,
      deliveries: 1,
      pending: 0,
      succeeded: 1,
      dead: 0,
      cancelled: 0,
      attempts: 1,
    });
    expect(all.subscriptions.map((s) => s.subscriptionId)).toEqual(expect.arrayContaining([sa, sb]));
    expect(all.generatedAt.getTime()).toBeGreaterThan(Date.now() - 60_000);
    const tenants = all.tenants.map((u) => u.tenantId);
    expect(tenants).toEqual([...tenants].sort());
  });

  it('lists a tenant whose only activity in the window is retries of older deliveries', async () => {
    const t = newTenant();
    const sub = await addSubscription(t);
    const old = await addDelivery(t, sub, 'pending', { createdAt: ago(48 * HOUR) });
    await addAttempts(old, [
      { ms: 9, ok: false, at: ago(47 * HOUR) },
      { ms: 9, ok: false, at: ago(HOUR) },
      { ms: 9, ok: false, at: ago(HOUR / 2) },
    ]);
    const result = await stats(db.pool, { tenantId: t, since: ago(24 * HOUR) });
    expect(result.tenants).toEqual([
      { tenantId: t, events: 0, deliveries: 0, pending: 0, succeeded: 0, dead: 0, cancelled: 0, attempts: 2 },
    ]);
    expect(result.subscriptions[0]).toMatchObject({ attempts: 2, successes: 0, successRate: 0, pending: 1 });
  });

  it('returns empty lists for a tenant with nothing', async () => {
    const result = await stats(db.pool, { tenantId: newTenant(), since: ago(HOUR) });
    expect(result.subscriptions).toEqual([]);
    expect(result.tenants).toEqual([]);
  });
});

describe('validation', () => {
  it('names the field and the rule', async () => {
    const cases: [Record<string, unknown>, string, string][] = [
      [{ tenantId: '' }, 'tenantId', 'required'],
      [{ tenantId: 42 }, 'tenantId', 'required'],
      // The scope rule of every operator read: a tenant, or every tenant said explicitly.
      [{}, 'tenantId', 'required'],
      [{ since: new Date() }, 'tenantId', 'required'],
      [{ tenantId: 't', allTenants: true }, 'allTenants', 'conflict'],
      [{ allTenants: 'yes' }, 'allTenants', 'type'],
      [{ tenantId: 't', since: 'last week' }, 'since', 'format'],
      [{ tenantId: 't', since: new Date(Number.NaN) }, 'since', 'format'],
      [{ until: new Date() }, 'until', 'unknown'],
    ];
    for (const [input, field, rule] of cases) {
      const err = await stats(db.pool, input as never).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
      expect(err).toMatchObject({ field, rule });
    }
  });
});
