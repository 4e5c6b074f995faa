/**
 * Replay and recovery: send a delivery again, replay an event, bulk-recover dead deliveries
 * (sending a test event lives in send-test.ts). Every function takes the caller's executor first and is
 * scoped by `tenantId` (another tenant's id is a NotFoundError). Nothing is rewritten: each
 * replay is a NEW pending delivery whose `replay_of` names the one it replays, so the
 * delivery log keeps every earlier attempt. After writing, each sends the relay a wake-up
 * hint (a NOTIFY, delivered when the caller's transaction commits; the relay polls anyway).
 * A replay of an ordered delivery keeps its ordering key and sequence: it is sent when it
 * heads its key again, and a dead delivery that has a replay no longer blocks its key.
 */
import { NotFoundError, ValidationError } from './errors.js';
import { matchesAny } from './event-types.js';
import { type Executor, runQuery } from './executor.js';
import {
  checkInput,
  deliveryIdRef as deliveryId,
  intInRange,
  uuidRef as uuid,
  validateBoolean,
  validateScope,
} from './input.js';
import { notifyRelay } from './notify.js';
import { epochMs as ts } from './rows.js';
import type { DeliveryStatus } from './schema.js';
import { type TimeInput, validateTimeRange } from './time.js';
import { validateTenantId } from './validate.js';

/** A delivery created (or found pending) by a replay. */
export interface ReplayedDelivery {
  id: number;
  eventId: string;
  subscriptionId: string;
  tenantId: string;
  status: DeliveryStatus;
  /** The delivery this one replays; null when it is the first delivery of its event to that endpoint. */
  replayOf: number | null;
  createdAt: Date;
}

export interface RetryDeliveryInput {
  tenantId: string;
  /** The delivery to send again: a number or its decimal text. */
  id: number | string;
}

export interface RetryDeliveryResult {
  /** The new pending delivery, or the one already pending for the same event and endpoint. */
  delivery: ReplayedDelivery;
  /** False when a delivery of that event to that endpoint was already pending (nothing was added). */
  created: boolean;
}

export interface ReplayEventInput {
  tenantId: string;
  eventId: string;
  /** Replay to this subscription only. Default: every active subscription whose patterns match now. */
  subscriptionId?: string;
}

export interface ReplayEventResult {
  eventId: string;
  /** New pending deliveries, one per endpoint. */
  created: ReplayedDelivery[];
  /** Endpoints that already had a pending delivery of this event; not doubled. */
  alreadyPending: ReplayedDelivery[];
}

export interface RecoverDeadInput {
  /** Only this tenant's dead deliveries. Required unless `allTenants` is true. */
  tenantId?: string;
  /** Every tenant's dead deliveries (operators only); give it instead of `tenantId`. Default false. */
  allTenants?: boolean;
  /** Only deliveries to this subscription (which must belong to `tenantId` when that is given). */
  subscriptionId?: string;
  /** Only deliveries that went dead at or after this time (their `completed_at`). Default: no bound. */
  since?: TimeInput;
  /** Only deliveries that went dead before this time. Default: no bound. */
  until?: TimeInput;
  /** Replay at most this many (1..10,000,000). Default: no limit. */
  limit?: number;
  /** Dead deliveries examined per statement (1..10,000). Default 500. */
  batchSize?: number;
  /** Count what would be replayed; write nothing. Default false. */
  dryRun?: boolean;
  /** Called after each batch with the running totals (for progress output). */
  onProgress?: (progress: RecoverDeadResult) => void;
}

export interface RecoverDeadResult {
  /** Dead deliveries that matched the filters. */
  matched: number;
  /** Replayed (or, in a dry run, that would be). */
  replayed: number;
  /** Skipped: a later delivery of the same event to the same endpoint is pending, succeeded or dead. */
  alreadyReplayed: number;
  /** Skipped: their subscription is disabled (the relay would only cancel them). */
  subscriptionDisabled: number;
  /** Statements run. */
  batches: number;
  /** True when `limit` stopped the run: it replayed `limit`, and dead deliveries may remain (run again; a run with none left replays nothing). */
  limitReached: boolean;
  dryRun: boolean;
  /** What was (or, in a dry run, would be) replayed, per endpoint: most first. */
  bySubscription: { subscriptionId: string; tenantId: string; url: string; count: number }[];
}

const RECOVER_DEFAULTS = { batchSize: 500, maxBatchSize: 10_000, maxLimit: 10_000_000 } as const;

const DELIVERY_COLUMNS = (t: string) =>
  `${t}.id, ${t}.event_id, ${t}.subscription_id, ${t}.tenant_id, ${t}.status, ${t}.replay_of, ${ts(`${t}.created_at`, 'created_at')}`;

type Row = Record<string, unknown>;

function toDelivery(r: Row): ReplayedDelivery {
  return {
    id: Number(r.id),
    eventId: String(r.event_id),
    subscriptionId: String(r.subscription_id),
    tenantId: String(r.tenant_id),
    status: r.status as DeliveryStatus,
    replayOf: r.replay_of === null || r.replay_of === undefined ? null : Number(r.replay_of),
    createdAt: new Date(Number(r.created_at)),
  };
}

const intIn = (value: unknown, field: string, min: number, max: number, fallback: number) =>
  intInRange(value, field, min, max, { fallback });

// ---------------------------------------------------------------------------------------
// retryDelivery

// Retries, replays and recovery each take the event's transaction-level advisory lock
// (classid EVENT_LOCK, objid hashtext(event id)) before they look for a delivery of it that
// is already pending, and look through hookbox.delivery_exists (migration 0017), which reads
// on a fresh snapshot: so two of them at once (two operators, a double click, a retry and a
// replay) add one delivery, never two. Two pending deliveries of an ordered event would both
// be heads of their key and go out together.
const EVENT_LOCK = 1751868016;

// One statement: lock the delivery, and if it may be retried, insert its replay (and cancel
// it when it was a failed pending row waiting for its next try). A row a relay holds
// (locked_until in the future) is excluded; a claim racing us either wins the row lock (we
// then see its lease on recheck and do nothing) or waits and then finds it cancelled.
const RETRY = `WITH l AS MATERIALIZED (
  SELECT pg_advisory_xact_lock(${EVENT_LOCK}, hashtext(d.event_id::text)) IS NULL AS locked
  FROM hookbox.deliveries d WHERE d.tenant_id = $1 AND d.id = $2
), old AS (
  SELECT d.id, d.event_id, d.subscription_id, d.tenant_id, d.status, d.ordering_key, d.ordering_seq
  FROM hookbox.deliveries d
  JOIN hookbox.subscriptions s ON s.id = d.subscription_id
  WHERE d.tenant_id = $1 AND d.id = $2 AND s.active AND (SELECT count(*) FROM l) >= 0
    AND (d.status IN ('dead', 'cancelled')
         OR (d.status = 'pending' AND d.last_error IS NOT NULL
             AND (d.locked_until IS NULL OR d.locked_until <= now())))
    AND NOT hookbox.delivery_exists(d.event_id, d.subscription_id, '{pending}', NULL, d.id)
    AND NOT hookbox.delivery_exists(d.event_id, d.subscription_id, '{succeeded}', d.id, NULL)
  FOR UPDATE OF d
), superseded AS (
  UPDATE hookbox.deliveries d
  SET status = 'cancelled', locked_until = NULL, completed_at = now(),
      last_error = 'superseded by a manual retry; last error: ' || d.last_error
  FROM old WHERE d.id = old.id AND old.status = 'pending'
), ins AS (
  INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, replay_of, ordering_key, ordering_seq)
  SELECT event_id, subscription_id, tenant_id, id, ordering_key, ordering_seq FROM old
  RETURNING *
)
SELECT ${DELIVERY_COLUMNS('ins')} FROM ins`;

// Why a delivery could not be retried (run only after RETRY inserted nothing).
const RETRY_DIAGNOSE = `SELECT d.status, d.last_error IS NOT NULL AS failed,
  coalesce(d.locked_until > now(), false) AS leased, s.active, d.subscription_id,
  (SELECT p.id FROM hookbox.deliveries p
   WHERE p.event_id = d.event_id AND p.subscription_id = d.subscription_id
     AND p.status = 'pending' AND p.id <> d.id
   ORDER BY p.id DESC LIMIT 1) AS pending_id,
  (SELECT n.id FROM hookbox.deliveries n
   WHERE n.event_id = d.event_id AND n.subscription_id = d.subscription_id
     AND n.status = 'succeeded' AND n.id > d.id
   ORDER BY n.id DESC LIMIT 1) AS succeeded_id
FROM hookbox.deliveries d JOIN hookbox.subscriptions s ON s.id = d.subscription_id
WHERE d.tenant_id = $1 AND d.id = $2`;

const SELECT_DELIVERY = `SELECT ${DELIVERY_COLUMNS('d')} FROM hookbox.deliveries d WHERE d.tenant_id = $1 AND d.id = $2`;

/**
 * Sends a delivery again now: a dead or cancelled delivery, or a pending one whose last
 * attempt failed and that waits for its next try (that one is cancelled and replaced, so the
 * endpoint gets one request, not two). Creates a new pending delivery, due now, with
 * `replayOf` = `id`. When a delivery of the same event to the same endpoint is already
 * pending, returns it with `created: false` instead of adding another.
 *
 * Throws NotFoundError for an unknown id or another tenant's, and ValidationError (rule
 * `succeeded`, `already_replayed` (a later replay succeeded), `in_flight`, `pending` or
 * `subscription_disabled`) when it may not be retried.
 */
export async function retryDelivery(executor: Executor, input: RetryDeliveryInput): Promise<RetryDeliveryResult> {
  checkInput(input, ['tenantId', 'id'], 'retry options');
  const tenantId = validateTenantId(input.tenantId);
  const id = deliveryId(input.id);
  const rows = await runQuery(executor, RETRY, [tenantId, id]);
  if (rows[0]) {
    await notifyRelay(executor);
    return { delivery: toDelivery(rows[0]), created: true };
  }
  const why = (await runQuery(executor, RETRY_DIAGNOSE, [tenantId, id]))[0];
  if (!why) throw new NotFoundError('delivery', String(id));
  if (why.pending_id !== null && why.pending_id !== undefined) {
    const pending = (await runQuery(executor, SELECT_DELIVERY, [tenantId, Number(why.pending_id)]))[0];
    if (pending) return { delivery: toDelivery(pending), created: false };
  }
  if (!why.active) {
    throw new ValidationError(
      'id',
      'subscription_disabled',
      `delivery ${id}: subscription ${String(why.subscription_id)} is disabled; enable it first`,
    );
  }
  if (why.succeeded_id !== null && why.succeeded_id !== undefined) {
    throw new ValidationError(
      'id',
      'already_replayed',
      `delivery ${id} was already replayed and delivered by delivery ${String(why.succeeded_id)}`,
    );
  }
  switch (why.status) {
    case 'succeeded':
      throw new ValidationError(
        'id',
        'succeeded',
        `delivery ${id} already succeeded; replay its event to send it again`,
      );
    case 'pending':
      throw why.leased
        ? new ValidationError('id', 'in_flight', `delivery ${id} is being attempted right now; wait for the outcome`)
        : new ValidationError('id', 'pending', `delivery ${id} is pending and has not failed; the relay will send it`);
    default:
      // Its state changed between the two statements (e.g. a relay finished it): say so.
      throw new ValidationError('id', 'conflict', `delivery ${id} changed while retrying it; try again`);
  }
}

// ---------------------------------------------------------------------------------------
// replayEvent

const SELECT_EVENT = `SELECT id, type, fanned_out_at IS NOT NULL AS fanned_out
FROM hookbox.events WHERE tenant_id = $1 AND id = $2`;

const SELECT_SUBS = `SELECT id, event_types, active FROM hookbox.subscriptions
WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id = $2::uuid) AND ($2::uuid IS NOT NULL OR active)`;

// New deliveries for the endpoints without a pending one; the endpoints that have one come
// back as they are (the main query does not see the CTE's inserts, only what was there).
const REPLAY_EVENT = `WITH l AS MATERIALIZED (
  SELECT pg_advisory_xact_lock(${EVENT_LOCK}, hashtext($2::uuid::text)) IS NULL AS locked
), t AS (
  SELECT unnest($3::uuid[]) AS subscription_id
), ins AS (
  INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, replay_of, ordering_key, ordering_seq)
  SELECT $2::uuid, t.subscription_id, $1,
    (SELECT max(p.id) FROM hookbox.deliveries p WHERE p.event_id = $2::uuid AND p.subscription_id = t.subscription_id),
    e.ordering_key, e.ordering_seq
  FROM t JOIN hookbox.events e ON e.id = $2::uuid
  WHERE (SELECT count(*) FROM l) >= 0
    AND NOT hookbox.delivery_exists($2::uuid, t.subscription_id, '{pending}', NULL, NULL)
  RETURNING *
)
SELECT true AS created, ${DELIVERY_COLUMNS('ins')} FROM ins
UNION ALL
SELECT false, ${DELIVERY_COLUMNS('p')} FROM hookbox.deliveries p JOIN t ON t.subscription_id = p.subscription_id
WHERE p.event_id = $2::uuid AND p.status = 'pending'`;

const PENDING_OF_EVENT = `SELECT ${DELIVERY_COLUMNS('p')} FROM hookbox.deliveries p
WHERE p.tenant_id = $1 AND p.event_id = $2::uuid AND p.subscription_id = ANY($3::uuid[]) AND p.status = 'pending'`;

/**
 * Replays an event: one new pending delivery (due now) to every subscription of the tenant
 * that is active and whose patterns match the event's type today, or only to
 * `subscriptionId`. Earlier deliveries stay as they are; `replayOf` points at the latest
 * earlier delivery of the event to that endpoint. An endpoint that already has a pending
 * delivery of the event is reported in `alreadyPending`, not sent twice.
 *
 * Throws NotFoundError for an unknown event or subscription (or another tenant's), and
 * ValidationError when the event has not been fanned out yet (the relay will send it) or the
 * given subscription is disabled or does not subscribe to the event's type.
 */
export async function replayEvent(executor: Executor, input: ReplayEventInput): Promise<ReplayEventResult> {
  checkInput(input, ['tenantId', 'eventId', 'subscriptionId'], 'replay options');
  const tenantId = validateTenantId(input.tenantId);
  const eventId = uuid(input.eventId, 'event');
  const only = input.subscriptionId === undefined ? null : uuid(input.subscriptionId, 'subscription');
  const event = (await runQuery(executor, SELECT_EVENT, [tenantId, eventId]))[0];
  if (!event) throw new NotFoundError('event', eventId);
  if (!event.fanned_out) {
    throw new ValidationError(
      'eventId',
      'not_fanned_out',
      `event ${eventId} has not been fanned out yet; the relay will deliver it`,
    );
  }
  const type = String(event.type);
  const subs = await runQuery(executor, SELECT_SUBS, [tenantId, only]);
  if (only) {
    const sub = subs[0];
    if (!sub) throw new NotFoundError('subscription', only);
    if (!sub.active) {
      throw new ValidationError('subscriptionId', 'subscription_disabled', `subscription ${only} is disabled`);
    }
    if (!matchesAny(sub.event_types as string[], type)) {
      throw new ValidationError(
        'subscriptionId',
        'no_match',
        `subscription ${only} does not subscribe to ${type} (patterns: ${(sub.event_types as string[]).join(', ')})`,
      );
    }
  }
  const targets = subs.filter((s) => matchesAny(s.event_types as string[], type)).map((s) => String(s.id));
  if (targets.length === 0) return { eventId, created: [], alreadyPending: [] };
  let rows: Row[];
  try {
    rows = await runQuery(executor, REPLAY_EVENT, [tenantId, eventId, targets]);
  } catch (err) {
    // Retention deleted the event after it was read above (its foreign key is gone).
    if ((err as { code?: unknown })?.code === '23503') throw new NotFoundError('event', eventId);
    throw err;
  }
  const created = rows.filter((r) => r.created).map(toDelivery);
  if (created.length > 0) await notifyRelay(executor);
  let alreadyPending = rows.filter((r) => !r.created).map(toDelivery);
  // An endpoint neither created for nor reported: another replay added its delivery while
  // this statement waited for the event's lock (after its snapshot). Read it now.
  const answered = new Set(rows.map((r) => String(r.subscription_id)));
  const missing = targets.filter((t) => !answered.has(t));
  if (missing.length > 0) {
    const late = await runQuery(executor, PENDING_OF_EVENT, [tenantId, eventId, missing]);
    alreadyPending = [...alreadyPending, ...late.map(toDelivery)];
  }
  return { eventId, created, alreadyPending };
}

// ---------------------------------------------------------------------------------------
// recoverDead

// One batch: the next dead deliveries after the cursor (ids up to the bound taken at the
// start, so replays that die during the run are not picked up again), classified, and the
// replayable ones replayed. A dead delivery is replayable when its endpoint is active and it
// is the newest non-cancelled delivery of its event to that endpoint: a replay pending,
// succeeded or dead (that one is the candidate instead) means it was already replayed.
const CANDIDATES = `c AS (
  SELECT d.id, d.event_id, d.subscription_id, d.tenant_id, s.active, s.url, d.ordering_key, d.ordering_seq,
    EXISTS (SELECT 1 FROM hookbox.deliveries n
            WHERE n.event_id = d.event_id AND n.subscription_id = d.subscription_id
              AND n.id > d.id AND n.status <> 'cancelled') AS superseded
  FROM hookbox.deliveries d
  JOIN hookbox.subscriptions s ON s.id = d.subscription_id
  WHERE d.status = 'dead' AND d.id > $1 AND d.id <= $2
    AND ($3::text IS NULL OR d.tenant_id = $3::text)
    AND ($4::uuid IS NULL OR d.subscription_id = $4::uuid)
    AND ($5::timestamptz IS NULL OR d.completed_at >= $5::timestamptz)
    AND ($6::timestamptz IS NULL OR d.completed_at < $6::timestamptz)
  ORDER BY d.id
  LIMIT $7
)`;

const COUNTS = `(SELECT count(*) FROM c)::int AS matched,
  (SELECT max(id) FROM c)::text AS last_id,
  (SELECT count(*) FROM c WHERE NOT active)::int AS disabled,
  (SELECT count(*) FROM c WHERE active AND superseded)::int AS superseded,
  (SELECT count(*) FROM c WHERE active AND NOT superseded)::int AS replayable,
  (SELECT coalesce(json_agg(json_build_array(x.subscription_id, x.tenant_id, x.url, x.n)), '[]'::json)
     FROM (SELECT subscription_id, tenant_id, url, count(*)::int AS n FROM c WHERE active AND NOT superseded
           GROUP BY subscription_id, tenant_id, url) x) AS by_subscription`;

const RECOVER_DRY = `WITH ${CANDIDATES} SELECT ${COUNTS}`;

// The events' locks in one order (of the lock key), so two recoveries cannot deadlock; then
// `superseded` is checked again on a fresh snapshot (see EVENT_LOCK).
const RECOVER = `WITH ${CANDIDATES}, l AS MATERIALIZED (
  SELECT pg_advisory_xact_lock(${EVENT_LOCK}, x.h) IS NULL AS locked
  FROM (SELECT DISTINCT hashtext(event_id::text) AS h FROM c WHERE active AND NOT superseded ORDER BY 1) x
), ins AS (
  INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, replay_of, ordering_key, ordering_seq)
  SELECT event_id, subscription_id, tenant_id, id, ordering_key, ordering_seq FROM c
  WHERE active AND NOT superseded AND (SELECT count(*) FROM l) >= 0
    AND NOT hookbox.delivery_exists(c.event_id, c.subscription_id, '{pending,succeeded,dead}', c.id, NULL)
  ORDER BY id
  RETURNING id
)
SELECT ${COUNTS}, (SELECT count(*) FROM ins)::int AS replayed`;

/**
 * Bulk replay of dead deliveries (Svix calls it "recover"), filtered by tenant, subscription
 * and the time they went dead, in batches of `batchSize` (each its own short statement).
 * Running it twice replays nothing twice: a dead delivery that already has a later delivery
 * of the same event to the same endpoint is skipped. Deliveries to disabled subscriptions
 * are skipped too. Two recoveries at once (or a recovery and a replay) replay a row once.
 *
 * Throws NotFoundError when `subscriptionId` is not the tenant's, and ValidationError for
 * bad options (including neither `tenantId` nor `allTenants`).
 */
export async function recoverDead(executor: Executor, input: RecoverDeadInput): Promise<RecoverDeadResult> {
  checkInput(
    input,
    ['tenantId', 'allTenants', 'subscriptionId', 'since', 'until', 'limit', 'batchSize', 'dryRun', 'onProgress'],
    'recover options',
  );
  const tenantId = validateScope(input);
  const subscriptionId = input.subscriptionId === undefined ? null : uuid(input.subscriptionId, 'subscription');
  const [since, until] = validateTimeRange(input);
  const limit = intIn(input.limit, 'limit', 1, RECOVER_DEFAULTS.maxLimit, Number.POSITIVE_INFINITY);
  const batchSize = intIn(input.batchSize, 'batchSize', 1, RECOVER_DEFAULTS.maxBatchSize, RECOVER_DEFAULTS.batchSize);
  const dryRun = validateBoolean(input.dryRun, 'dryRun') ?? false;
  if (input.onProgress !== undefined && typeof input.onProgress !== 'function') {
    throw new ValidationError('onProgress', 'type', 'must be a function');
  }

  if (subscriptionId && tenantId) {
    const owned = await runQuery(executor, 'SELECT 1 FROM hookbox.subscriptions WHERE tenant_id = $1 AND id = $2', [
      tenantId,
      subscriptionId,
    ]);
    if (owned.length === 0) throw new NotFoundError('subscription', subscriptionId);
  }
  const bound = await runQuery(executor, 'SELECT coalesce(max(id), 0)::text AS max_id FROM hookbox.deliveries');
  const maxId = String(bound[0]?.max_id ?? '0');

  const result: RecoverDeadResult = {
    matched: 0,
    replayed: 0,
    alreadyReplayed: 0,
    subscriptionDisabled: 0,
    batches: 0,
    limitReached: false,
    dryRun,
    bySubscription: [],
  };
  const per = new Map<string, { subscriptionId: string; tenantId: string; url: string; count: number }>();
  let cursor = '0';
  for (;;) {
    // Never examine more than are left to replay: every replayable row of a batch is replayed.
    const take = Math.min(batchSize, limit - result.replayed);
    const row = (
      await runQuery(executor, dryRun ? RECOVER_DRY : RECOVER, [
        cursor,
        maxId,
        tenantId,
        subscriptionId,
        since?.toISOString() ?? null,
        until?.toISOString() ?? null,
        take,
      ])
    )[0] as Row;
    const matched = Number(row.matched);
    result.batches++;
    result.matched += matched;
    result.subscriptionDisabled += Number(row.disabled);
    result.alreadyReplayed += Number(row.superseded);
    result.replayed += dryRun ? Number(row.replayable) : Number(row.replayed);
    for (const [subscriptionId, tenant, url, count] of row.by_subscription as [string, string, string, number][]) {
      const entry = per.get(subscriptionId) ?? { subscriptionId, tenantId: tenant, url, count: 0 };
      entry.count += count;
      per.set(subscriptionId, entry);
    }
    result.bySubscription = [...per.values()].sort((a, b) => b.count - a.count);
    input.onProgress?.({ ...result });
    if (matched < take) break;
    if (result.replayed >= limit) {
      result.limitReached = true;
      break;
    }
    cursor = String(row.last_id);
  }
  if (!dryRun && result.replayed > 0) await notifyRelay(executor);
  return result;
}
