/**
 * Delivery statistics from the log, computed by SQL aggregates: per subscription (attempts,
 * success rate, latency percentiles, dead and pending deliveries, last success/failure)
 * and per tenant (the usage operators bill or alert on). Executor first, like the rest of
 * the library. The two statements are not one snapshot unless the caller runs them in a
 * REPEATABLE READ transaction.
 */
import { type Executor, runQuery } from './executor.js';
import { checkInput, type TenantScope, validateScope } from './input.js';
import { epochMs, num, toDate } from './rows.js';
import { type TimeInput, validateTime } from './time.js';

/** Whose statistics: `tenantId`, or every tenant with `allTenants: true` (one of the two is required). */
export interface StatsInput extends TenantScope {
  /** Count attempts, events and deliveries from this time on (a Date or ISO 8601). Default: all retained history. */
  since?: TimeInput;
}

export interface SubscriptionStats {
  subscriptionId: string;
  tenantId: string;
  url: string;
  active: boolean;
  /** HTTP attempts started in the window. */
  attempts: number;
  /** Attempts answered 2xx. */
  successes: number;
  failures: number;
  /** successes / attempts, from 0 to 1; null without attempts. */
  successRate: number | null;
  /** Median attempt duration in ms (percentile_cont, interpolated); null without attempts. */
  p50Ms: number | null;
  /** 95th percentile attempt duration in ms; null without attempts. */
  p95Ms: number | null;
  /** Deliveries that became dead in the window. */
  dead: number;
  /** Deliveries pending now (the backlog), whatever the window. */
  pending: number;
  /**
   * Ordering keys this subscription holds now, whatever the window: keys whose delivery
   * went dead under the `block` policy and has not been replayed (their later events wait).
   */
  blockedKeys: number;
  /** Latest successful attempt: the relay's record on the subscription or the log, whichever is later. */
  lastSuccessAt: Date | null;
  /** Latest failed attempt, likewise. */
  lastFailureAt: Date | null;
  /** The circuit breaker now: `open` holds its deliveries, `half-open` probes one at a time. */
  circuit: 'closed' | 'open' | 'half-open';
  /** When an open circuit lets its next probe through; null while closed. */
  circuitOpenUntil: Date | null;
}

export interface TenantUsage {
  tenantId: string;
  /** Events enqueued in the window. */
  events: number;
  /** Deliveries created in the window (replays included), then by their current status. */
  deliveries: number;
  pending: number;
  succeeded: number;
  dead: number;
  cancelled: number;
  /** HTTP attempts started in the window. */
  attempts: number;
}

export interface Stats {
  /** Start of the window; null for all history. */
  since: Date | null;
  /** The database's clock when the statistics were taken. */
  generatedAt: Date;
  /** Every subscription in scope, idle ones included; by tenant, then id. */
  subscriptions: SubscriptionStats[];
  /** Tenants with events or deliveries in the window; by tenant id. */
  tenants: TenantUsage[];
}

type Row = Record<string, unknown>;

/** Positional parameters for one statement; a filter not given adds no predicate at all. */
class Params {
  readonly values: unknown[] = [];
  constructor(
    private readonly tenantId: string | null,
    private readonly since: string | null,
  ) {}
  /** `AND <column> = $n` for the tenant, or nothing. */
  tenant(column: string): string {
    if (this.tenantId === null) return '';
    this.values.push(this.tenantId);
    return `AND ${column} = $${this.values.length}`;
  }
  /** `AND <column> >= $n` for the window start, or nothing. */
  from(column: string): string {
    if (this.since === null) return '';
    this.values.push(this.since);
    return `AND ${column} >= $${this.values.length}::timestamptz`;
  }
}

// Each filter appears only when given, so the planner sees plain predicates it can match
// to indexes: (tenant_id, id) on subscriptions, deliveries and events, delivery_attempts
// by delivery_id, deliveries_due_idx for the pending backlog. The window columns
// (started_at, created_at, completed_at) have no index; they filter the rows in scope,
// which retention (cleanup) keeps bounded.
function subscriptionSql(p: Params): string {
  return `WITH att AS (
  SELECT d.subscription_id,
         count(*) AS attempts,
         count(*) FILTER (WHERE a.error_class IS NULL) AS successes,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms) AS p50,
         percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms) AS p95,
         max(a.started_at) FILTER (WHERE a.error_class IS NULL) AS last_ok,
         max(a.started_at) FILTER (WHERE a.error_class IS NOT NULL) AS last_fail
  FROM hookbox.delivery_attempts a
  JOIN hookbox.deliveries d ON d.id = a.delivery_id
  WHERE true ${p.tenant('d.tenant_id')} ${p.from('a.started_at')}
  GROUP BY d.subscription_id
), dead AS (
  SELECT subscription_id, count(*) AS dead FROM hookbox.deliveries
  WHERE status = 'dead' ${p.tenant('tenant_id')} ${p.from('completed_at')}
  GROUP BY subscription_id
), backlog AS (
  SELECT subscription_id, count(*) AS pending FROM hookbox.deliveries
  WHERE status = 'pending' ${p.tenant('tenant_id')}
  GROUP BY subscription_id
), blocked AS (
  -- The relay's rule (apps/relay/src/relay/sql.ts orderingHead): a dead ordered delivery
  -- holds its key under policy block until a later delivery of its event (a replay) exists.
  SELECT d.subscription_id, count(DISTINCT d.ordering_key) AS keys
  FROM hookbox.deliveries d JOIN hookbox.subscriptions bs ON bs.id = d.subscription_id
  WHERE d.status = 'dead' AND d.ordering_key IS NOT NULL AND bs.ordering_on_dead = 'block' ${p.tenant('d.tenant_id')}
    AND NOT EXISTS (SELECT 1 FROM hookbox.deliveries r
                    WHERE r.event_id = d.event_id AND r.subscription_id = d.subscription_id
                      AND r.id > d.id AND r.status <> 'cancelled')
  GROUP BY d.subscription_id
)
SELECT s.id, s.tenant_id, s.url, s.active,
       coalesce(att.attempts, 0) AS attempts, coalesce(att.successes, 0) AS successes,
       att.p50, att.p95, coalesce(dead.dead, 0) AS dead, coalesce(backlog.pending, 0) AS pending,
       coalesce(blocked.keys, 0) AS blocked_keys,
       ${epochMs('greatest(s.last_success_at, att.last_ok)', 'last_success_at')},
       ${epochMs('greatest(s.last_failure_at, att.last_fail)', 'last_failure_at')},
       CASE WHEN s.circuit_open_until IS NULL THEN 'closed'
            WHEN s.circuit_open_until > now() THEN 'open' ELSE 'half-open' END AS circuit,
       ${epochMs('s.circuit_open_until', 'circuit_open_until')}
FROM hookbox.subscriptions s
LEFT JOIN att ON att.subscription_id = s.id
LEFT JOIN dead ON dead.subscription_id = s.id
LEFT JOIN backlog ON backlog.subscription_id = s.id
LEFT JOIN blocked ON blocked.subscription_id = s.id
WHERE true ${p.tenant('s.tenant_id')}
ORDER BY s.tenant_id COLLATE "C", s.id`;
}

function tenantSql(p: Params): string {
  return `WITH ev AS (
  SELECT tenant_id, count(*) AS events FROM hookbox.events
  WHERE true ${p.tenant('tenant_id')} ${p.from('created_at')}
  GROUP BY tenant_id
), dl AS (
  SELECT tenant_id, count(*) AS deliveries,
         count(*) FILTER (WHERE status = 'pending') AS pending,
         count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
         count(*) FILTER (WHERE status = 'dead') AS dead,
         count(*) FILTER (WHERE status = 'cancelled') AS cancelled
  FROM hookbox.deliveries
  WHERE true ${p.tenant('tenant_id')} ${p.from('created_at')}
  GROUP BY tenant_id
)
SELECT coalesce(ev.tenant_id, dl.tenant_id) AS tenant_id, coalesce(ev.events, 0) AS events,
       coalesce(dl.deliveries, 0) AS deliveries, coalesce(dl.pending, 0) AS pending,
       coalesce(dl.succeeded, 0) AS succeeded, coalesce(dl.dead, 0) AS dead, coalesce(dl.cancelled, 0) AS cancelled
FROM ev FULL JOIN dl ON dl.tenant_id = ev.tenant_id`;
}

const rate = (ok: number, all: number) => (all === 0 ? null : ok / all);

function toSubscriptionStats(r: Row): SubscriptionStats {
  const attempts = Number(r.attempts);
  const successes = Number(r.successes);
  return {
    subscriptionId: String(r.id),
    tenantId: r.tenant_id as string,
    url: r.url as string,
    active: r.active === true || r.active === 't',
    attempts,
    successes,
    failures: attempts - successes,
    successRate: rate(successes, attempts),
    p50Ms: num(r.p50),
    p95Ms: num(r.p95),
    dead: Number(r.dead),
    pending: Number(r.pending),
    blockedKeys: Number(r.blocked_keys),
    lastSuccessAt: toDate(r.last_success_at),
    lastFailureAt: toDate(r.last_failure_at),
    circuit: r.circuit as SubscriptionStats['circuit'],
    circuitOpenUntil: toDate(r.circuit_open_until),
  };
}

function toTenantUsage(r: Row, attempts: number): TenantUsage {
  return {
    tenantId: r.tenant_id as string,
    events: Number(r.events ?? 0),
    deliveries: Number(r.deliveries ?? 0),
    pending: Number(r.pending ?? 0),
    succeeded: Number(r.succeeded ?? 0),
    dead: Number(r.dead ?? 0),
    cancelled: Number(r.cancelled ?? 0),
    attempts,
  };
}

/** Statistics per subscription and usage per tenant, for one tenant or all, since a time or ever. */
export async function stats(executor: Executor, input: StatsInput): Promise<Stats> {
  checkInput(input, ['tenantId', 'allTenants', 'since'], 'stats options');
  const tenantId = validateScope(input);
  const since = validateTime(input.since, 'since');
  const sinceIso = since?.toISOString() ?? null;
  const now = await runQuery(executor, `SELECT ${epochMs('now()', 'now')}`);
  const sp = new Params(tenantId, sinceIso);
  const subs = await runQuery(executor, subscriptionSql(sp), sp.values);
  const tp = new Params(tenantId, sinceIso);
  const tenants = await runQuery(executor, tenantSql(tp), tp.values);
  // Attempts per tenant are the sum over its subscriptions (deliveries and their attempts
  // go with a deleted subscription), so the attempts table is scanned once, not twice.
  const subscriptionStats = subs.map(toSubscriptionStats);
  const attempts = new Map<string, number>();
  for (const s of subscriptionStats) {
    if (s.attempts > 0) attempts.set(s.tenantId, (attempts.get(s.tenantId) ?? 0) + s.attempts);
  }
  const usage = tenants.map((r) => toTenantUsage(r, attempts.get(r.tenant_id as string) ?? 0));
  // A tenant may only have retried old deliveries in the window: attempts, no new rows.
  const listed = new Set(usage.map((u) => u.tenantId));
  for (const [tenant, n] of attempts) {
    if (!listed.has(tenant)) usage.push(toTenantUsage({ tenant_id: tenant }, n));
  }
  usage.sort((a, b) => (a.tenantId < b.tenantId ? -1 : a.tenantId > b.tenantId ? 1 : 0));
  return { since, generatedAt: toDate(now[0]?.now)!, subscriptions: subscriptionStats, tenants: usage };
}
