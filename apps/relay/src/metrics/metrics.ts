/**
 * The relay's Prometheus metrics: counters and histograms fed by the relay's observer hooks,
 * gauges sampled from the database (sampler.ts), all in one prom-client Registry per relay
 * (no module singletons: two relays in one process keep separate counts).
 */
import { ValidationError } from '@hookbox/outbox';
import type pg from 'pg';
import type { Logger } from 'pino';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { type AttemptResult, classifyStatus } from '../policy/retry.js';
import { DELIVERY_OUTCOMES } from '../relay/dispatch.js';
import type { RelayObserver } from '../relay/relay.js';
import type { ClaimedDelivery } from '../relay/sql.js';
import { createSampler, DEFAULT_SAMPLE_INTERVAL_MS } from './sampler.js';

/** Label value that per-tenant counts fall back to once the tenant limit is reached. */
export const OTHER_TENANT = '_other';

export const STATUS_CLASSES = ['2xx', '3xx', '4xx', '5xx', 'timeout', 'network'] as const;
export type StatusClass = (typeof STATUS_CLASSES)[number];

export interface MetricsRegistryOptions {
  /**
   * Most tenants that get their own `tenant` label on `hookbox_tenant_deliveries_total`,
   * in first-seen order; every later tenant is counted under `tenant="_other"`. 0 puts all
   * tenants under `_other`. Default 100 (RELAY_DEFAULTS.metricsTenantLimit).
   */
  tenantLimit?: number;
  /** Also export prom-client's default process and Node.js metrics. Default true. */
  defaultMetrics?: boolean;
}

/** Every instrument of the registry; the sampler sets the gauges. */
export interface RelayInstruments {
  fannedOut: Counter<'result'>;
  deliveries: Counter<'outcome'>;
  attempts: Counter<'status_class'>;
  duration: Histogram<never>;
  lag: Histogram<never>;
  tenantDeliveries: Counter<'tenant'>;
  pendingEvents: Gauge<never>;
  oldestPendingEventAge: Gauge<never>;
  dueDeliveries: Gauge<never>;
  oldestDueDeliveryAge: Gauge<never>;
  scheduledDeliveries: Gauge<never>;
  deadDeliveries: Gauge<never>;
  disabledSubscriptions: Gauge<never>;
  blockedOrderingKeys: Gauge<never>;
  endpointFailureStreak: Gauge<'subscription_id' | 'tenant'>;
  openCircuits: Gauge<never>;
  endpointCircuitOpen: Gauge<'subscription_id' | 'tenant'>;
  heldDeliveries: Gauge<never>;
  autoDisabledSubscriptions: Gauge<never>;
  sampleTimestamp: Gauge<never>;
  slowEndpoints: Gauge<never>;
  slowInFlight: Gauge<never>;
  parkedSubscriptions: Gauge<never>;
  sampleErrors: Counter<never>;
}

export interface MetricsRegistry {
  registry: Registry;
  instruments: RelayInstruments;
  /** The relay hooks that move the counters and histograms. Never throws. */
  observer: RelayObserver;
}

// HTTP attempt time: from a fast local receiver up to the default 15 s request timeout.
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30];
// Event to first success: sub-second when healthy, up to the ~27.5 h retry budget.
const LAG_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400, 172800];

/** The attempt's label on `hookbox_delivery_attempts_total`. SSRF-blocked, DNS, TLS, refused and reset count as `network`. */
export function statusClassOf(result: AttemptResult): StatusClass {
  if (result.kind === 'response') return classifyStatus(result.status);
  return result.errorClass === 'timeout' ? 'timeout' : 'network';
}

/**
 * Bounds the `tenant` label: the first `limit` tenants seen keep their id, the rest share
 * `_other`. Remembers at most `limit` ids, so memory and series count stay bounded however
 * many tenants there are. First-seen rather than top-N by volume: a label must never move
 * from one series to another, or rates over it would be wrong.
 */
export class TenantLabels {
  private readonly seen = new Set<string>();
  constructor(readonly limit: number) {}

  label(tenantId: string): string {
    if (this.seen.has(tenantId)) return tenantId;
    if (this.seen.size < this.limit) {
      this.seen.add(tenantId);
      return tenantId;
    }
    return OTHER_TENANT;
  }
}

/** Builds the registry and its instruments. Touches no database. */
export function createMetricsRegistry(opts: MetricsRegistryOptions = {}): MetricsRegistry {
  const tenantLimit = opts.tenantLimit ?? 100;
  if (!Number.isInteger(tenantLimit) || tenantLimit < 0) {
    throw new ValidationError('tenantLimit', 'range', `must be an integer >= 0 (got ${tenantLimit})`);
  }
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const gauge = (name: string, help: string) => new Gauge({ name, help, registers });

  const i: RelayInstruments = {
    fannedOut: new Counter({
      name: 'hookbox_events_fanned_out_total',
      help: 'Events fanned out, by whether they matched at least one active subscription.',
      labelNames: ['result'],
      registers,
    }),
    deliveries: new Counter({
      name: 'hookbox_deliveries_total',
      help: 'Delivery outcomes: succeeded, retry (an attempt failed, another is scheduled), dead, disabled (410 Gone), cancelled (its subscription was disabled by 410 Gone after the claim; other disables keep deliveries pending).',
      labelNames: ['outcome'],
      registers,
    }),
    attempts: new Counter({
      name: 'hookbox_delivery_attempts_total',
      help: 'HTTP delivery attempts by response status class, or timeout / network when no response came back.',
      labelNames: ['status_class'],
      registers,
    }),
    duration: new Histogram({
      name: 'hookbox_delivery_duration_seconds',
      help: 'Wall time of one HTTP delivery attempt.',
      buckets: DURATION_BUCKETS,
      registers,
    }),
    lag: new Histogram({
      name: 'hookbox_delivery_lag_seconds',
      help: 'Time from event creation to the successful delivery of each of its deliveries.',
      buckets: LAG_BUCKETS,
      registers,
    }),
    tenantDeliveries: new Counter({
      name: 'hookbox_tenant_deliveries_total',
      help: `Delivery outcomes per tenant; the first ${tenantLimit} tenants seen by this relay get their own label, later ones count under tenant="${OTHER_TENANT}".`,
      labelNames: ['tenant'],
      registers,
    }),
    pendingEvents: gauge('hookbox_pending_events', 'Events committed but not yet fanned out (sampled).'),
    oldestPendingEventAge: gauge(
      'hookbox_oldest_pending_event_age_seconds',
      'Age of the oldest event not yet fanned out; 0 when none (sampled).',
    ),
    dueDeliveries: gauge('hookbox_due_deliveries', 'Pending deliveries due now and not leased by a relay (sampled).'),
    oldestDueDeliveryAge: gauge(
      'hookbox_oldest_due_delivery_age_seconds',
      'How long the most overdue pending delivery has been due; 0 when none (sampled).',
    ),
    scheduledDeliveries: gauge(
      'hookbox_scheduled_deliveries',
      'Pending deliveries not yet due: retries waiting for their time, and deliveries leased by a relay (sampled).',
    ),
    deadDeliveries: gauge(
      'hookbox_dead_deliveries',
      'Deliveries that exhausted their retries or were refused (sampled).',
    ),
    disabledSubscriptions: gauge('hookbox_disabled_subscriptions', 'Subscriptions that are disabled (sampled).'),
    blockedOrderingKeys: gauge(
      'hookbox_blocked_ordering_keys',
      '(subscription, ordering key) pairs held by a dead delivery under the block policy: their later events wait until it is replayed (sampled).',
    ),
    endpointFailureStreak: new Gauge({
      name: 'hookbox_endpoint_failure_streak',
      help: 'Consecutive failed attempts of the active subscriptions with the longest failure streaks (at most 20, sampled).',
      labelNames: ['subscription_id', 'tenant'],
      registers,
    }),
    openCircuits: gauge(
      'hookbox_open_circuits',
      'Active subscriptions whose circuit breaker is open or half-open: deliveries held, one probe at a time (sampled).',
    ),
    endpointCircuitOpen: new Gauge({
      name: 'hookbox_endpoint_circuit_open',
      help: 'Per subscription whose circuit is not closed (at most 20, longest failure streaks first, sampled): 1 open, 0.5 half-open (probing).',
      labelNames: ['subscription_id', 'tenant'],
      registers,
    }),
    autoDisabledSubscriptions: gauge(
      'hookbox_auto_disabled_subscriptions',
      'Subscriptions disabled automatically after failing without a success for --disable-after (sampled).',
    ),
    heldDeliveries: gauge(
      'hookbox_held_deliveries',
      'Pending deliveries held for disabled subscriptions; they resume when the subscription is enabled (sampled).',
    ),
    slowEndpoints: gauge(
      'hookbox_relay_slow_endpoints',
      'Endpoint origins this relay marks slow: a request took longer than --slow-after; they send only from --slow-concurrency.',
    ),
    slowInFlight: gauge(
      'hookbox_relay_slow_requests_in_flight',
      'Requests in flight to slow endpoints (outside --concurrency).',
    ),
    parkedSubscriptions: gauge(
      'hookbox_relay_parked_subscriptions',
      'Subscriptions whose deliveries this relay hands back and leaves out of its claims for now (slow endpoint, or 5 failures in a row).',
    ),
    sampleTimestamp: gauge(
      'hookbox_metrics_last_sample_timestamp_seconds',
      'Unix time of the last successful database sample of the gauges.',
    ),
    sampleErrors: new Counter({
      name: 'hookbox_metrics_sample_errors_total',
      help: 'Database samples of the gauges that failed.',
      registers,
    }),
  };
  // Export every known label value from the start, so rate() and alerts see a 0 before the first event.
  for (const result of ['matched', 'unmatched']) i.fannedOut.inc({ result }, 0);
  for (const outcome of DELIVERY_OUTCOMES) i.deliveries.inc({ outcome }, 0);
  for (const status_class of STATUS_CLASSES) i.attempts.inc({ status_class }, 0);

  const tenants = new TenantLabels(tenantLimit);
  // The relay's hooks must never throw: a metric must not fail a delivery.
  const safe = (fn: () => void) => {
    try {
      fn();
    } catch {
      // prom-client refuses only invalid numbers; drop that one observation.
    }
  };
  const seconds = (ms: number) => (Number.isFinite(ms) ? Math.max(0, ms) / 1000 : 0);
  const observer: RelayObserver = {
    fannedOut: (matched, unmatched) =>
      safe(() => {
        i.fannedOut.inc({ result: 'matched' }, matched);
        i.fannedOut.inc({ result: 'unmatched' }, unmatched);
      }),
    attempt: (_d: ClaimedDelivery, result, durationMs) =>
      safe(() => {
        i.attempts.inc({ status_class: statusClassOf(result) });
        i.duration.observe(seconds(durationMs));
      }),
    outcome: (d, outcome) =>
      safe(() => {
        i.deliveries.inc({ outcome });
        i.tenantDeliveries.inc({ tenant: tenants.label(d.tenantId) });
        // A delivery succeeds once (the row is final afterwards), so this is its first success.
        // The event's time comes from the database clock: small skews clamp at 0.
        if (outcome === 'succeeded') i.lag.observe(seconds(Date.now() - d.eventCreatedMs));
      }),
    isolation: (state) =>
      safe(() => {
        i.slowEndpoints.set(state.slowEndpoints);
        i.slowInFlight.set(state.slowInFlight);
        i.parkedSubscriptions.set(state.parkedSubscriptions);
      }),
  };
  return { registry, instruments: i, observer };
}

/**
 * Every series name the registry exports: counters and gauges as named, histograms as their
 * `_bucket`, `_sum` and `_count` series. For checking dashboards and alert rules.
 */
export function exportedSeriesNames(registry: Registry): Set<string> {
  const names = new Set<string>();
  for (const m of registry.getMetricsAsArray()) {
    const { name, type } = m as unknown as { name: string; type: string };
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
    else if (type === 'summary') for (const s of ['', '_sum', '_count']) names.add(name + s);
    else names.add(name);
  }
  return names;
}

export interface RelayMetricsDeps extends MetricsRegistryOptions {
  /** Read by the gauge sampler only: one short query per interval. */
  db: Pick<pg.Pool, 'query'>;
  logger: Logger;
  /** How often the database gauges are sampled, in ms, clamped to [1 s, 5 min]. Default 15 s. */
  sampleIntervalMs?: number;
}

export interface RelayMetrics extends MetricsRegistry {
  /** Samples the database gauges now. */
  sample(): Promise<void>;
  /** Starts periodic sampling (the first sample at once). */
  start(): void;
  /** Stops sampling and waits for a sample in progress. */
  stop(): Promise<void>;
}

/** The relay's metrics: pass `observer` to createRelay and `registry` to the admin server. */
export function createRelayMetrics({ db, logger, sampleIntervalMs, ...opts }: RelayMetricsDeps): RelayMetrics {
  const metrics = createMetricsRegistry(opts);
  const sampler = createSampler(db, metrics.instruments, logger, sampleIntervalMs ?? DEFAULT_SAMPLE_INTERVAL_MS);
  return { ...metrics, sample: sampler.sample, start: sampler.start, stop: sampler.stop };
}
