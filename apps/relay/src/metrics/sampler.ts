/**
 * The gauges that describe the database rather than this process: backlog, dead deliveries,
 * disabled subscriptions, the worst-failing endpoints. Sampled on a timer with a bounded
 * interval, never on scrape, so neither a scrape storm nor many Prometheus servers can turn
 * into database load. Every relay samples the same numbers: aggregate them with max().
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import type { RelayInstruments } from './metrics.js';

/** Sample interval bounds, in ms: often enough to alert on, rare enough to be free. */
export const MIN_SAMPLE_INTERVAL_MS = 1_000;
export const MAX_SAMPLE_INTERVAL_MS = 300_000;
export const DEFAULT_SAMPLE_INTERVAL_MS = 15_000;
/** Most endpoints exported on `hookbox_endpoint_failure_streak`. */
export const FAILING_ENDPOINTS_LIMIT = 20;

/** The interval actually used: `requested` clamped to [1 s, 5 min]. */
export function boundedSampleInterval(requested: number = DEFAULT_SAMPLE_INTERVAL_MS): number {
  if (!Number.isFinite(requested)) return DEFAULT_SAMPLE_INTERVAL_MS;
  return Math.min(MAX_SAMPLE_INTERVAL_MS, Math.max(MIN_SAMPLE_INTERVAL_MS, Math.round(requested)));
}

// Pending counts use the partial indexes on pending rows; dead deliveries and disabled
// subscriptions are plain counts (old final rows are pruned by cleanup).
const SAMPLE = `SELECT
  (SELECT count(*) FROM hookbox.events WHERE fanned_out_at IS NULL)::float8 AS pending_events,
  (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)
     FROM hookbox.events WHERE fanned_out_at IS NULL)::float8 AS oldest_pending_age,
  (SELECT count(*) FROM hookbox.deliveries WHERE status = 'pending' AND next_attempt_at <= now())::float8 AS due,
  (SELECT coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0)
     FROM hookbox.deliveries WHERE status = 'pending' AND next_attempt_at <= now())::float8 AS oldest_due_age,
  (SELECT count(*) FROM hookbox.deliveries
     WHERE status = 'pending' AND next_attempt_at > now() AND next_attempt_at < 'infinity')::float8 AS scheduled,
  (SELECT count(*) FROM hookbox.deliveries WHERE status = 'dead')::float8 AS dead,
  (SELECT count(*) FROM hookbox.subscriptions WHERE NOT active)::float8 AS disabled_subscriptions,
  -- (subscription, ordering key) pairs held by a dead delivery under policy block (the rule
  -- of orderingHead in relay/sql.ts); dead rows are few (deliveries_dead_idx).
  (SELECT count(*) FROM (
     SELECT DISTINCT d.subscription_id, d.ordering_key
     FROM hookbox.deliveries d JOIN hookbox.subscriptions s ON s.id = d.subscription_id
     WHERE d.status = 'dead' AND d.ordering_key IS NOT NULL AND s.ordering_on_dead = 'block'
       AND NOT EXISTS (SELECT 1 FROM hookbox.deliveries r
                       WHERE r.event_id = d.event_id AND r.subscription_id = d.subscription_id
                         AND r.id > d.id AND r.status <> 'cancelled')) b)::float8 AS blocked_keys,
  (SELECT count(*) FROM hookbox.subscriptions
     WHERE NOT active AND disabled_reason LIKE 'auto-disabled:%')::float8 AS auto_disabled,
  (SELECT coalesce(json_agg(json_build_array(f.id, f.tenant_id, f.failure_streak)), '[]'::json)
     FROM (SELECT id, tenant_id, failure_streak FROM hookbox.subscriptions
           WHERE active AND failure_streak > 0
           ORDER BY failure_streak DESC, id LIMIT $1) f) AS failing,
  (SELECT count(*) FROM hookbox.subscriptions WHERE circuit_open_until IS NOT NULL AND active)::float8 AS open_circuits,
  (SELECT coalesce(json_agg(json_build_array(c.id, c.tenant_id, c.open)), '[]'::json)
     FROM (SELECT id, tenant_id, circuit_open_until > now() AS open FROM hookbox.subscriptions
           WHERE circuit_open_until IS NOT NULL AND active
           ORDER BY failure_streak DESC, id LIMIT $1) c) AS circuits,
  -- held until enable: 'infinity' sits at the end of the due index. Ordered deliveries
  -- waiting behind their key's head sit there too; only a disabled subscription's count.
  (SELECT count(*) FROM hookbox.deliveries d JOIN hookbox.subscriptions s ON s.id = d.subscription_id
     WHERE d.status = 'pending' AND d.next_attempt_at = 'infinity' AND NOT s.active)::float8 AS held`;

interface SampleRow {
  pending_events: number;
  oldest_pending_age: number;
  due: number;
  oldest_due_age: number;
  scheduled: number;
  dead: number;
  disabled_subscriptions: number;
  blocked_keys: number;
  auto_disabled: number;
  failing: [string, string, number][];
  open_circuits: number;
  circuits: [string, string, boolean][];
  held: number;
}

/** Reads the database once and sets every sampled gauge. Throws on a database error. */
export async function sampleGauges(db: Pick<pg.Pool, 'query'>, i: RelayInstruments): Promise<void> {
  const { rows } = await db.query<SampleRow>(SAMPLE, [FAILING_ENDPOINTS_LIMIT]);
  const r = rows[0];
  if (!r) return;
  i.pendingEvents.set(r.pending_events);
  i.oldestPendingEventAge.set(Math.max(0, r.oldest_pending_age));
  i.dueDeliveries.set(r.due);
  i.oldestDueDeliveryAge.set(Math.max(0, r.oldest_due_age));
  i.scheduledDeliveries.set(r.scheduled);
  i.deadDeliveries.set(r.dead);
  i.disabledSubscriptions.set(r.disabled_subscriptions);
  i.blockedOrderingKeys.set(r.blocked_keys);
  i.autoDisabledSubscriptions.set(r.auto_disabled);
  // Reset first: an endpoint that recovered must drop out instead of keeping its last value.
  i.endpointFailureStreak.reset();
  for (const [id, tenant, streak] of r.failing) {
    i.endpointFailureStreak.set({ subscription_id: id, tenant }, streak);
  }
  i.openCircuits.set(r.open_circuits);
  i.endpointCircuitOpen.reset();
  for (const [id, tenant, open] of r.circuits) {
    i.endpointCircuitOpen.set({ subscription_id: id, tenant }, open ? 1 : 0.5);
  }
  i.heldDeliveries.set(r.held);
  i.sampleTimestamp.set(Date.now() / 1000);
}

export interface Sampler {
  /** Samples now (waits for a sample already running instead of starting a second). */
  sample(): Promise<void>;
  start(): void;
  stop(): Promise<void>;
}

/** Samples at once on start, then every `intervalMs` (bounded); a failed sample is logged and counted. */
export function createSampler(
  db: Pick<pg.Pool, 'query'>,
  instruments: RelayInstruments,
  logger: Logger,
  intervalMs: number,
): Sampler {
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;

  function sample(): Promise<void> {
    running ??= sampleGauges(db, instruments).finally(() => {
      running = null;
    });
    return running;
  }

  function tick(): void {
    sample().catch((err) => {
      instruments.sampleErrors.inc();
      logger.warn({ err }, 'metrics: database sample failed; gauges keep their last values');
    });
  }

  return {
    sample,
    start() {
      if (timer) return;
      tick();
      timer = setInterval(tick, boundedSampleInterval(intervalMs));
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = null;
      await running?.catch(() => {});
    },
  };
}
