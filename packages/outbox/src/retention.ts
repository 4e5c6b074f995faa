/**
 * Retention: deletes finished deliveries (with their attempts) and fanned-out events once
 * they are older than the cutoff, in bounded batches. Each batch is its own short statement
 * that reads at most `batchSize` rows (the next ones by primary key) and deletes the eligible
 * ones among them; rows another transaction holds are skipped, so cleanup never takes a
 * long lock, never waits on a relay, and never scans a table in one go.
 *
 * What is never deleted: a `pending` delivery (due, waiting for a retry, or leased by a
 * relay), and an event that still has any delivery at all (so a recent delivery of an old
 * event, e.g. a replay, keeps its event and its history until it ages out itself).
 */
import { ValidationError } from './errors.js';
import { type Executor, runQuery } from './executor.js';
import { checkInput, intInRange, validateBoolean } from './input.js';
import { epochMs } from './rows.js';

export interface CleanupInput {
  /**
   * Retention in ms: deliveries that finished (succeeded, dead, cancelled) longer ago than
   * this, and events fanned out longer ago, are deleted. Required; 0 to 100 years.
   */
  olderThanMs: number;
  /** Rows each DELETE statement reads (and so deletes at most), 1..10,000. Default 1,000. */
  batchSize?: number;
  /** Only count what a complete run would delete; delete nothing. Default false. */
  dryRun?: boolean;
  /**
   * Most DELETE statements in this call, both phases together; what is left waits for the
   * next call (`complete: false`). Ignored by a dry run. Default: no limit.
   */
  maxBatches?: number;
  /** Called after each batch with the running totals; awaited, so it can pause between batches. */
  onBatch?: (progress: CleanupProgress) => void | Promise<void>;
  /** Checked between batches: once aborted, returns what was done so far (`complete: false`). */
  signal?: AbortSignal;
}

export interface CleanupProgress {
  /** `deliveries` first (with their attempts), then `events`. */
  phase: 'deliveries' | 'events';
  deliveries: number;
  attempts: number;
  events: number;
  batches: number;
}

export interface CleanupResult {
  /** Deleted (or, in a dry run, that would be). */
  deliveries: number;
  attempts: number;
  events: number;
  /** DELETE statements run (0 in a dry run). */
  batches: number;
  /** Rows finished or fanned out before this instant (database clock) were eligible. */
  cutoff: Date;
  dryRun: boolean;
  /** False when `maxBatches` or `signal` stopped the run before everything eligible was deleted. */
  complete: boolean;
}

export const CLEANUP_DEFAULTS = { batchSize: 1000, maxBatchSize: 10_000 } as const;

/** Finished before the cutoff, which is the statement parameter `p`. */
const finished = (p: string) => `status IN ('succeeded', 'dead', 'cancelled') AND completed_at < ${p}::timestamptz`;

/** Longest retention accepted: 100 years (anything longer is a unit mistake). */
const MAX_RETENTION_MS = 100 * 365 * 24 * 60 * 60 * 1000;

// Each batch statement reads the next `batchSize` rows after the cursor in primary-key order
// (never more, however young the rest of the table is), and deletes those of them that are
// eligible. Rows another transaction holds are skipped, not waited for (the next run gets
// them); pending deliveries are never locked at all, so a relay's claim never waits on us.
//
// The walk stops at the first row created more than FRONTIER_MARGIN_MS after the cutoff.
// Ids grow with insertion time (an identity for deliveries, a UUIDv7 for events) and
// created_at is the inserting transaction's start, so no later row can be old enough: the
// margin covers long transactions and clock skew between service hosts and the database.
// A run thus reads the old part of each table, not the whole table.

// Attempts go in the same statement (the delete trigger on deliveries would take them
// anyway: deleting them here lets us count them). The outer `status <> 'pending'` is
// rechecked on the row version being deleted: final states never return to pending, but
// no future path should make this statement delete a live row.
const DELETE_DELIVERIES = `WITH w AS (
  SELECT id, created_at FROM hookbox.deliveries WHERE id > $1::bigint ORDER BY id LIMIT $3
), v AS (
  SELECT d.id FROM hookbox.deliveries d JOIN w ON w.id = d.id
  WHERE ${finished('$2')}
  FOR UPDATE OF d SKIP LOCKED
), a AS (
  DELETE FROM hookbox.delivery_attempts WHERE delivery_id IN (SELECT id FROM v) RETURNING 1
), d AS (
  DELETE FROM hookbox.deliveries x USING v WHERE x.id = v.id AND x.status <> 'pending' RETURNING 1
)
SELECT (SELECT count(*) FROM w)::int AS seen, (SELECT max(id) FROM w)::text AS last_id,
  coalesce((SELECT bool_or(created_at >= $2::timestamptz + $4::float8 * interval '1 ms') FROM w), false) AS past,
  (SELECT count(*) FROM d)::int AS deliveries, (SELECT count(*) FROM a)::int AS attempts`;

// Old fanned-out events with no delivery left. Events waiting for fan-out have a null
// fanned_out_at and never match. SKIP LOCKED also passes over an event a replay is inserting
// a delivery for right now (its foreign-key check holds a key-share lock on the event). Once
// an event is locked, `gone` checks again on a fresh snapshot (event_has_deliveries, migration
// 0017): a replay that committed after this statement began, and before the lock, is seen
// there, so its delivery is not deleted by the cascade; a replay after the lock waits for it
// and then finds the event gone (NotFoundError, replay.ts).
const DELETE_EVENTS = `WITH w AS (
  SELECT id, created_at FROM hookbox.events WHERE id > $1::uuid ORDER BY id LIMIT $3
), v AS (
  SELECT e.id FROM hookbox.events e JOIN w ON w.id = e.id
  WHERE e.fanned_out_at < $2::timestamptz
    AND NOT EXISTS (SELECT 1 FROM hookbox.deliveries d WHERE d.event_id = e.id)
  FOR UPDATE OF e SKIP LOCKED
), gone AS (
  SELECT v.id FROM v WHERE NOT hookbox.event_has_deliveries(v.id)
), x AS (
  DELETE FROM hookbox.events e USING gone WHERE e.id = gone.id AND e.fanned_out_at < $2::timestamptz RETURNING 1
)
SELECT (SELECT count(*) FROM w)::int AS seen, (SELECT id FROM w ORDER BY id DESC LIMIT 1)::text AS last_id,
  coalesce((SELECT bool_or(created_at >= $2::timestamptz + $4::float8 * interval '1 ms') FROM w), false) AS past,
  (SELECT count(*) FROM x)::int AS events`;

// A dry run counts in one read-only statement: it takes no row locks, so it blocks nobody.
// An event counts when every delivery it has would be deleted by this run.
const COUNT = `WITH v AS (
  SELECT id FROM hookbox.deliveries WHERE ${finished('$1')}
)
SELECT (SELECT count(*) FROM v)::float8 AS deliveries,
  (SELECT count(*) FROM hookbox.delivery_attempts a JOIN v ON v.id = a.delivery_id)::float8 AS attempts,
  (SELECT count(*) FROM hookbox.events e
   WHERE e.fanned_out_at < $1::timestamptz
     AND NOT EXISTS (SELECT 1 FROM hookbox.deliveries d
                     WHERE d.event_id = e.id
                       AND (d.status = 'pending' OR d.completed_at IS NULL OR d.completed_at >= $1::timestamptz))
  )::float8 AS events`;

const MIN_UUID = '00000000-0000-0000-0000-000000000000';

/** How far past the cutoff (by created_at) the walk goes before it stops; see above. */
export const FRONTIER_MARGIN_MS = 60 * 60 * 1000;

const wholeNumber = (value: unknown, field: string, min: number, max: number) => intInRange(value, field, min, max);

/**
 * Deletes finished deliveries and their attempts, then fanned-out events, older than
 * `olderThanMs`, one bounded batch per statement; see the module comment for what is never
 * touched. Returns the counts. The caller's executor may be a pool: batches are independent
 * statements and nothing needs a transaction around them.
 */
export async function cleanup(executor: Executor, input: CleanupInput): Promise<CleanupResult> {
  checkInput(input, ['olderThanMs', 'batchSize', 'dryRun', 'maxBatches', 'onBatch', 'signal'], 'cleanup options');
  const olderThanMs = wholeNumber(input.olderThanMs, 'olderThanMs', 0, MAX_RETENTION_MS);
  const batchSize =
    input.batchSize === undefined
      ? CLEANUP_DEFAULTS.batchSize
      : wholeNumber(input.batchSize, 'batchSize', 1, CLEANUP_DEFAULTS.maxBatchSize);
  const maxBatches =
    input.maxBatches === undefined
      ? Number.POSITIVE_INFINITY
      : wholeNumber(input.maxBatches, 'maxBatches', 1, Number.MAX_SAFE_INTEGER);
  if (input.onBatch !== undefined && typeof input.onBatch !== 'function') {
    throw new ValidationError('onBatch', 'type', 'must be a function');
  }
  const dryRun = validateBoolean(input.dryRun, 'dryRun') ?? false;

  // One cutoff for the whole run, from the database clock (relays and cleanup agree on it).
  const now = await runQuery(executor, `SELECT ${epochMs('now()', 'ms')}`);
  const cutoff = new Date(Number(now[0]?.ms) - olderThanMs);
  const cutoffText = cutoff.toISOString();

  if (dryRun) {
    const c = (await runQuery(executor, COUNT, [cutoffText]))[0] ?? {};
    return {
      deliveries: Number(c.deliveries),
      attempts: Number(c.attempts),
      events: Number(c.events),
      batches: 0,
      cutoff,
      dryRun,
      complete: true,
    };
  }

  const totals = { deliveries: 0, attempts: 0, events: 0, batches: 0 };
  const stopped = () => input.signal?.aborted === true || totals.batches >= maxBatches;
  const done = (complete: boolean): CleanupResult => ({ ...totals, cutoff, dryRun, complete });

  let cursor = '0';
  for (;;) {
    if (stopped()) return done(false);
    const r =
      (await runQuery(executor, DELETE_DELIVERIES, [cursor, cutoffText, batchSize, FRONTIER_MARGIN_MS]))[0] ?? {};
    totals.batches++;
    totals.deliveries += Number(r.deliveries);
    totals.attempts += Number(r.attempts);
    await input.onBatch?.({ phase: 'deliveries', ...totals });
    if (Number(r.seen) < batchSize || r.past === true) break;
    cursor = String(r.last_id);
  }

  cursor = MIN_UUID;
  for (;;) {
    if (stopped()) return done(false);
    const r = (await runQuery(executor, DELETE_EVENTS, [cursor, cutoffText, batchSize, FRONTIER_MARGIN_MS]))[0] ?? {};
    totals.batches++;
    totals.events += Number(r.events);
    await input.onBatch?.({ phase: 'events', ...totals });
    if (Number(r.seen) < batchSize || r.past === true) break;
    cursor = String(r.last_id);
  }
  return done(true);
}
