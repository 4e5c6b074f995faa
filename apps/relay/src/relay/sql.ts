/**
 * The relay's hot queries, one small function each, database handle first. Claims are
 * single statements that set a lease; no transaction is held open during HTTP. The three
 * that run for every batch are prepared (named) once per connection: their parameters are
 * only a LIMIT, a lease and arrays, so the cached plan fits every call
 * (test/relay-plans.test.ts checks that plans cached on empty tables still use the hot
 * indexes once the tables have grown, even before ANALYZE).
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
  /** The subscription's own cap on concurrent requests; null: only the relay's limits. */
  maxInFlight: number | null;
  /** The subscription's requests per second across all relays (take_rate_tokens); null: none. */
  rateLimit: number | null;
  /** The subscription's own request timeout in ms; null: the relay's. */
  requestTimeoutMs: number | null;
  /** The subscription's own retry schedule in ms; null: the relay's. */
  retryScheduleMs: number[] | null;
}

const TS_ISO = `to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
const TS_MS = '(extract(epoch FROM e.created_at) * 1000)::float8';

// Fan-out in one statement, one round trip: claim pending events by state (never by an id
// cursor: ids are taken at insert, not at commit, so a cursor would skip a transaction
// that commits late), mark them fanned out (also those matching nothing), match the same
// tenant's active subscriptions (hookbox.matches_any mirrors matchesEventType), and insert
// their deliveries already leased to this relay, so the first attempt needs no claim of
// its own. Every row carries the batch's counts; a batch with no deliveries returns one
// row of counts only.
//
// Fair across tenants: the batch takes the tenants with pending events in turn, starting
// after the last tenant of the previous batch ($4, wrapping around), found by a skip scan
// of events_pending_tenant_idx (one index probe per tenant, at most $1 tenants), and then
// at most ceil($1 / tenants) events of each, oldest first. One tenant alone still fills
// whole batches; a tenant with a backlog of any size takes only its share of each batch,
// so another tenant's new event waits for one batch at most, not for the backlog. Tenants
// in $6 (whose work already fills this relay's buffer) are left out of the batch.
//
// Deliveries for subscriptions this relay has parked ($3: slow or failing endpoints) are
// inserted unleased and not due before $5 ms, and are not returned: the relay would only
// hand them back (due claims leave those subscriptions out meanwhile).
const FAN_OUT = `WITH RECURSIVE after_cursor(tenant_id) AS (
  (SELECT tenant_id FROM hookbox.events WHERE fanned_out_at IS NULL AND tenant_id > $4::text
   ORDER BY tenant_id LIMIT 1)
  UNION ALL
  SELECT (SELECT e.tenant_id FROM hookbox.events e
          WHERE e.fanned_out_at IS NULL AND e.tenant_id > a.tenant_id ORDER BY e.tenant_id LIMIT 1)
  FROM after_cursor a WHERE a.tenant_id IS NOT NULL
), up_to_cursor(tenant_id) AS (
  (SELECT tenant_id FROM hookbox.events WHERE fanned_out_at IS NULL AND tenant_id <= $4::text
   ORDER BY tenant_id LIMIT 1)
  UNION ALL
  SELECT (SELECT e.tenant_id FROM hookbox.events e
          WHERE e.fanned_out_at IS NULL AND e.tenant_id > u.tenant_id AND e.tenant_id <= $4::text
          ORDER BY e.tenant_id LIMIT 1)
  FROM up_to_cursor u WHERE u.tenant_id IS NOT NULL
), tenants AS MATERIALIZED (
  SELECT tenant_id, row_number() OVER () AS turn
  FROM (SELECT tenant_id, 1 AS part FROM after_cursor WHERE tenant_id IS NOT NULL
        UNION ALL
        SELECT tenant_id, 2 FROM up_to_cursor WHERE tenant_id IS NOT NULL) t
  -- tenants whose work already fills this relay's buffer wait for the next batch
  WHERE tenant_id <> ALL($6::text[])
  LIMIT $1
), share AS (
  SELECT ceil($1::int::numeric / greatest(1, count(*)))::int AS per_tenant FROM tenants
), ev AS MATERIALIZED (
  SELECT p.id, p.tenant_id, p.type, p.payload, p.created_at, t.turn
  FROM tenants t CROSS JOIN share
  CROSS JOIN LATERAL (
    SELECT e.id, e.tenant_id, e.type, e.payload, e.created_at
    FROM hookbox.events e
    WHERE e.tenant_id = t.tenant_id AND e.fanned_out_at IS NULL
    ORDER BY e.id
    LIMIT share.per_tenant
    FOR UPDATE SKIP LOCKED
  ) p
  -- never more than the batch (the shares round up); also keeps the generic plan's estimate
  -- of the batch small, so marking it fanned out looks each event up by key
  LIMIT $1
), done AS (
  UPDATE hookbox.events e SET fanned_out_at = now() FROM ev WHERE e.id = ev.id
), m AS (
  SELECT ev.id AS event_id, s.id AS subscription_id, ev.tenant_id, s.id = ANY($3::uuid[]) AS parked
  FROM ev JOIN hookbox.subscriptions s ON s.tenant_id = ev.tenant_id AND s.active
  WHERE hookbox.matches_any(s.event_types, ev.type)
), ins AS (
  INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, attempts, next_attempt_at, locked_until)
  SELECT m.event_id, m.subscription_id, m.tenant_id,
         CASE WHEN m.parked THEN 0 ELSE 1 END,
         now() + CASE WHEN m.parked THEN $5::int ELSE $2::int END * interval '1 millisecond',
         CASE WHEN NOT m.parked THEN now() + $2 * interval '1 millisecond' END
  FROM m
  RETURNING id, event_id, subscription_id, locked_until IS NOT NULL AS leased
), counts AS (
  SELECT (SELECT count(*) FROM ev)::int AS events, (SELECT count(DISTINCT event_id) FROM m)::int AS matched,
         (SELECT tenant_id FROM tenants ORDER BY turn DESC LIMIT 1) AS last_tenant
)
SELECT counts.events, counts.matched, counts.last_tenant, d.*
FROM counts LEFT JOIN (
  SELECT ins.id, e.id AS event_id, e.tenant_id, e.type, e.payload::text AS payload,
    ${TS_ISO} AS created_at, ${TS_MS} AS created_ms,
    ins.subscription_id, s.url, s.secret,
    CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret END AS previous_secret,
    CASE WHEN s.headers = '{}'::jsonb THEN NULL ELSE s.headers END AS headers, s.active, s.max_in_flight, s.rate_limit,
    s.request_timeout_ms, s.retry_schedule_ms
  FROM ins
  JOIN ev e ON e.id = ins.event_id
  JOIN hookbox.subscriptions s ON s.id = ins.subscription_id
  WHERE ins.leased
) d ON true`;

export interface FanOutResult {
  /** Events claimed and marked fanned out. */
  events: number;
  /** Of those, events that matched at least one subscription. */
  matched: number;
  /** Their deliveries, leased to this relay (not those of parked subscriptions). */
  claimed: ClaimedDelivery[];
  /** The last tenant this batch took events of: where the next batch starts ('' when none). */
  lastTenant: string;
}

/** Where fan-out starts and what it leaves unleased; see FAN_OUT. */
export interface FanOutOptions {
  /** The previous batch's `lastTenant`: this batch starts with the tenant after it. */
  afterTenant?: string;
  /** Subscriptions whose new deliveries are inserted unleased, due in `parkMs`. */
  parkedSubscriptions?: readonly string[];
  parkMs?: number;
  /** Tenants left out of this batch (their work already fills the relay's buffer). */
  skipTenants?: readonly string[];
}

/** Fans out up to `limit` pending events in one statement, fairly across tenants; see FAN_OUT. */
export async function fanOut(
  db: pg.Pool,
  limit: number,
  leaseMs: number,
  { afterTenant = '', parkedSubscriptions = [], parkMs = 0, skipTenants = [] }: FanOutOptions = {},
): Promise<FanOutResult> {
  const { rows } = await db.query({
    name: 'hookbox_fan_out_v4',
    text: FAN_OUT,
    values: [limit, leaseMs, parkedSubscriptions, afterTenant, parkMs, skipTenants],
  });
  const first = rows[0] as { events: number; matched: number; last_tenant: string | null } | undefined;
  const claimedAt = performance.now();
  const claimed: ClaimedDelivery[] = [];
  for (const r of rows) if (r.id !== null) claimed.push(toClaimed(r, 1, claimedAt));
  return { events: first?.events ?? 0, matched: first?.matched ?? 0, claimed, lastTenant: first?.last_tenant ?? '' };
}

function toClaimed(r: Record<string, unknown>, attempt: number, claimedAt: number): ClaimedDelivery {
  const url = r.url as string;
  return {
    deliveryId: Number(r.id),
    attempt,
    eventId: r.event_id as string,
    eventType: r.type as string,
    tenantId: r.tenant_id as string,
    eventCreatedAt: r.created_at as string,
    eventCreatedMs: r.created_ms as number,
    payload: r.payload as string,
    subscriptionId: r.subscription_id as string,
    url,
    secrets: r.previous_secret ? [r.secret as string, r.previous_secret as string] : [r.secret as string],
    headers: r.headers as Record<string, string> | null,
    active: r.active as boolean,
    claimedAt,
    origin: parseTarget(url)?.origin ?? '',
    maxInFlight: (r.max_in_flight as number | null) ?? null,
    rateLimit: (r.rate_limit as number | null) ?? null,
    requestTimeoutMs: (r.request_timeout_ms as number | null) ?? null,
    retryScheduleMs: (r.retry_schedule_ms as number[] | null) ?? null,
  };
}

// Due retries and expired leases (a claim moves next_attempt_at to the lease end, so a
// relay that died leaves rows that simply become due again).
const CLAIM_DUE = `WITH c AS (
  SELECT id FROM hookbox.deliveries
  WHERE status = 'pending' AND next_attempt_at <= now()
    -- not this relay's own deliveries whose outcome it has yet to write
    AND id <> ALL($3::bigint[])
    -- nor those of subscriptions this relay parked (slow or failing endpoints)
    AND subscription_id <> ALL($4::uuid[])
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
  CASE WHEN s.headers = '{}'::jsonb THEN NULL ELSE s.headers END AS headers, s.active, s.max_in_flight, s.rate_limit,
    s.request_timeout_ms, s.retry_schedule_ms
FROM u
JOIN hookbox.events e ON e.id = u.event_id
JOIN hookbox.subscriptions s ON s.id = u.subscription_id`;

/** Claims up to `limit` due deliveries, bumping their attempt and leasing them. */
export async function claimDueDeliveries(
  db: pg.Pool,
  limit: number,
  leaseMs: number,
  exclude: readonly number[] = [],
  parkedSubscriptions: readonly string[] = [],
): Promise<ClaimedDelivery[]> {
  const { rows } = await db.query({
    name: 'hookbox_claim_due_v6',
    text: CLAIM_DUE,
    values: [limit, leaseMs, exclude, parkedSubscriptions],
  });
  const claimedAt = performance.now();
  return rows.map((r) => toClaimed(r, r.attempts, claimedAt));
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
//
// Every table access is a primary-key lookup per outcome. The statement is prepared once
// per connection, often while the tables are still small, and Postgres keeps that generic
// plan: it took the batch for 10 rows and the table for a few pages, and hashed the batch
// against a scan of every pending delivery (or of the whole table), a cost that grows with
// the backlog. `LIMIT $13` (the batch size) hides the batch size from the generic plan,
// which then assumes one row and looks each delivery up by key; at run time the LIMIT
// removes nothing.
//
// delivery_attempts has no foreign key to deliveries (migration 0007): the check cost more
// than the rest of this statement, one row lock per attempt on the row the same statement
// had just updated. Its guarantee is kept here and by a trigger: an attempt is logged only
// for a delivery this statement holds locked (updated, or share-locked when the outcome
// was fenced off), so a delete waits for this transaction, and the delete trigger on
// deliveries then removes the attempts with it. A delivery already deleted gets no log.
const RECORD = `WITH o AS (
  SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::bigint[], $5::int[], $6::text[], $7::text[],
                       $8::timestamptz[], $9::int[], $10::text[], $11::uuid[], $12::bool[])
    AS o(id, attempt, status, delay_ms, status_code, error_class, error_message, started_at, duration_ms,
         excerpt, subscription_id, attempted)
  LIMIT $13
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
  FROM o
  WHERE o.attempted
    AND (o.id IN (SELECT id FROM upd)
         OR EXISTS (SELECT 1 FROM hookbox.deliveries dd WHERE dd.id = o.id FOR KEY SHARE))
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
    -- A healthy endpoint's row is touched at most once a second: every update of it would
    -- contend with the fan-out's foreign-key share locks (multixacts) for no new information.
    AND (st.failures > 0 OR s.failure_streak <> 0 OR s.last_success_at IS NULL
         OR s.last_success_at < st.last_ok - interval '1 second')
)
SELECT id FROM upd`;

/** Writes a batch of outcomes in one statement; returns the ids whose state changed. */
export async function recordOutcomes(db: pg.Pool, outcomes: readonly Outcome[]): Promise<Set<number>> {
  const { rows } = await db.query({
    name: 'hookbox_record_v3',
    text: RECORD,
    values: [
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
      outcomes.length,
    ],
  });
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

/**
 * Takes up to `want` requests of a rate-limited subscription's current one-second window,
 * shared by every relay (hookbox.take_rate_tokens, migration 0012). Returns how many were
 * granted and the milliseconds until the window ends.
 */
export async function takeRateTokens(
  db: pg.Pool,
  subscriptionId: string,
  want: number,
): Promise<{ granted: number; waitMs: number }> {
  const { rows } = await db.query({
    name: 'hookbox_take_rate_tokens_v1',
    text: 'SELECT granted, wait_ms FROM hookbox.take_rate_tokens($1, $2)',
    values: [subscriptionId, want],
  });
  return { granted: Number(rows[0]?.granted ?? want), waitMs: Number(rows[0]?.wait_ms ?? 0) };
}

/** Whether any work remains: pending events, or deliveries not in a final state. */
export async function hasUnfinishedWork(db: pg.Pool): Promise<boolean> {
  const { rows } = await db.query(
    `SELECT EXISTS (SELECT 1 FROM hookbox.events WHERE fanned_out_at IS NULL)
         OR EXISTS (SELECT 1 FROM hookbox.deliveries WHERE status = 'pending') AS busy`,
  );
  return rows[0]?.busy === true;
}
