/**
 * The relay's hot queries, one small function each, database handle first. Claims are
 * single statements that set a lease; no transaction is held open during HTTP. The three
 * that run for every batch are prepared (named) once per connection: their parameters are
 * only a LIMIT, a lease and arrays, so the cached plan fits every call
 * (test/relay-plans.test.ts checks that plans cached on empty tables still use the hot
 * indexes once the tables have grown, even before ANALYZE).
 */
import type { DeliveryStatus } from '@hookbox/outbox';
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
  /** The event's ordering key, or null for an unordered event. */
  orderingKey: string | null;
  /** The event's position among its key's events; null for an unordered event. */
  orderingSeq: number | null;
  /** The single probe of a half-open circuit (see CLAIM_DUE). */
  probe: boolean;
  /** The subscription's requests per second across all relays (take_rate_tokens); null: none. */
  rateLimit: number | null;
  /** The subscription's own request timeout in ms; null: the relay's. */
  requestTimeoutMs: number | null;
  /** The subscription's own retry schedule in ms; null: the relay's. */
  retryScheduleMs: number[] | null;
}

const TS_ISO = `to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
const TS_MS = '(extract(epoch FROM e.created_at) * 1000)::float8';
// What a claim needs of its subscription (s) to send the delivery: see toClaimed.
const SUBSCRIPTION_COLUMNS = `s.url, s.secret,
  CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret END AS previous_secret,
  CASE WHEN s.headers = '{}'::jsonb THEN NULL ELSE s.headers END AS headers, s.active, s.max_in_flight, s.rate_limit,
  s.request_timeout_ms, s.retry_schedule_ms`;

// Ordered delivery (docs/ordering.md). A delivery with an ordering key may start only when
// it is the head of its (subscription, key): no delivery of the same subscription and key
// with a lower sequence is unfinished — pending (in flight or waiting for a retry), or dead
// while the subscription's policy is `block` and no later delivery of that event to that
// endpoint (a replay) exists — and no event of the key with a lower sequence still waits
// for fan-out (it may yet add a delivery ahead of this one: only events numbered at enqueue
// before migration 0016 are pending with a number; fan-out numbers the others above every
// number given so far). Both probes are index range scans (deliveries_ordering_idx,
// events_pending_numbered_idx) that stop at the first row.
// Correctness rests on this predicate alone: final states never become pending again
// except through a replay, which adds a row of the same sequence.
// @hookbox/outbox keeps a copy (orderingHead in packages/outbox/src/subscriptions.ts) by
// which subscriptions.enable/update resume only the held heads; change both together
// (test/ordering-enable-dead-head.test.ts checks they are the same text).
export function orderingHead(d: string, excludeBatch = ''): string {
  return `NOT EXISTS (
    SELECT 1 FROM hookbox.deliveries p
    WHERE p.tenant_id = ${d}.tenant_id AND p.ordering_key = ${d}.ordering_key
      AND p.subscription_id = ${d}.subscription_id AND p.ordering_seq < ${d}.ordering_seq
      AND p.status IN ('pending', 'dead')
      AND (p.status = 'pending'
           OR ((SELECT ps.ordering_on_dead FROM hookbox.subscriptions ps WHERE ps.id = p.subscription_id) = 'block'
               AND NOT EXISTS (SELECT 1 FROM hookbox.deliveries r
                               WHERE r.event_id = p.event_id AND r.subscription_id = p.subscription_id AND r.id > p.id
                                 AND r.status <> 'cancelled'))))
  AND NOT EXISTS (
    SELECT 1 FROM hookbox.events pe
    WHERE pe.tenant_id = ${d}.tenant_id AND pe.ordering_key = ${d}.ordering_key
      AND pe.ordering_seq IS NOT NULL AND pe.ordering_seq < ${d}.ordering_seq AND pe.fanned_out_at IS NULL${excludeBatch})`;
}

// Fan-out in one statement, one round trip: claim pending events by state (never by an id
// cursor: ids are taken at insert, not at commit, so a cursor would skip a transaction
// that commits late), mark them fanned out (also those matching nothing), match the same
// tenant's active subscriptions (hookbox.matches_any mirrors matchesEventType), and insert
// their deliveries already leased to this relay, so the first attempt needs no claim of
// its own. The first row carries the batch's counts and lists; a batch with no deliveries
// returns one row of them only.
//
// Ordered events are numbered here (docs/ordering.md): enqueue drew their pos after taking
// their key's advisory lock, held to commit, so per key pos order is commit order, and
// every event of a key that committed before this statement's snapshot is visible to it.
// The batch numbers its events of each key in pos order, continuing the key's counter in
// hookbox.ordering_keys (one upsert per key), and writes the number onto the event and its
// deliveries. An event of a key waits for a later batch (is not marked fanned out) when a
// pending event of its key with a lower pos is not in this batch (another relay's fan-out
// holds it: SKIP LOCKED), so numbers never overtake. Events numbered at enqueue (before
// migration 0016) keep their number.
// Of a batch's deliveries to one (subscription, key) only the lowest sequence may be leased
// here, and only when it is the head (orderingHead, not counting this batch's own events as
// waiting for fan-out); the others are inserted parked (next_attempt_at = infinity,
// attempts 0) until promoteHeads makes them due.
//
// Fair across tenants: the batch takes the tenants with pending events in turn, starting
// after the last tenant of the previous batch ($4, wrapping around), found by a skip scan
// of events_pending_tenant_idx (one index probe per tenant, at most $1 tenants), and then
// at most ceil($1 / tenants) events of each, lowest pos first. One tenant alone still fills
// whole batches; a tenant with a backlog of any size takes only its share of each batch,
// so another tenant's new event waits for one batch at most, not for the backlog. Tenants
// in $6 (whose work already fills this relay's buffer) are left out of the batch; when $7
// is not null, only the tenants in it are taken (the relay's side lane, relay.ts).
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
    -- the side lane takes only its own tenants
    AND ($7::text[] IS NULL OR tenant_id = ANY($7::text[]))
  LIMIT $1
), share AS (
  SELECT ceil($1::int::numeric / greatest(1, count(*)))::int AS per_tenant FROM tenants
), ev0 AS MATERIALIZED (
  SELECT p.id, p.tenant_id, p.type, p.payload, p.created_at, p.ordering_key, p.ordering_seq, p.pos, t.turn
  FROM tenants t CROSS JOIN share
  CROSS JOIN LATERAL (
    SELECT e.id, e.tenant_id, e.type, e.payload, e.created_at, e.ordering_key, e.ordering_seq, e.pos
    FROM hookbox.events e
    -- A range of one tenant rather than '=', and ordered by (tenant_id, pos): only
    -- events_pending_tenant_idx gives that order, so the cached generic plan never walks
    -- events_pkey or events_tenant_id_idx past every fanned-out event (it did after a drain,
    -- while the statistics still said most events were pending: 4 ms a batch instead of
    -- 0.1). Events written before migration 0016 (null pos) come first.
    WHERE e.tenant_id >= t.tenant_id AND e.tenant_id <= t.tenant_id AND e.fanned_out_at IS NULL
    ORDER BY e.tenant_id, e.pos NULLS FIRST
    LIMIT share.per_tenant
    FOR UPDATE SKIP LOCKED
  ) p
  -- never more than the batch (the shares round up); also keeps the generic plan's estimate
  -- of the batch small, so marking it fanned out looks each event up by key
  LIMIT $1
), gap AS MATERIALIZED (
  -- Per key this batch numbers: the lowest pos of a pending event of the key that the batch
  -- does not hold (another relay's fan-out locked it) and that is below the batch's highest
  -- of its tenant; the batch's events of the key from there on wait. One range of
  -- events_pending_tenant_idx per tenant, which holds little more than the batch's own
  -- events of that tenant (the pick took the lowest pos it could lock): no index of its own,
  -- which every ordered enqueue would pay for.
  SELECT h.tenant_id, h.ordering_key, min(h.pos) AS first_gap
  FROM (SELECT ev0.tenant_id, max(ev0.pos) AS hi FROM ev0
        WHERE ev0.ordering_key IS NOT NULL AND ev0.ordering_seq IS NULL GROUP BY ev0.tenant_id) t
  CROSS JOIN LATERAL (
    SELECT pe.tenant_id, pe.ordering_key, pe.pos FROM hookbox.events pe
    -- '=' on the tenant makes pos < hi a bound where the index scan stops (after a range of
    -- tenants it would walk every pending event of the tenant); the ORDER BY, which only
    -- events_pending_tenant_idx gives, keeps cached plans on it.
    WHERE pe.tenant_id = t.tenant_id AND pe.fanned_out_at IS NULL
      AND pe.pos < t.hi AND pe.ordering_key IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM ev0 WHERE ev0.id = pe.id)
    ORDER BY pe.tenant_id, pe.pos NULLS FIRST
  ) h
  GROUP BY h.tenant_id, h.ordering_key
), ev1 AS MATERIALIZED (
  SELECT ev0.*, count(*) OVER w AS n, row_number() OVER (w ORDER BY ev0.pos) AS rn
  FROM ev0 LEFT JOIN gap g
    ON g.tenant_id = ev0.tenant_id AND g.ordering_key = ev0.ordering_key AND ev0.ordering_seq IS NULL
  WHERE g.first_gap IS NULL OR ev0.pos < g.first_gap
  WINDOW w AS (PARTITION BY ev0.tenant_id, ev0.ordering_key, ev0.ordering_seq IS NULL)
), k AS (
  -- One upsert per key: its next n numbers, in (tenant, key) order.
  INSERT INTO hookbox.ordering_keys AS k (tenant_id, key, seq)
  SELECT DISTINCT ev1.tenant_id, ev1.ordering_key, ev1.n FROM ev1
  WHERE ev1.ordering_key IS NOT NULL AND ev1.ordering_seq IS NULL
  ORDER BY 1, 2
  ON CONFLICT (tenant_id, key) DO UPDATE SET seq = k.seq + excluded.seq
  RETURNING k.tenant_id, k.key, k.seq
), ev AS MATERIALIZED (
  SELECT ev1.id, ev1.tenant_id, ev1.type, ev1.payload, ev1.created_at, ev1.ordering_key, ev1.turn,
    CASE WHEN ev1.ordering_key IS NOT NULL AND ev1.ordering_seq IS NULL THEN k.seq - ev1.n + ev1.rn
         ELSE ev1.ordering_seq END AS ordering_seq
  FROM ev1 LEFT JOIN k ON k.tenant_id = ev1.tenant_id AND k.key = ev1.ordering_key
), done AS (
  UPDATE hookbox.events e SET fanned_out_at = now(), ordering_seq = ev.ordering_seq FROM ev WHERE e.id = ev.id
), m0 AS (
  SELECT ev.id AS event_id, s.id AS subscription_id, ev.tenant_id, ev.ordering_key, ev.ordering_seq,
    s.circuit_open_until, s.id = ANY($3::uuid[]) AS parked,
    CASE WHEN ev.ordering_key IS NULL THEN 1
         ELSE row_number() OVER (PARTITION BY s.id, ev.ordering_key ORDER BY ev.ordering_seq) END AS rn
  FROM ev JOIN hookbox.subscriptions s ON s.tenant_id = ev.tenant_id AND s.active
  WHERE hookbox.matches_any(s.event_types, ev.type)
    -- an operational event is never delivered to the subscription it is about
    AND NOT (starts_with(ev.type, 'hookbox.') AND ev.payload->>'subscriptionId' = s.id::text)
), m1 AS MATERIALIZED (
  SELECT m0.*, m0.ordering_key IS NULL OR (m0.rn = 1 AND ${orderingHead('m0', ' AND NOT EXISTS (SELECT 1 FROM ev WHERE ev.id = pe.id)')}) AS lead
  FROM m0
), m AS (
  SELECT m1.*, m1.lead AND m1.circuit_open_until IS NULL AND NOT m1.parked AS leased FROM m1
), ins AS (
  -- Leased to this relay: a head (or unordered) delivery whose circuit is closed and whose
  -- subscription this relay has not parked. An ordered delivery that is not its key's head
  -- is parked (infinity) until promoteHeads; a subscription whose circuit is not closed gets
  -- its heads unleased, no attempt spent, due when the circuit half-opens (the due claim
  -- then probes or holds them); a parked subscription's, due in $5 ms.
  INSERT INTO hookbox.deliveries
    (event_id, subscription_id, tenant_id, attempts, next_attempt_at, locked_until, ordering_key, ordering_seq)
  SELECT m.event_id, m.subscription_id, m.tenant_id,
         CASE WHEN m.leased THEN 1 ELSE 0 END,
         CASE WHEN NOT m.lead THEN 'infinity'
              WHEN m.circuit_open_until IS NOT NULL THEN greatest(m.circuit_open_until, now())
              WHEN m.parked THEN now() + $5::int * interval '1 millisecond'
              ELSE now() + $2 * interval '1 millisecond' END,
         CASE WHEN m.leased THEN now() + $2 * interval '1 millisecond' END,
         m.ordering_key, m.ordering_seq
  FROM m
  RETURNING id, event_id, subscription_id, ordering_key, ordering_seq, locked_until IS NOT NULL AS leased
), counts AS (
  SELECT (SELECT count(*) FROM ev)::int AS events, (SELECT count(DISTINCT event_id) FROM m)::int AS matched,
    (SELECT jsonb_agg(DISTINCT jsonb_build_array(ev.tenant_id, ev.ordering_key)) FROM ev
     WHERE ev.ordering_key IS NOT NULL) AS ordering_keys,
    (SELECT tenant_id FROM tenants ORDER BY turn DESC LIMIT 1) AS last_tenant,
    (SELECT jsonb_agg(DISTINCT ev.tenant_id) FROM ev) AS tenants
)
-- The batch's figures once, on the first row (or on the one row when nothing was leased):
-- the two lists are ~1 kB of JSON on a batch across many tenants, which every delivery row
-- would otherwise carry and the relay parse again.
SELECT counts.events, counts.matched, counts.last_tenant,
  CASE WHEN d.head IS NOT FALSE THEN counts.ordering_keys END AS ordering_keys,
  CASE WHEN d.head IS NOT FALSE THEN counts.tenants END AS tenants, d.*
FROM counts LEFT JOIN (
  SELECT row_number() OVER () = 1 AS head, ins.id, e.id AS event_id, e.tenant_id, e.type, e.payload::text AS payload,
    ${TS_ISO} AS created_at, ${TS_MS} AS created_ms,
    ins.subscription_id, s.url, s.secret,
    CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret END AS previous_secret,
    CASE WHEN s.headers = '{}'::jsonb THEN NULL ELSE s.headers END AS headers, s.active, s.max_in_flight, s.rate_limit,
    s.request_timeout_ms, s.retry_schedule_ms, ins.ordering_key, ins.ordering_seq
  FROM ins
  -- The event by primary key (this statement's snapshot: its row before done, whose
  -- type, payload and time are what ev holds; the number comes with the delivery), not
  -- ev: the generic plan estimates one row for every CTE and joins them in a nested loop
  -- that rescans ev once per delivery (5 of a 10 ms batch of 32 events, 64 deliveries).
  JOIN hookbox.events e ON e.id = ins.event_id
  JOIN hookbox.subscriptions s ON s.id = ins.subscription_id
  WHERE ins.leased
) d ON true`;

export interface FanOutResult {
  /** Events claimed and marked fanned out. */
  events: number;
  /** Of those, events that matched at least one subscription. */
  matched: number;
  /** Their deliveries, leased to this relay: not those of parked subscriptions or held by an open circuit, and ordered ones only when they are their key's head. */
  claimed: ClaimedDelivery[];
  /** The (tenant, ordering key) pairs of the batch's ordered events, for promoteHeads. */
  orderingKeys: [string, string][];
  /** The last tenant this batch took events of: where the next batch starts ('' when none). */
  lastTenant: string;
  /** The tenants whose events this batch fanned out. */
  tenants: string[];
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
  /** When set, only these tenants are taken (the relay's side lane). */
  onlyTenants?: readonly string[] | null;
}

/** Fans out up to `limit` pending events in one statement, fairly across tenants; see FAN_OUT. */
export async function fanOut(
  db: pg.Pool,
  limit: number,
  leaseMs: number,
  { afterTenant = '', parkedSubscriptions = [], parkMs = 0, skipTenants = [], onlyTenants = null }: FanOutOptions = {},
): Promise<FanOutResult> {
  const { rows } = await db.query({
    name: 'hookbox_fan_out_v9',
    text: FAN_OUT,
    values: [limit, leaseMs, parkedSubscriptions, afterTenant, parkMs, skipTenants, onlyTenants],
  });
  const first = rows.find((r) => r.head !== false) as
    | {
        events: number;
        matched: number;
        ordering_keys: [string, string][] | null;
        last_tenant: string | null;
        tenants: string[] | null;
      }
    | undefined;
  const claimedAt = performance.now();
  const claimed: ClaimedDelivery[] = [];
  for (const r of rows) if (r.id !== null) claimed.push(toClaimed(r, 1, claimedAt));
  return {
    events: first?.events ?? 0,
    matched: first?.matched ?? 0,
    claimed,
    orderingKeys: first?.ordering_keys ?? [],
    lastTenant: first?.last_tenant ?? '',
    tenants: first?.tenants ?? [],
  };
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
    orderingKey: (r.ordering_key as string | null) ?? null,
    orderingSeq: r.ordering_seq === null || r.ordering_seq === undefined ? null : Number(r.ordering_seq),
    probe: r.probe === true,
    rateLimit: (r.rate_limit as number | null) ?? null,
    requestTimeoutMs: (r.request_timeout_ms as number | null) ?? null,
    retryScheduleMs: (r.retry_schedule_ms as number[] | null) ?? null,
  };
}

// Due retries and expired leases (a claim moves next_attempt_at to the lease end, so a
// relay that died leaves rows that simply become due again).
// An ordered delivery is claimed only as its key's head (orderingHead).
//
// The circuit breaker is applied here, in the same statement, so held work never costs an
// attempt nor stays at the front of the due index: a due row of a subscription whose
// circuit is open is pushed to the reopen time; of a half-open one, the first row becomes
// the single probe if the subscription's probe lease is free (taken atomically on the
// subscription row, so one probe at a time across relays) and the rest wait a cooldown
// (or until the probe closes the circuit); of a disabled subscription, it is held until
// `enable` ('infinity'). Held rows keep their attempt count and are not returned.
const CLAIM_DUE = `WITH c AS (
  SELECT id, subscription_id FROM hookbox.deliveries d
  WHERE status = 'pending' AND next_attempt_at <= now()
    -- not this relay's own deliveries whose outcome it has yet to write
    AND id <> ALL($3::bigint[])
    -- nor those of subscriptions this relay parked (slow or failing endpoints)
    AND subscription_id <> ALL($4::uuid[])
    AND (d.ordering_key IS NULL OR ${orderingHead('d')})
  ORDER BY next_attempt_at
  LIMIT $1
  FOR UPDATE SKIP LOCKED
), h AS (
  SELECT c.id, c.subscription_id, s.active, s.circuit_open_until, s.circuit_cooldown_ms,
         row_number() OVER (PARTITION BY c.subscription_id ORDER BY c.id) AS rn
  FROM c JOIN hookbox.subscriptions s ON s.id = c.subscription_id
), p AS (
  UPDATE hookbox.subscriptions s SET probe_until = now() + $2 * interval '1 millisecond'
  FROM h
  WHERE s.id = h.subscription_id AND h.rn = 1 AND h.active AND h.circuit_open_until <= now()
    AND s.active AND s.circuit_open_until <= now() AND (s.probe_until IS NULL OR s.probe_until <= now())
  RETURNING s.id
), k AS (
  SELECT h.id, h.rn = 1 AND h.subscription_id IN (SELECT id FROM p) AS probe,
    CASE WHEN NOT h.active THEN 'infinity'::timestamptz
         WHEN h.circuit_open_until IS NULL THEN NULL
         WHEN h.rn = 1 AND h.subscription_id IN (SELECT id FROM p) THEN NULL
         WHEN h.circuit_open_until > now() THEN h.circuit_open_until
         ELSE now() + coalesce(h.circuit_cooldown_ms, 1000) * interval '1 millisecond' END AS hold_until
  FROM h
), u AS (
  UPDATE hookbox.deliveries d
  SET attempts = d.attempts + CASE WHEN k.hold_until IS NULL THEN 1 ELSE 0 END,
      next_attempt_at = coalesce(k.hold_until, now() + $2 * interval '1 millisecond'),
      locked_until = CASE WHEN k.hold_until IS NULL THEN now() + $2 * interval '1 millisecond' END
  FROM k WHERE d.id = k.id
  RETURNING d.id, d.attempts, d.event_id, d.subscription_id, d.tenant_id, d.ordering_key, d.ordering_seq,
    k.hold_until IS NULL AS send, k.probe
)
SELECT u.id, u.attempts, u.probe, u.event_id, u.tenant_id, e.type, e.payload::text AS payload,
  ${TS_ISO} AS created_at, ${TS_MS} AS created_ms,
  u.subscription_id, ${SUBSCRIPTION_COLUMNS}, u.ordering_key, u.ordering_seq
FROM u
JOIN hookbox.events e ON e.id = u.event_id
JOIN hookbox.subscriptions s ON s.id = u.subscription_id
WHERE u.send`;

/** Claims up to `limit` due deliveries, bumping their attempt and leasing them. */
export async function claimDueDeliveries(
  db: pg.Pool,
  limit: number,
  leaseMs: number,
  exclude: readonly number[] = [],
  parkedSubscriptions: readonly string[] = [],
): Promise<ClaimedDelivery[]> {
  const { rows } = await db.query({
    name: 'hookbox_claim_due_v7',
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
  status: DeliveryStatus;
  delayMs: number;
  statusCode: number | null;
  errorClass: string | null;
  errorMessage: string | null;
  startedAt: Date;
  durationMs: number;
  excerpt: string | null;
  /** False when no HTTP request was made (nothing goes to delivery_attempts). */
  attempted: boolean;
  /**
   * False for an attempt that says nothing about the endpoint: the relay's own shutdown cut
   * it off. It is logged, but moves neither the circuit breaker nor auto-disable. Default true.
   */
  countsForBreaker?: boolean;
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
// removes nothing. The pending check compares with a parameter ($18 = 'pending'), not the
// literal: a literal implies deliveries_due_idx's predicate, and a generic plan cached while
// statistics said no delivery was pending (a drained, analysed table) then joined the batch
// against that index, reading every pending row once per batch — 20,000 rows for 14
// outcomes behind an endpoint that hangs (test/relay-plans.test.ts).
//
// delivery_attempts has no foreign key to deliveries (migration 0007): the check cost more
// than the rest of this statement, one row lock per attempt on the row the same statement
// had just updated. Its guarantee is kept here and by a trigger: an attempt is logged only
// for a delivery this statement holds locked (updated, or share-locked when the outcome
// was fenced off), so a delete waits for this transaction, and the delete trigger on
// deliveries then removes the attempts with it. A delivery already deleted gets no log.
const RECORD = `WITH o AS (
  SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::bigint[], $5::int[], $6::text[], $7::text[],
                       $8::timestamptz[], $9::int[], $10::text[], $11::uuid[], $12::bool[], $19::bool[])
    AS o(id, attempt, status, delay_ms, status_code, error_class, error_message, started_at, duration_ms,
         excerpt, subscription_id, attempted, counts)
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
  FROM o WHERE d.id = o.id AND d.attempts = o.attempt AND d.status = $18::text
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
         max(o.started_at) FILTER (WHERE o.error_class IS NOT NULL) AS last_fail,
         min(o.started_at) FILTER (WHERE o.error_class IS NOT NULL) AS first_fail
  FROM o WHERE o.attempted AND o.counts GROUP BY o.subscription_id
), next AS (
  -- The breaker and auto-disable (README "Fairness"): a success closes the circuit; a
  -- failure opens it once the streak reaches $14, or reopens a half-open one (the probe
  -- failed) with the cooldown doubled ($15 at first, at most $16); failing with no success
  -- since failing_since for $17 ms (null: never) disables the subscription, keeping its
  -- pending deliveries (the due claim holds them until enable).
  SELECT prev.id, st.any_ok, st.failures, st.last_ok, st.last_fail,
         prev.active AS was_active, prev.circuit_open_until AS was_open_until,
         CASE WHEN st.any_ok THEN NULL ELSE coalesce(prev.failing_since, st.first_fail) END AS failing_since,
         NOT st.any_ok AND (
           (prev.circuit_open_until IS NULL AND prev.failure_streak + st.failures >= $14)
           OR prev.circuit_open_until <= now()) AS opens,
         least(coalesce(prev.circuit_cooldown_ms::bigint * 2, $15::bigint), $16::bigint) AS cooldown_ms,
         prev.active AND NOT st.any_ok AND $17::bigint IS NOT NULL
           AND coalesce(prev.failing_since, st.first_fail) <= now() - $17::bigint * interval '1 millisecond' AS disables
  FROM stats st JOIN hookbox.subscriptions prev ON prev.id = st.subscription_id
), sub AS (
  UPDATE hookbox.subscriptions s SET
    failure_streak = CASE WHEN n.any_ok THEN 0 ELSE s.failure_streak + n.failures END,
    last_success_at = coalesce(n.last_ok, s.last_success_at),
    last_failure_at = coalesce(n.last_fail, s.last_failure_at),
    failing_since = n.failing_since,
    circuit_open_until = CASE WHEN n.any_ok THEN NULL
                              WHEN n.opens THEN now() + n.cooldown_ms * interval '1 millisecond'
                              ELSE s.circuit_open_until END,
    circuit_cooldown_ms = CASE WHEN n.any_ok THEN NULL WHEN n.opens THEN n.cooldown_ms ELSE s.circuit_cooldown_ms END,
    probe_until = CASE WHEN n.any_ok OR n.opens THEN NULL ELSE s.probe_until END,
    active = s.active AND NOT n.disables,
    disabled_reason = CASE WHEN n.disables
      THEN 'auto-disabled: every attempt failed since ' || to_char(n.failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
      ELSE s.disabled_reason END,
    disabled_at = CASE WHEN n.disables THEN now() ELSE s.disabled_at END,
    updated_at = CASE WHEN n.disables THEN now() ELSE s.updated_at END
  FROM next n WHERE s.id = n.id
    -- A healthy endpoint's row is touched at most once a second: every update of it would
    -- contend with the fan-out's foreign-key share locks (multixacts) for no new information.
    AND (n.failures > 0 OR s.failure_streak <> 0 OR s.last_success_at IS NULL OR s.circuit_open_until IS NOT NULL
         OR s.last_success_at < n.last_ok - interval '1 second')
  RETURNING s.id, s.tenant_id, s.failure_streak, s.circuit_cooldown_ms, s.disabled_reason,
    CASE WHEN n.disables THEN 'disabled'
         WHEN n.opens AND n.was_open_until IS NULL THEN 'opened'
         WHEN n.opens THEN 'reopened'
         WHEN n.any_ok AND n.was_open_until IS NOT NULL THEN 'closed' END AS change
)
SELECT id, NULL::uuid AS subscription_id, NULL::text AS tenant_id, NULL::text AS change, NULL::int AS failure_streak,
       NULL::int AS cooldown_ms, NULL::text AS reason
FROM upd
UNION ALL
SELECT NULL, id, tenant_id, change, failure_streak, circuit_cooldown_ms, disabled_reason FROM sub WHERE change IS NOT NULL`;

/** A subscription whose breaker or active state an outcome write changed. */
export interface SubscriptionChange {
  subscriptionId: string;
  tenantId: string;
  change: 'opened' | 'reopened' | 'closed' | 'disabled';
  failureStreak: number;
  /** The cooldown of an opening, in ms. */
  cooldownMs: number | null;
  /** Why it was disabled. */
  reason: string | null;
}

/** Breaker settings the outcome write applies (README "Fairness"). */
export interface BreakerSettings {
  /** Consecutive failed attempts that open a subscription's circuit. */
  failAfter: number;
  /** Cooldown of the first opening, in ms; doubled on each failed probe... */
  cooldownMs: number;
  /** ...up to this, in ms. */
  maxCooldownMs: number;
  /** Failing with no success for this long disables the subscription, in ms; null: never. */
  disableAfterMs: number | null;
}

export const DEFAULT_BREAKER: BreakerSettings = {
  failAfter: 5,
  cooldownMs: 30_000,
  maxCooldownMs: 5 * 60_000,
  disableAfterMs: 5 * 24 * 3_600_000,
};

export interface RecordResult {
  /** Deliveries whose state changed. */
  changed: Set<number>;
  /** Subscriptions whose circuit opened, reopened or closed, or that were auto-disabled. */
  subscriptions: SubscriptionChange[];
}

/** Writes a batch of outcomes in one statement; returns the ids whose state changed and breaker transitions. */
export async function recordOutcomes(
  db: pg.Pool,
  outcomes: readonly Outcome[],
  breaker: BreakerSettings = DEFAULT_BREAKER,
): Promise<RecordResult> {
  const { rows } = await db.query({
    name: 'hookbox_record_v6',
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
      breaker.failAfter,
      breaker.cooldownMs,
      breaker.maxCooldownMs,
      breaker.disableAfterMs,
      'pending',
      outcomes.map((o) => o.countsForBreaker !== false),
    ],
  });
  const changed = new Set<number>();
  const subscriptions: SubscriptionChange[] = [];
  for (const r of rows) {
    if (r.id !== null) changed.add(Number(r.id));
    else
      subscriptions.push({
        subscriptionId: r.subscription_id,
        tenantId: r.tenant_id,
        change: r.change,
        failureStreak: r.failure_streak,
        cooldownMs: r.cooldown_ms,
        reason: r.reason,
      });
  }
  return { changed, subscriptions };
}

// After a probe closed a circuit: the backlog it held is due now instead of at the end of
// its hold (best effort; rows missed here simply come due at their hold time).
const RESUME_CLOSED = `UPDATE hookbox.deliveries d SET next_attempt_at = now()
FROM hookbox.subscriptions s
WHERE s.id = $1 AND s.circuit_open_until IS NULL AND s.active
  AND d.subscription_id = s.id AND d.status = 'pending' AND d.locked_until IS NULL AND d.next_attempt_at > now()
  -- ordered deliveries parked behind their key's head stay parked (promoteHeads)
  AND (d.ordering_key IS NULL OR d.next_attempt_at < 'infinity')`;

// When a half-open circuit's probe goes out, the subscription's other deliveries that are
// due (all of its held backlog came due at the reopen time) wait a cooldown more, in one
// statement: otherwise the due claims would hold them back a claim's worth at a time, each
// claim spent on them instead of on other tenants' work. A probe that succeeds releases
// them at once (RESUME_CLOSED).
const HOLD_WHILE_PROBING = `UPDATE hookbox.deliveries d
SET next_attempt_at = now() + coalesce(s.circuit_cooldown_ms, 1000) * interval '1 millisecond'
FROM hookbox.subscriptions s
WHERE s.id = $1 AND s.circuit_open_until IS NOT NULL AND s.active
  AND d.subscription_id = s.id AND d.status = 'pending' AND d.next_attempt_at <= now()
  AND (d.locked_until IS NULL OR d.locked_until <= now())`;

/** Holds a probing subscription's other due deliveries for a cooldown; returns how many. */
export async function holdWhileProbing(db: pg.Pool, subscriptionId: string): Promise<number> {
  const res = await db.query(HOLD_WHILE_PROBING, [subscriptionId]);
  return res.rowCount ?? 0;
}

/** Makes a closed circuit's held deliveries due now; returns how many. */
export async function resumeClosedCircuit(db: pg.Pool, subscriptionId: string): Promise<number> {
  const res = await db.query(RESUME_CLOSED, [subscriptionId]);
  return res.rowCount ?? 0;
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

// Promotes parked ordered deliveries once they are their key's head: for the keys given, the
// keys of the deliveries given (outcomes just written), or ($4) every key with a parked
// delivery (the sweep). A promoted head is leased to the relay that promotes it and returned
// as a claim (attempt + 1, like CLAIM_DUE), so it goes out without waiting for a due claim:
// at most $7 of them (the room in the relay's buffer), and only when its subscription's
// circuit is closed and the relay has not parked it or spent its rate window ($6). The
// others are made due now and left to the due claim, which also holds or probes them.
// The head check (orderingHead) is the same predicate, on the same snapshot rules, as the
// due claim's; two relays promoting the same head serialise on its row, and the second
// finds it no longer parked and leaves it.
// A wake-up cannot be lost between a fan-out that parks a delivery behind an unfinished one
// and the outcome write that finishes it: each runs this after it committed, so the later
// of the two sees the other's work. A disabled subscription's deliveries stay held
// ('infinity') until `enable` resumes them.
const PROMOTE = `WITH k AS (
  SELECT DISTINCT x.tenant_id, x.ordering_key FROM (
    SELECT * FROM unnest($1::text[], $2::text[]) AS x(tenant_id, ordering_key)
    UNION ALL
    SELECT d.tenant_id, d.ordering_key FROM hookbox.deliveries d
    WHERE d.id = ANY($3::bigint[]) AND d.ordering_key IS NOT NULL
    UNION ALL
    SELECT d.tenant_id, d.ordering_key FROM hookbox.deliveries d
    WHERE $4::boolean AND d.status = 'pending' AND d.next_attempt_at = 'infinity'
  ) x
), heads AS (
  SELECT DISTINCT ON (d.subscription_id, d.tenant_id, d.ordering_key)
    d.id, d.tenant_id, d.ordering_key, d.subscription_id, d.ordering_seq, d.next_attempt_at
  FROM k JOIN hookbox.deliveries d ON d.tenant_id = k.tenant_id AND d.ordering_key = k.ordering_key
  WHERE d.status = 'pending'
  ORDER BY d.subscription_id, d.tenant_id, d.ordering_key, d.ordering_seq, d.id
), f AS (
  SELECT f.id, s.circuit_open_until IS NULL AND f.subscription_id <> ALL($6::uuid[]) AS leasable
  FROM heads f JOIN hookbox.subscriptions s ON s.id = f.subscription_id AND s.active
  WHERE f.next_attempt_at = 'infinity' AND ${orderingHead('f')}
), r AS (
  SELECT f.id, f.leasable AND row_number() OVER (PARTITION BY f.leasable ORDER BY f.id) <= $7 AS lease FROM f
), u AS (
  UPDATE hookbox.deliveries d
  SET attempts = d.attempts + CASE WHEN r.lease THEN 1 ELSE 0 END,
      next_attempt_at = CASE WHEN r.lease THEN now() + $5 * interval '1 millisecond' ELSE now() END,
      locked_until = CASE WHEN r.lease THEN now() + $5 * interval '1 millisecond' END
  FROM r WHERE d.id = r.id AND d.status = 'pending' AND d.next_attempt_at = 'infinity'
  RETURNING d.id, d.attempts, d.event_id, d.subscription_id, d.tenant_id, d.ordering_key, d.ordering_seq, r.lease
)
SELECT u.id, u.lease, u.attempts, u.event_id, u.tenant_id, e.type, CASE WHEN u.lease THEN e.payload::text END AS payload,
  ${TS_ISO} AS created_at, ${TS_MS} AS created_ms,
  u.subscription_id, ${SUBSCRIPTION_COLUMNS}, u.ordering_key, u.ordering_seq
FROM u
JOIN hookbox.events e ON e.id = u.event_id
JOIN hookbox.subscriptions s ON s.id = u.subscription_id`;

/** How promoteHeads may lease the heads it promotes; see PROMOTE. */
export interface PromoteLease {
  leaseMs: number;
  /** Most heads to lease (the room in the relay's buffer); 0: lease none, only make them due. */
  limit: number;
  /** Subscriptions whose heads are only made due (parked, or rate window spent). */
  excludeSubscriptions?: readonly string[];
}

export interface PromoteResult {
  /** Heads promoted: leased here, or made due. */
  promoted: number;
  /** The heads leased to this relay, ready to send. */
  claimed: ClaimedDelivery[];
}

/** Promotes parked ordered deliveries once they head their key, leasing up to `lease.limit` of them; see PROMOTE. */
export async function promoteHeads(
  db: pg.Pool,
  keys: readonly (readonly [string, string])[],
  deliveryIds: readonly number[] = [],
  sweep = false,
  lease: PromoteLease = { leaseMs: 0, limit: 0 },
): Promise<PromoteResult> {
  const { rows } = await db.query({
    name: 'hookbox_promote_heads_v3',
    text: PROMOTE,
    values: [
      keys.map((k) => k[0]),
      keys.map((k) => k[1]),
      deliveryIds,
      sweep,
      lease.leaseMs,
      lease.excludeSubscriptions ?? [],
      lease.limit,
    ],
  });
  const claimedAt = performance.now();
  const claimed: ClaimedDelivery[] = [];
  for (const r of rows) if (r.lease) claimed.push(toClaimed(r, r.attempts, claimedAt));
  return { promoted: rows.length, claimed };
}

/**
 * Whether any work remains: pending events, or deliveries not in a final state. Ordered
 * deliveries parked behind a dead head (policy block) are not work until it is replayed,
 * nor are deliveries held for a disabled subscription until it is enabled.
 */
export async function hasUnfinishedWork(db: pg.Pool): Promise<boolean> {
  const { rows } = await db.query(
    `SELECT EXISTS (SELECT 1 FROM hookbox.events WHERE fanned_out_at IS NULL)
         OR EXISTS (SELECT 1 FROM hookbox.deliveries WHERE status = 'pending' AND next_attempt_at < 'infinity') AS busy`,
  );
  return rows[0]?.busy === true;
}
