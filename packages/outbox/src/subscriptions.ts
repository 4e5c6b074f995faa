/**
 * Subscription management: a tenant's webhook endpoints. Every function takes the caller's
 * executor first (so it joins the caller's transaction) and is scoped by `tenantId`: an id
 * that belongs to another tenant, or is not a uuid at all, is a NotFoundError, never
 * returned or changed. Input is validated before any SQL runs.
 */
import { NotFoundError, ValidationError } from './errors.js';
import { type Executor, runQuery } from './executor.js';
import { checkInput, isUuid, validateBoolean } from './input.js';
import { epochMs, toDate } from './rows.js';
import type { OrderingOnDead, Subscription } from './schema.js';
import { generateSecret } from './secret.js';
import {
  SUBSCRIPTION_LIMITS,
  validateCursor,
  validateEventPatterns,
  validateEventTypeFilter,
  validateHeaders,
  validateListLimit,
  validateMaxInFlight,
  validateOrderingOnDead,
  validatePreviousSecretTtl,
  validateRateLimit,
  validateRequestTimeout,
  validateRetrySchedule,
  validateSecret,
  validateText,
  validateUrl,
} from './subscription-validate.js';
import { validateTenantId } from './validate.js';

/** A stored subscription, camelCase, secrets included (callers decide what to show). */
export type SubscriptionRecord = Subscription;

/** Which subscription: always a tenant and an id. */
export interface SubscriptionRef {
  tenantId: string;
  id: string;
}

export interface CreateSubscriptionInput {
  tenantId: string;
  /** Absolute http(s) URL without credentials, ≤ 2,048 characters; stored normalised. */
  url: string;
  /** Non-empty list of patterns: `message.new`, `message.*`, `*`. Duplicates are dropped. */
  eventTypes: readonly string[];
  /** `whsec_` + base64 key of 24–64 bytes. Default: a generated 32-byte key. */
  secret?: string;
  /** Free text, ≤ 1,000 characters, no NUL nor lone surrogates. Default null. */
  description?: string | null;
  /** Extra request headers, ≤ 20; reserved names (`webhook-*`, `content-type`, `host`, …) refused. Default `{}`. */
  headers?: Record<string, string>;
  /** Concurrent requests to this endpoint, 1..1000. Default null (the relay's default). */
  maxInFlight?: number | null;
  /**
   * Ordered events (those with an ordering key) whose delivery to this endpoint went dead:
   * `block` holds the key's later events until the dead one is replayed and succeeds;
   * `skip` moves on to the next. Other keys are never held. Default `block`.
   */
  orderingOnDead?: OrderingOnDead;
  /**
   * Most requests per second to this endpoint, 1..10000, counted across every relay that
   * shares the database; work over the limit waits without spending attempts. Default null (no limit).
   */
  rateLimit?: number | null;
  /**
   * Time allowed per request to this endpoint, 1..3,600,000 ms. Default null (the relay's
   * `--request-timeout`); the relay never waits longer than its own, which its lease is sized for.
   */
  requestTimeoutMs?: number | null;
  /**
   * Delays before each retry in ms (≤ 50 items, each ≤ 30 days): its length is the retry
   * budget, `[]` means no retry. Default null (the relay's `--retry-schedule`).
   */
  retryScheduleMs?: readonly number[] | null;
}

export interface UpdateSubscriptionInput extends SubscriptionRef {
  url?: string;
  eventTypes?: readonly string[];
  /** null clears it. */
  description?: string | null;
  /** Replaces all custom headers; `{}` clears them. */
  headers?: Record<string, string>;
  /** false disables (keeping any reason); true enables (clearing reason and failure streak). */
  active?: boolean;
  /** null returns to the relay's default. */
  maxInFlight?: number | null;
  /** `block` or `skip`; see CreateSubscriptionInput. */
  orderingOnDead?: OrderingOnDead;
  /** Requests per second, 1..10000; null removes the limit. */
  rateLimit?: number | null;
  /** null returns to the relay's request timeout. */
  requestTimeoutMs?: number | null;
  /** null returns to the relay's retry schedule. */
  retryScheduleMs?: readonly number[] | null;
}

export interface ListSubscriptionsInput {
  tenantId: string;
  /** Only active (true) or only disabled (false) subscriptions. Default: both. */
  active?: boolean;
  /** Only subscriptions with a pattern matching this event type (e.g. `message.new`). */
  eventType?: string;
  /** Page size, 1..500. Default 50. */
  limit?: number;
  /** `nextCursor` of the previous page. */
  after?: string | null;
}

export interface SubscriptionPage {
  /** Ordered by id. */
  items: SubscriptionRecord[];
  /** Pass as `after` for the next page; null on the last page. */
  nextCursor: string | null;
}

export interface DisableSubscriptionInput extends SubscriptionRef {
  /** Why, for operators; ≤ 1,000 characters, no NUL nor lone surrogates. Default null. */
  reason?: string | null;
}

export interface RotateSecretInput extends SubscriptionRef {
  /** The new secret. Default: a generated one. */
  secret?: string;
  /**
   * How long the replaced secret keeps signing, in ms (0..30 days). Default 24 h. A second
   * rotation within this window replaces the previous secret: only one previous is kept.
   */
  previousSecretTtlMs?: number;
}

const ts = (column: string) => epochMs(column, column);

// Timestamps leave as epoch milliseconds: drivers disagree on timestamptz (pg gives a
// Date, drizzle's session the server's text), a float8 reads the same everywhere.
const COLUMNS = [
  'id',
  'tenant_id',
  'url',
  'event_types',
  'description',
  'secret',
  'previous_secret',
  ts('previous_secret_expires_at'),
  'headers',
  'active',
  'disabled_reason',
  ts('disabled_at'),
  'max_in_flight',
  'ordering_on_dead',
  'rate_limit',
  'request_timeout_ms',
  'retry_schedule_ms',
  'failure_streak',
  ts('last_success_at'),
  ts('last_failure_at'),
  ts('failing_since'),
  ts('circuit_open_until'),
  'circuit_cooldown_ms',
  ts('probe_until'),
  ts('created_at'),
  ts('updated_at'),
].join(', ');

const WHERE_REF = 'WHERE tenant_id = $1 AND id = $2';

const INSERT = `INSERT INTO hookbox.subscriptions
  (tenant_id, url, event_types, description, secret, headers, max_in_flight, ordering_on_dead, rate_limit,
   request_timeout_ms, retry_schedule_ms)
VALUES ($1, $2, $3::text[], $4, $5, $6::jsonb, $7, $8, $9, $10, $11::int[])
RETURNING ${COLUMNS}`;

const SELECT_ONE = `SELECT ${COLUMNS} FROM hookbox.subscriptions ${WHERE_REF}`;

// Which subscriptions an event of type $3 goes to: the fan-out's own test,
// hookbox.matches_any (matchesEventType in SQL), rather than a copy of it.
const SELECT_PAGE = `SELECT ${COLUMNS} FROM hookbox.subscriptions
WHERE tenant_id = $1
  AND ($2::boolean IS NULL OR active = $2::boolean)
  AND ($3::text IS NULL OR hookbox.matches_any(event_types, $3::text))
  AND ($4::uuid IS NULL OR id > $4::uuid)
ORDER BY id
LIMIT $5`;

/**
 * Whether the ordered delivery aliased `d` heads its (subscription, key): no delivery of
 * the same subscription and key with a lower sequence is pending, or dead while the
 * subscription's policy is `block` and not replayed, and no event of the key with a lower
 * sequence still waits for fan-out (docs/ordering.md). The same SQL as the relay's
 * orderingHead (apps/relay/src/relay/sql.ts), which claims and promotes by it: this package
 * cannot import the relay, so it keeps a copy, and test/ordering-enable-dead-head.test.ts
 * checks that the two are the same text. Internal: not exported from the package.
 */
export function orderingHead(d: string): string {
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
      AND pe.ordering_seq IS NOT NULL AND pe.ordering_seq < ${d}.ordering_seq AND pe.fanned_out_at IS NULL)`;
}

const DISABLE = `UPDATE hookbox.subscriptions
SET active = false, disabled_reason = $3,
    disabled_at = CASE WHEN active OR disabled_at IS NULL THEN now() ELSE disabled_at END,
    updated_at = now()
${WHERE_REF}
RETURNING ${COLUMNS}`;

// Enabling also closes the circuit and resumes the pending deliveries held while the
// subscription was disabled ('infinity', set by the relay's due claim). The held test is in
// SET, not WHERE: a row a relay is holding at this moment is waited for and then seen held.
// Held ('infinity') deliveries made due again by enable: unordered ones, and ordered ones
// that head their key by the relay's own head check (orderingHead above). The rest stay
// parked behind their head and are made due one by one as each head finishes (the relay's
// promotion). A delivery behind a dead head under policy `block` stays parked until the
// head is replayed: made due, no claim would ever take it, yet it would count as work
// (`relay --exit-when-idle` would never exit, the due gauges would grow).
const RESUMABLE = `(d.ordering_key IS NULL OR ${orderingHead('d')})`;

const ENABLE = `WITH s AS (
  UPDATE hookbox.subscriptions
  SET active = true, disabled_reason = NULL, disabled_at = NULL, failure_streak = 0, failing_since = NULL,
      circuit_open_until = NULL, circuit_cooldown_ms = NULL, probe_until = NULL, updated_at = now()
  ${WHERE_REF}
  RETURNING *
), r AS (
  UPDATE hookbox.deliveries d SET next_attempt_at = now()
  FROM s WHERE d.subscription_id = s.id AND d.status = 'pending' AND d.next_attempt_at = 'infinity'
    AND ${RESUMABLE}
)
SELECT ${COLUMNS},
  (SELECT count(*) FROM hookbox.deliveries d, s WHERE d.subscription_id = s.id AND d.status = 'pending')::int AS resumed
FROM s`;

const RESUME = `UPDATE hookbox.deliveries d SET next_attempt_at = now()
WHERE d.subscription_id = $1 AND d.status = 'pending' AND d.next_attempt_at = 'infinity' AND ${RESUMABLE}`;

const DELETE = `DELETE FROM hookbox.subscriptions ${WHERE_REF} RETURNING id`;

// The old current secret becomes the previous one (right-hand sides read the old row).
// `secret <> $3` makes a no-op rotation match no row; the caller then says why.
const ROTATE = `UPDATE hookbox.subscriptions
SET previous_secret = secret,
    previous_secret_expires_at = now() + $4::float8 * interval '1 millisecond',
    secret = $3,
    updated_at = now()
${WHERE_REF} AND secret <> $3
RETURNING ${COLUMNS}`;

type Row = Record<string, unknown>;

function toRecord(r: Row): SubscriptionRecord {
  return {
    id: String(r.id),
    tenantId: r.tenant_id as string,
    url: r.url as string,
    eventTypes: r.event_types as string[],
    description: (r.description as string | null) ?? null,
    secret: r.secret as string,
    previousSecret: (r.previous_secret as string | null) ?? null,
    previousSecretExpiresAt: toDate(r.previous_secret_expires_at),
    headers: (typeof r.headers === 'string' ? JSON.parse(r.headers) : r.headers) as Record<string, string>,
    active: r.active as boolean,
    disabledReason: (r.disabled_reason as string | null) ?? null,
    disabledAt: toDate(r.disabled_at),
    maxInFlight: (r.max_in_flight as number | null) ?? null,
    orderingOnDead: r.ordering_on_dead as OrderingOnDead,
    rateLimit: (r.rate_limit as number | null) ?? null,
    requestTimeoutMs: (r.request_timeout_ms as number | null) ?? null,
    retryScheduleMs: (r.retry_schedule_ms as number[] | null) ?? null,
    failureStreak: Number(r.failure_streak),
    lastSuccessAt: toDate(r.last_success_at),
    lastFailureAt: toDate(r.last_failure_at),
    failingSince: toDate(r.failing_since),
    circuitOpenUntil: toDate(r.circuit_open_until),
    circuitCooldownMs: (r.circuit_cooldown_ms as number | null) ?? null,
    probeUntil: toDate(r.probe_until),
    createdAt: toDate(r.created_at)!,
    updatedAt: toDate(r.updated_at)!,
  };
}

/** Validates the tenant and id. A malformed id cannot exist, so it is "not found" too. */
function ref(input: SubscriptionRef): [tenantId: string, id: string] {
  const tenantId = validateTenantId(input.tenantId);
  if (!isUuid(input.id)) throw new NotFoundError('subscription', String(input.id));
  return [tenantId, input.id.toLowerCase()];
}

async function one(executor: Executor, text: string, values: unknown[], id: string): Promise<SubscriptionRecord> {
  const row = (await runQuery(executor, text, values))[0];
  if (!row) throw new NotFoundError('subscription', id);
  return toRecord(row);
}

const CREATE_KEYS = [
  'tenantId',
  'url',
  'eventTypes',
  'secret',
  'description',
  'headers',
  'maxInFlight',
  'orderingOnDead',
  'rateLimit',
  'requestTimeoutMs',
  'retryScheduleMs',
];

/** Creates a subscription and returns it, its (possibly generated) secret included. */
async function create(executor: Executor, input: CreateSubscriptionInput): Promise<SubscriptionRecord> {
  checkInput(input, CREATE_KEYS, 'subscription');
  const tenantId = validateTenantId(input.tenantId);
  const url = validateUrl(input.url);
  const eventTypes = validateEventPatterns(input.eventTypes);
  const secret = input.secret === undefined ? generateSecret() : validateSecret(input.secret);
  const description = validateText(input.description, 'description', SUBSCRIPTION_LIMITS.maxDescriptionLength);
  const headers = input.headers === undefined ? {} : validateHeaders(input.headers);
  const maxInFlight = validateMaxInFlight(input.maxInFlight);
  const rateLimit = validateRateLimit(input.rateLimit);
  const requestTimeoutMs = validateRequestTimeout(input.requestTimeoutMs);
  const retryScheduleMs = validateRetrySchedule(input.retryScheduleMs);
  const rows = await runQuery(executor, INSERT, [
    tenantId,
    url,
    eventTypes,
    description,
    secret,
    JSON.stringify(headers),
    maxInFlight,
    validateOrderingOnDead(input.orderingOnDead) ?? 'block',
    rateLimit,
    requestTimeoutMs,
    retryScheduleMs,
  ]);
  return toRecord(rows[0]!);
}

/** One subscription of the tenant; NotFoundError otherwise. */
async function get(executor: Executor, input: SubscriptionRef): Promise<SubscriptionRecord> {
  checkInput(input, ['tenantId', 'id'], 'get options');
  const [tenantId, id] = ref(input);
  return one(executor, SELECT_ONE, [tenantId, id], id);
}

/** A page of the tenant's subscriptions ordered by id (keyset pagination, no OFFSET). */
async function list(executor: Executor, input: ListSubscriptionsInput): Promise<SubscriptionPage> {
  checkInput(input, ['tenantId', 'active', 'eventType', 'limit', 'after'], 'list options');
  const tenantId = validateTenantId(input.tenantId);
  const active = validateBoolean(input.active, 'active');
  const eventType = validateEventTypeFilter(input.eventType);
  const limit = validateListLimit(input.limit);
  const after = validateCursor(input.after);
  // One row more than asked tells whether another page exists.
  const rows = await runQuery(executor, SELECT_PAGE, [tenantId, active, eventType, after, limit + 1]);
  const items = rows.slice(0, limit).map(toRecord);
  return { items, nextCursor: rows.length > limit ? items[items.length - 1]!.id : null };
}

const UPDATE_KEYS = [
  'tenantId',
  'id',
  'url',
  'eventTypes',
  'description',
  'headers',
  'active',
  'maxInFlight',
  'orderingOnDead',
  'rateLimit',
  'requestTimeoutMs',
  'retryScheduleMs',
];

/** Changes the given fields (others untouched) and bumps `updatedAt`. */
async function update(executor: Executor, input: UpdateSubscriptionInput): Promise<SubscriptionRecord> {
  checkInput(input, UPDATE_KEYS, 'subscription update');
  const [tenantId, id] = ref(input);
  const values: unknown[] = [tenantId, id];
  const sets: string[] = [];
  const set = (column: string, value: unknown, cast = '') => {
    values.push(value);
    sets.push(`${column} = $${values.length}${cast}`);
  };
  if (input.url !== undefined) set('url', validateUrl(input.url));
  if (input.eventTypes !== undefined) set('event_types', validateEventPatterns(input.eventTypes), '::text[]');
  if (input.description !== undefined) {
    set('description', validateText(input.description, 'description', SUBSCRIPTION_LIMITS.maxDescriptionLength));
  }
  if (input.headers !== undefined) set('headers', JSON.stringify(validateHeaders(input.headers)), '::jsonb');
  if (input.maxInFlight !== undefined) set('max_in_flight', validateMaxInFlight(input.maxInFlight));
  const orderingOnDead = validateOrderingOnDead(input.orderingOnDead);
  if (orderingOnDead !== null) set('ordering_on_dead', orderingOnDead);
  if (input.rateLimit !== undefined) set('rate_limit', validateRateLimit(input.rateLimit));
  if (input.requestTimeoutMs !== undefined) {
    set('request_timeout_ms', validateRequestTimeout(input.requestTimeoutMs));
  }
  if (input.retryScheduleMs !== undefined) {
    set('retry_schedule_ms', validateRetrySchedule(input.retryScheduleMs), '::int[]');
  }
  const active = validateBoolean(input.active, 'active');
  if (active !== null) {
    values.push(active);
    const p = `$${values.length}::boolean`;
    // Right-hand sides read the old row: only a real disabled → enabled change resets state.
    sets.push(
      `active = ${p}`,
      `disabled_at = CASE WHEN ${p} THEN NULL WHEN active THEN now() ELSE disabled_at END`,
      `disabled_reason = CASE WHEN ${p} THEN NULL ELSE disabled_reason END`,
      `failure_streak = CASE WHEN ${p} AND NOT active THEN 0 ELSE failure_streak END`,
    );
  }
  if (sets.length === 0) {
    throw new ValidationError('update', 'required', 'give at least one field to change');
  }
  const text = `UPDATE hookbox.subscriptions SET ${sets.join(', ')}, updated_at = now()
${WHERE_REF}
RETURNING ${COLUMNS}`;
  const sub = await one(executor, text, values, id);
  // Enabling through update resumes held deliveries as enable() does.
  if (active === true) await runQuery(executor, RESUME, [id]);
  return sub;
}

/**
 * Stops new deliveries to the endpoint, recording why. Disabling twice keeps the first
 * `disabledAt`. Its pending deliveries are kept, not cancelled: the relay holds them (no
 * attempt spent) until `enable` resumes them; delete the subscription to drop them.
 */
async function disable(executor: Executor, input: DisableSubscriptionInput): Promise<SubscriptionRecord> {
  checkInput(input, ['tenantId', 'id', 'reason'], 'disable options');
  const [tenantId, id] = ref(input);
  const reason = validateText(input.reason, 'reason', SUBSCRIPTION_LIMITS.maxReasonLength);
  return one(executor, DISABLE, [tenantId, id, reason], id);
}

/** What `enable` returns: the subscription, and how many pending deliveries resume. */
export type EnabledSubscription = SubscriptionRecord & {
  /** Pending deliveries of the subscription (those held while it was disabled are now due). */
  resumedDeliveries: number;
};

/**
 * Re-activates the endpoint: clears the disable reason, the failure streak and the circuit
 * breaker, and resumes the pending deliveries kept while it was disabled.
 */
async function enable(executor: Executor, input: SubscriptionRef): Promise<EnabledSubscription> {
  checkInput(input, ['tenantId', 'id'], 'enable options');
  const [tenantId, id] = ref(input);
  const row = (await runQuery(executor, ENABLE, [tenantId, id]))[0];
  if (!row) throw new NotFoundError('subscription', id);
  return { ...toRecord(row), resumedDeliveries: Number(row.resumed) };
}

/** Deletes the subscription and (by cascade) its deliveries. NotFoundError when absent. */
async function remove(executor: Executor, input: SubscriptionRef): Promise<void> {
  checkInput(input, ['tenantId', 'id'], 'delete options');
  const [tenantId, id] = ref(input);
  const rows = await runQuery(executor, DELETE, [tenantId, id]);
  if (rows.length === 0) throw new NotFoundError('subscription', id);
}

/**
 * Makes a new secret current; the replaced one keeps signing (both signatures are sent)
 * until now + `previousSecretTtlMs`, by the database clock. Returns the updated subscription.
 */
async function rotateSecret(executor: Executor, input: RotateSecretInput): Promise<SubscriptionRecord> {
  checkInput(input, ['tenantId', 'id', 'secret', 'previousSecretTtlMs'], 'rotate options');
  const [tenantId, id] = ref(input);
  const secret = input.secret === undefined ? generateSecret() : validateSecret(input.secret);
  const ttl = validatePreviousSecretTtl(input.previousSecretTtlMs);
  const row = (await runQuery(executor, ROTATE, [tenantId, id, secret, ttl]))[0];
  if (row) return toRecord(row);
  await get(executor, { tenantId, id }); // NotFoundError when absent
  throw new ValidationError('secret', 'unchanged', 'is already the current secret; give a different one');
}

/**
 * The secrets to sign with at `now`: the current one, plus the previous one until it
 * expires. Pure; the relay calls it per delivery.
 */
export function activeSecrets(
  sub: Pick<SubscriptionRecord, 'secret' | 'previousSecret' | 'previousSecretExpiresAt'>,
  now: Date = new Date(),
): string[] {
  const out = [sub.secret];
  const expires = sub.previousSecretExpiresAt;
  if (sub.previousSecret && expires && new Date(expires).getTime() > now.getTime()) out.push(sub.previousSecret);
  return out;
}

/**
 * The subscription's circuit breaker at `now` (the relay opens and closes it; README
 * "Fairness"): `closed` delivers normally; `open` holds its deliveries until
 * `circuitOpenUntil`, spending no attempts; `half-open` lets one probe through at a time.
 */
export function circuitState(
  sub: Pick<SubscriptionRecord, 'circuitOpenUntil'>,
  now: Date = new Date(),
): 'closed' | 'open' | 'half-open' {
  const until = sub.circuitOpenUntil;
  if (until === null) return 'closed';
  return new Date(until).getTime() > now.getTime() ? 'open' : 'half-open';
}

/** Subscription management, executor first; see the module comment for the tenant rule. */
export const subscriptions = {
  create,
  get,
  list,
  update,
  disable,
  enable,
  delete: remove,
  rotateSecret,
  activeSecrets,
  circuitState,
} as const;
