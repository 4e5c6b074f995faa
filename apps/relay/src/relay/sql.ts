/**
 * The relay's hot queries, one small function each, database handle first. Claims are
 * short transactions that set a lease; no transaction is held open during HTTP.
 */
import type pg from 'pg';
import { parseTarget } from './urls.js';

/** A delivery claimed by this relay, with everything needed to send it. */
export interface ClaimedDelivery {
  deliveryId: number;
  /** Attempt number of this claim (1 for the first); the fencing token for recording. */
  attempt: number;
  eventId: string;
  eventType: string;
  tenantId: string;
  /** Event creation time, ISO 8601 UTC; the envelope's `timestamp`. */
  eventCreatedAt: string;
  /** Event creation time in ms since the epoch (for lag). */
  eventCreatedMs: number;
  /** The event payload as JSON text, spliced into the envelope without re-serialising. */
  payload: string;
  subscriptionId: string;
  url: string;
  /** Active signing secrets: current, then the previous one while it has not expired. */
  secrets: string[];
  /** The subscription's custom headers, or null when it has none. */
  headers: Record<string, string> | null;
  /** False when the subscription was disabled after the delivery was created. */
  active: boolean;
  /** performance.now() when this relay claimed it (the lease started about then). */
  claimedAt: number;
  /** The endpoint's origin (scheme://host:port), '' when the URL is unusable. */
  origin: string;
}

export interface PendingEvent {
  id: string;
  tenantId: string;
  type: string;
  payload: string;
  createdAt: string;
  createdMs: number;
  /** Active subscriptions of the event's tenant: [id, patterns]. */
  subs: [string, string[]][];
}

const TS_ISO = `to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
const TS_MS = '(extract(epoch FROM e.created_at) * 1000)::float8';

// Claim by state (fanned_out_at IS NULL), never by an id cursor: ids are taken at insert,
// not at commit, so a cursor would skip a transaction that commits late.
const CLAIM_EVENTS = `SELECT e.id, e.tenant_id, e.type, e.payload::text AS payload,
  ${TS_ISO} AS created_at, ${TS_MS} AS created_ms,
  (SELECT coalesce(json_agg(json_build_array(s.id, s.event_types)), '[]'::json)
     FROM hookbox.subscriptions s WHERE s.tenant_id = e.tenant_id AND s.active) AS subs
FROM hookbox.events e
WHERE e.fanned_out_at IS NULL
ORDER BY e.id
LIMIT $1
FOR UPDATE OF e SKIP LOCKED`;

/** Locks up to `limit` pending events (inside the caller's transaction). */
export async function claimEvents(client: pg.ClientBase, limit: number): Promise<PendingEvent[]> {
  const { rows } = await client.query(CLAIM_EVENTS, [limit]);
  return rows.map((r) => ({
    id: r.id,
    tenantId: r.tenant_id,
    type: r.type,
    payload: r.payload,
    createdAt: r.created_at,
    createdMs: r.created_ms,
    subs: r.subs,
  }));
}

// Fan-out and first lease in one statement: deliveries are born leased to this relay,
// so the first attempt needs no separate claim.
const INSERT_LEASED = `WITH ins AS (
  INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, attempts, next_attempt_at, locked_until)
  SELECT u.event_id, u.subscription_id, u.tenant_id, 1,
         now() + $4 * interval '1 millisecond', now() + $4 * interval '1 millisecond'
  FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS u(event_id, subscription_id, tenant_id)
  RETURNING id, event_id, subscription_id
), done AS (
  UPDATE hookbox.events SET fanned_out_at = now() WHERE id = ANY($5::uuid[])
)
SELECT ins.id, ins.event_id, s.url, s.secret,
  CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret END AS previous_secret,
  CASE WHEN s.headers = '{}'::jsonb THEN NULL ELSE s.headers END AS headers, s.active,
  ins.subscription_id
FROM ins JOIN hookbox.subscriptions s ON s.id = ins.subscription_id`;

export interface FanoutPair {
  event: PendingEvent;
  subscriptionId: string;
}

/**
 * Inserts one leased delivery per (event, subscription) pair and marks every claimed
 * event fanned out (including those that matched nothing). Same transaction as claimEvents.
 */
export async function insertLeasedDeliveries(
  client: pg.ClientBase,
  events: PendingEvent[],
  pairs: FanoutPair[],
  leaseMs: number,
): Promise<ClaimedDelivery[]> {
  const { rows } = await client.query(INSERT_LEASED, [
    pairs.map((p) => p.event.id),
    pairs.map((p) => p.subscriptionId),
    pairs.map((p) => p.event.tenantId),
    leaseMs,
    events.map((e) => e.id),
  ]);
  const byId = new Map(events.map((e) => [e.id, e]));
  const claimedAt = performance.now();
  return rows.map((r) => {
    const e = byId.get(r.event_id) as PendingEvent;
    return {
      deliveryId: Number(r.id),
      attempt: 1,
      eventId: e.id,
      eventType: e.type,
      tenantId: e.tenantId,
      eventCreatedAt: e.createdAt,
      eventCreatedMs: e.createdMs,
      payload: e.payload,
      subscriptionId: r.subscription_id,
      url: r.url,
      secrets: r.previous_secret ? [r.secret, r.previous_secret] : [r.secret],
      headers: r.headers,
      active: r.active,
      claimedAt,
      origin: parseTarget(r.url)?.origin ?? '',
    };
  });
}

// Due retries and expired leases (a claim moves next_attempt_at to the lease end, so a
// relay that died leaves rows that simply become due again).
const CLAIM_DUE = `WITH c AS (
  SELECT id FROM hookbox.deliveries
  WHERE status = 'pending' AND next_attempt_at <= now()
  ORDER BY next_attempt_at
  LIMIT $1
  FOR UPDATE SKIP LOCKED
), u AS (
  UPDATE hookbox.deliveries d
  SET attempts = d.attempts + 1,
      next_attempt_at = now() + $2 * interval '1 millisecond',
      locked_until = now() + $2 * interval '1 millisecond'
  FROM c WHERE d.id = c.id
  RETURNING d.id, d.attempts, d.event_id, d.subscription_id, d.tenant_id
)
SELECT u.id, u.attempts, u.event_id, u.tenant_id, e.type, e.payload::text AS payload,
  ${TS_ISO} AS created_at, ${TS_MS} AS created_ms,
  u.subscription_id, s.url, s.secret,
  CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret END AS previous_secret,
  CASE WHEN s.headers = '{}'::jsonb THEN NULL ELSE s.headers END AS headers, s.active
FROM u
JOIN hookbox.events e ON e.id = u.event_id
JOIN hookbox.subscriptions s ON s.id = u.subscription_id`;

/** Claims up to `limit` due deliveries, bumping their attempt and leasing them. */
export async function claimDueDeliveries(db: pg.Pool, limit: number, leaseMs: number): Promise<ClaimedDelivery[]> {
  const { rows } = await db.query(CLAIM_DUE, [limit, leaseMs]);
  const claimedAt = performance.now();
  return rows.map((r) => ({
    deliveryId: Number(r.id),
    attempt: r.attempts,
    eventId: r.event_id,
    eventType: r.type,
    tenantId: r.tenant_id,
    eventCreatedAt: r.created_at,
    eventCreatedMs: r.created_ms,
    payload: r.payload,
    subscriptionId: r.subscription_id,
    url: r.url,
    secrets: r.previous_secret ? [r.secret, r.previous_secret] : [r.secret],
    headers: r.headers,
    active: r.active,
    claimedAt,
    origin: parseTarget(r.url)?.origin ?? '',
  }));
}

/** The result of one attempt, to be written to the delivery log. */
export interface Outcome {
  deliveryId: number;
  attempt: number;
  subscriptionId: string;
  /** New state: `pending` schedules a retry after `delayMs`. */
  status: 'pending' | 'succeeded' | 'dead' | 'cancelled';
  delayMs: number;
  statusCode: number | null;
  errorClass: string | null;
  errorMessage: string | null;
  startedAt: Date;
  durationMs: number;
  excerpt: string | null;
  /** False when no HTTP request was made (nothing goes to delivery_attempts). */
  attempted: boolean;
}

// Fenced: only the claim that still owns the row (same attempt number, still pending)
// may write its outcome; a relay whose lease expired and was re-claimed changes nothing.
// Attempts are logged either way: the HTTP request did happen.
const RECORD = `WITH o AS (
  SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::int[], $5::int[], $6::text[], $7::text[],
                       $8::timestamptz[], $9::int[], $10::text[], $11::uuid[], $12::bool[])
    AS o(id, attempt, status, delay_ms, status_code, error_class, error_message, started_at, duration_ms,
         excerpt, subscription_id, attempted)
), upd AS (
  UPDATE hookbox.deliveries d SET
    status = o.status,
    next_attempt_at = CASE WHEN o.status = 'pending' THEN now() + o.delay_ms * interval '1 millisecond'
                           ELSE d.next_attempt_at END,
    locked_until = NULL,
    last_status = o.status_code,
    last_error = CASE WHEN o.error_class IS NULL THEN NULL
                      ELSE o.error_class || coalesce(': ' || o.error_message, '') END,
    last_attempt_at = o.started_at,
    completed_at = CASE WHEN o.status = 'pending' THEN NULL ELSE now() END
  FROM o WHERE d.id = o.id AND d.attempts = o.attempt AND d.status = 'pending'
  RETURNING d.id
), att AS (
  INSERT INTO hookbox.delivery_attempts
    (delivery_id, attempt, started_at, duration_ms, status_code, error_class, error_message, response_excerpt)
  SELECT o.id, o.attempt, o.started_at, o.duration_ms, o.status_code, o.error_class, o.error_message, o.excerpt
  FROM o WHERE o.attempted
), stats AS (
  SELECT o.subscription_id,
         bool_or(o.error_class IS NULL) AS any_ok,
         count(*) FILTER (WHERE o.error_class IS NOT NULL) AS failures,
         max(o.started_at) FILTER (WHERE o.error_class IS NULL) AS last_ok,
         max(o.started_at) FILTER (WHERE o.error_class IS NOT NULL) AS last_fail
  FROM o WHERE o.attempted GROUP BY o.subscription_id
), sub AS (
  UPDATE hookbox.subscriptions s SET
    failure_streak = CASE WHEN st.any_ok THEN 0 ELSE s.failure_streak + st.failures END,
    last_success_at = coalesce(st.last_ok, s.last_success_at),
    last_failure_at = coalesce(st.last_fail, s.last_failure_at)
  FROM stats st WHERE s.id = st.subscription_id
)
SELECT id FROM upd`;

/** Writes a batch of outcomes in one statement; returns the ids whose state changed. */
export async function recordOutcomes(db: pg.Pool, outcomes: readonly Outcome[]): Promise<Set<number>> {
  const { rows } = await db.query(RECORD, [
    outcomes.map((o) => o.deliveryId),
    outcomes.map((o) => o.attempt),
    outcomes.map((o) => o.status),
    outcomes.map((o) => o.delayMs),
    outcomes.map((o) => o.statusCode),
    outcomes.map((o) => o.errorClass),
    outcomes.map((o) => o.errorMessage),
    outcomes.map((o) => o.startedAt),
    outcomes.map((o) => o.durationMs),
    outcomes.map((o) => o.excerpt),
    outcomes.map((o) => o.subscriptionId),
    outcomes.map((o) => o.attempted),
  ]);
  return new Set(rows.map((r) => Number(r.id)));
}

const DISABLE = `WITH s AS (
  UPDATE hookbox.subscriptions SET active = false, disabled_reason = $2, disabled_at = now(), updated_at = now()
  WHERE id = $1 AND active RETURNING id
)
UPDATE hookbox.deliveries d SET status = 'cancelled', locked_until = NULL, completed_at = now(),
  last_error = 'cancelled: subscription disabled (' || $2 || ')'
FROM s WHERE d.subscription_id = s.id AND d.status = 'pending' AND d.id <> $3`;

/** Disables a subscription (e.g. after 410 Gone) and cancels its other pending deliveries. */
export async function disableSubscription(
  db: pg.Pool,
  subscriptionId: string,
  reason: string,
  exceptDeliveryId: number,
): Promise<number> {
  const res = await db.query(DISABLE, [subscriptionId, reason, exceptDeliveryId]);
  return res.rowCount ?? 0;
}

// Hands back claims that were never started: due again after $3 ms (0: now), attempt
// count restored so the retry budget only counts requests actually sent.
const RELEASE = `UPDATE hookbox.deliveries d
SET attempts = d.attempts - 1, next_attempt_at = now() + $3 * interval '1 millisecond', locked_until = NULL
FROM unnest($1::bigint[], $2::int[]) AS r(id, attempt)
WHERE d.id = r.id AND d.attempts = r.attempt AND d.status = 'pending'`;

export async function releaseClaims(db: pg.Pool, claims: readonly ClaimedDelivery[], delayMs = 0): Promise<number> {
  if (claims.length === 0) return 0;
  const res = await db.query(RELEASE, [claims.map((c) => c.deliveryId), claims.map((c) => c.attempt), delayMs]);
  return res.rowCount ?? 0;
}

/** Whether any work remains: pending events, or deliveries not in a final state. */
export async function hasUnfinishedWork(db: pg.Pool): Promise<boolean> {
  const { rows } = await db.query(
    `SELECT EXISTS (SELECT 1 FROM hookbox.events WHERE fanned_out_at IS NULL)
         OR EXISTS (SELECT 1 FROM hookbox.deliveries WHERE status = 'pending') AS busy`,
  );
  return rows[0]?.busy === true;
}
