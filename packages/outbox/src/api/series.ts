/**
 * Time series for the console's charts: HTTP attempts per time bucket (throughput, success
 * rate, latency percentiles), for one tenant or all, optionally one endpoint. Buckets with
 * no attempt are filled with zeros so a chart's x-axis is continuous.
 */
import { validateTime } from '../delivery-log.js';
import { ValidationError } from '../errors.js';
import { type Executor, runQuery } from '../executor.js';
import { isUuid } from '../subscription-validate.js';

/** Bucket widths a series may use, by name. */
export const SERIES_BUCKETS = { '1m': 60, '5m': 300, '15m': 900, '1h': 3600, '1d': 86_400 } as const;
export type SeriesBucket = keyof typeof SERIES_BUCKETS;

/** Most buckets one series may have. */
export const MAX_SERIES_POINTS = 1000;

export interface SeriesInput {
  /** One tenant, or null for every tenant (operators). */
  tenantId: string | null;
  subscriptionId?: string;
  /** Default: 24 hours before `until`. */
  since?: string;
  /** Default: now. */
  until?: string;
  /** Default: the smallest width giving at most 100 buckets. */
  bucket?: string;
}

export interface SeriesPoint {
  /** Bucket start. */
  t: string;
  attempts: number;
  successes: number;
  failures: number;
  p50Ms: number | null;
  p95Ms: number | null;
}

export interface Series {
  since: string;
  until: string;
  bucket: SeriesBucket;
  points: SeriesPoint[];
}

export async function attemptSeries(executor: Executor, input: SeriesInput, now = new Date()): Promise<Series> {
  const until = validateTime(input.until, 'until') ?? now;
  const since = validateTime(input.since, 'since') ?? new Date(until.getTime() - 86_400_000);
  if (since.getTime() >= until.getTime()) throw new ValidationError('since', 'order', 'must be earlier than until');
  const span = (until.getTime() - since.getTime()) / 1000;
  let bucket: SeriesBucket;
  if (input.bucket === undefined) {
    const names = Object.keys(SERIES_BUCKETS) as SeriesBucket[];
    bucket = names.find((b) => span / SERIES_BUCKETS[b] <= 100) ?? '1d';
  } else if (Object.hasOwn(SERIES_BUCKETS, input.bucket)) {
    bucket = input.bucket as SeriesBucket;
  } else {
    throw new ValidationError('bucket', 'enum', `must be one of ${Object.keys(SERIES_BUCKETS).join(', ')}`);
  }
  const width = SERIES_BUCKETS[bucket];
  if (span / width > MAX_SERIES_POINTS) {
    throw new ValidationError(
      'bucket',
      'range',
      `gives more than ${MAX_SERIES_POINTS} buckets; widen it or narrow the range`,
    );
  }
  if (input.subscriptionId !== undefined && !isUuid(input.subscriptionId)) {
    throw new ValidationError('subscriptionId', 'format', 'must be a subscription id (a uuid)');
  }
  const values: unknown[] = [width, since.toISOString(), until.toISOString()];
  let where = '';
  if (input.tenantId !== null) {
    values.push(input.tenantId);
    where += ` AND d.tenant_id = $${values.length}`;
  }
  if (input.subscriptionId !== undefined) {
    values.push(input.subscriptionId.toLowerCase());
    where += ` AND d.subscription_id = $${values.length}::uuid`;
  }
  // Buckets are aligned to the epoch, so the same instant always falls in the same bucket.
  const rows = await runQuery(
    executor,
    `SELECT floor(extract(epoch FROM a.started_at) / $1::int)::bigint * $1::int AS b,
  count(*)::int AS attempts,
  count(*) FILTER (WHERE a.error_class IS NULL)::int AS successes,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms) AS p50,
  percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms) AS p95
FROM hookbox.delivery_attempts a
JOIN hookbox.deliveries d ON d.id = a.delivery_id
WHERE a.started_at >= $2::timestamptz AND a.started_at < $3::timestamptz${where}
GROUP BY 1 ORDER BY 1`,
    values,
  );
  const byBucket = new Map(rows.map((r) => [Number(r.b), r]));
  const points: SeriesPoint[] = [];
  const first = Math.floor(since.getTime() / 1000 / width) * width;
  for (let b = first; b * 1000 < until.getTime(); b += width) {
    const r = byBucket.get(b);
    const attempts = r ? Number(r.attempts) : 0;
    const successes = r ? Number(r.successes) : 0;
    points.push({
      t: new Date(b * 1000).toISOString(),
      attempts,
      successes,
      failures: attempts - successes,
      p50Ms: r && r.p50 !== null ? Math.round(Number(r.p50)) : null,
      p95Ms: r && r.p95 !== null ? Math.round(Number(r.p95)) : null,
    });
  }
  return { since: since.toISOString(), until: until.toISOString(), bucket, points };
}

/** Event types seen in the outbox (one tenant or all), at most `limit`, by name. */
export async function seenEventTypes(executor: Executor, tenantId: string | null, limit = 500): Promise<string[]> {
  const rows = tenantId
    ? await runQuery(executor, 'SELECT DISTINCT type FROM hookbox.events WHERE tenant_id = $1 ORDER BY type LIMIT $2', [
        tenantId,
        limit,
      ])
    : await runQuery(executor, 'SELECT DISTINCT type FROM hookbox.events ORDER BY type LIMIT $1', [limit]);
  return rows.map((r) => String(r.type));
}
