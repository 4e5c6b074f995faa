/**
 * The delivery log, read side: what was sent, to whom, and why it failed. Every function
 * takes the caller's executor first and is scoped by `tenantId`: a delivery or event of
 * another tenant, or an id that cannot exist (not numeric, not a uuid), is a NotFoundError.
 * Lists are newest first with keyset pagination (`id < cursor`), never OFFSET, so a page
 * costs the same however deep it is and rows written between pages never shift the walk.
 */
import { NotFoundError, ValidationError } from './errors.js';
import { isValidEventPattern } from './event-types.js';
import { type Executor, runQuery } from './executor.js';
import { checkInput, intInRange, isUuid, type TenantScope, validateScope } from './input.js';
import { epochMs, num, toDate } from './rows.js';
import { DELIVERY_STATUSES, type DeliveryStatus } from './schema.js';
import { type TimeInput, validateTimeRange } from './time.js';
import { validateOrderingKey, validateTenantId } from './validate.js';

/** Default and largest page of the list functions. */
export const DELIVERY_LOG_LIMITS = { defaultLimit: 50, maxLimit: 500 } as const;

export type { TenantScope, TimeInput };

export interface ListDeliveriesInput extends TenantScope {
  /** Only deliveries to this subscription (a uuid). */
  subscriptionId?: string;
  /** Only deliveries of events of this type, or matching this pattern (`message.*`, `*`). */
  eventType?: string;
  /** Only deliveries in this status (or any of these). */
  status?: DeliveryStatus | readonly DeliveryStatus[];
  /** Only deliveries of events with this ordering key. */
  orderingKey?: string;
  /** Only deliveries created at or after this time. */
  since?: TimeInput;
  /** Only deliveries created before this time. */
  until?: TimeInput;
  /** Page size, 1..500. Default 50. */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string | null;
}

export interface ListEventsInput extends TenantScope {
  /** Only events of this type, or matching this pattern (`message.*`, `*`). */
  type?: string;
  /** Only events created at or after this time. */
  since?: TimeInput;
  /** Only events created before this time. */
  until?: TimeInput;
  /** Page size, 1..500. Default 50. */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string | null;
}

/** Which delivery: always a tenant and an id (a number, or its decimal string). */
export interface DeliveryRef {
  tenantId: string;
  id: number | string;
}

/** Which event: always a tenant and an id (a uuid). */
export interface EventRef {
  tenantId: string;
  id: string;
}

/** One delivery row, with its event's type and its subscription's current URL. */
export interface DeliveryRecord {
  id: number;
  eventId: string;
  eventType: string;
  subscriptionId: string;
  url: string;
  tenantId: string;
  status: DeliveryStatus;
  /** Attempts started so far. */
  attempts: number;
  /** When a pending delivery is next due. */
  nextAttemptAt: Date;
  /** Lease end while a relay holds the row; null otherwise. */
  lockedUntil: Date | null;
  lastStatus: number | null;
  lastError: string | null;
  lastAttemptAt: Date | null;
  /** The delivery this one replays, if any. */
  replayOf: number | null;
  createdAt: Date;
  completedAt: Date | null;
  /** The event's ordering key; null for an unordered event. */
  orderingKey: string | null;
  /** The event's position among its key's events (1, 2, 3…); null for an unordered event. */
  orderingSeq: number | null;
}

/** One HTTP attempt from the log. */
export interface AttemptRecord {
  id: number;
  /** 1 for the first attempt. */
  attempt: number;
  startedAt: Date;
  durationMs: number;
  statusCode: number | null;
  /** null on 2xx; otherwise `http_status`, `timeout`, `connection_refused`, `connection_reset`, `dns`, `tls`, `network`, `blocked`. */
  errorClass: string | null;
  errorMessage: string | null;
  responseExcerpt: string | null;
}

/** How an event fanned out: its deliveries counted by status. */
export interface FanoutSummary {
  total: number;
  pending: number;
  succeeded: number;
  dead: number;
  cancelled: number;
}

export interface EventRecord {
  id: string;
  tenantId: string;
  type: string;
  idempotencyKey: string | null;
  /** The event's ordering key; null for an unordered event. */
  orderingKey: string | null;
  /** Its position among the key's events, in commit order (1, 2, 3…); null for an unordered event, and until the relay fans the event out. */
  orderingSeq: number | null;
  createdAt: Date;
  /** null while the relay has not fanned it out yet. */
  fannedOutAt: Date | null;
  deliveries: FanoutSummary;
}

export interface Page<T> {
  /** Newest first. */
  items: T[];
  /** Pass as `cursor` for the next (older) page; null on the last page. */
  nextCursor: string | null;
}

export interface DeliveryDetail {
  delivery: DeliveryRecord;
  /** Every attempt, in order. */
  attempts: AttemptRecord[];
}

export interface EventDetail {
  event: EventRecord & { payload: unknown };
  /** Its deliveries (replays included), oldest first. */
  deliveries: DeliveryRecord[];
}

type Row = Record<string, unknown>;

function validateLimit(value: unknown): number {
  return intInRange(value, 'limit', 1, DELIVERY_LOG_LIMITS.maxLimit, { fallback: DELIVERY_LOG_LIMITS.defaultLimit });
}

function validateTypeFilter(value: unknown, field: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || !isValidEventPattern(value)) {
    throw new ValidationError(field, 'format', 'must be an event type (message.new) or a pattern (message.*, *)');
  }
  return value;
}

function validateStatuses(value: unknown): string[] | null {
  if (value === undefined || value === null) return null;
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) throw new ValidationError('status', 'required', 'must name at least one status');
  list.forEach((s, i) => {
    if (!(DELIVERY_STATUSES as readonly unknown[]).includes(s)) {
      const field = Array.isArray(value) ? `status[${i}]` : 'status';
      throw new ValidationError(field, 'enum', `must be one of ${DELIVERY_STATUSES.join(', ')}`);
    }
  });
  return [...new Set(list as string[])];
}

const MAX_BIGINT = 9223372036854775807n;

/** A bigint id as a decimal string, or null when it cannot be one. */
function bigintId(value: unknown): string | null {
  const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
  if (typeof text !== 'string' || !/^\d{1,19}$/.test(text)) return null;
  const n = BigInt(text);
  return n >= 1n && n <= MAX_BIGINT ? n.toString() : null;
}

// Cursors name their list so one list's cursor is refused by the other.
const DELIVERY_CURSOR = 'dlv_';
const EVENT_CURSOR = 'evt_';

function decodeCursor(value: unknown, prefix: string): string | null {
  if (value === undefined || value === null) return null;
  const rest = typeof value === 'string' && value.startsWith(prefix) ? value.slice(prefix.length) : null;
  const id = rest === null ? null : prefix === DELIVERY_CURSOR ? bigintId(rest) : isUuid(rest) ? rest : null;
  if (id === null)
    throw new ValidationError('cursor', 'format', 'must be the nextCursor of a previous page of this list');
  return id.toLowerCase();
}

// A `--type` filter of the log: matchesEventType (event-types.ts) for one pattern, `prefix.*`
// or equality (`*` means no filter and never reaches here). It stays an inline expression,
// not a call of hookbox.matches_any: it is tested against every event row the listing scans,
// and a PL/pgSQL call per row (matches_any's body since 0008) takes about four times as long
// as this expression (one million rows on PostgreSQL 15: ~580 ms against ~130 ms).
// test/delivery-log.test.ts checks the patterns.
const typeMatches = (column: string, p: string) =>
  `(${column} = ${p} OR (right(${p}, 2) = '.*' AND length(${column}) > length(${p}) - 1 AND starts_with(${column}, left(${p}, -1))))`;

/** Collects WHERE conditions and their positional parameters. */
class Where {
  readonly values: unknown[] = [];
  private readonly conds: string[] = [];
  param(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
  add(cond: string): void {
    this.conds.push(cond);
  }
  toString(): string {
    return this.conds.length === 0 ? '' : `WHERE ${this.conds.join('\n  AND ')}`;
  }
}

const DELIVERY_COLUMNS = `d.id, d.event_id, e.type AS event_type, d.subscription_id, s.url, d.tenant_id, d.status,
  d.attempts, ${epochMs('d.next_attempt_at', 'next_attempt_at')}, ${epochMs('d.locked_until', 'locked_until')},
  d.last_status, d.last_error, ${epochMs('d.last_attempt_at', 'last_attempt_at')}, d.replay_of,
  ${epochMs('d.created_at', 'created_at')}, ${epochMs('d.completed_at', 'completed_at')}, d.ordering_key, d.ordering_seq`;

// Both foreign keys cascade, so the inner joins never hide a delivery.
const DELIVERY_FROM = `FROM hookbox.deliveries d
JOIN hookbox.events e ON e.id = d.event_id
JOIN hookbox.subscriptions s ON s.id = d.subscription_id`;

function toDelivery(r: Row): DeliveryRecord {
  return {
    id: Number(r.id),
    eventId: String(r.event_id),
    eventType: r.event_type as string,
    subscriptionId: String(r.subscription_id),
    url: r.url as string,
    tenantId: r.tenant_id as string,
    status: r.status as DeliveryStatus,
    attempts: Number(r.attempts),
    nextAttemptAt: toDate(r.next_attempt_at)!,
    lockedUntil: toDate(r.locked_until),
    lastStatus: num(r.last_status),
    lastError: (r.last_error as string | null) ?? null,
    lastAttemptAt: toDate(r.last_attempt_at),
    replayOf: num(r.replay_of),
    createdAt: toDate(r.created_at)!,
    completedAt: toDate(r.completed_at),
    orderingKey: (r.ordering_key as string | null) ?? null,
    orderingSeq: num(r.ordering_seq),
  };
}

function toAttempt(r: Row): AttemptRecord {
  return {
    id: Number(r.id),
    attempt: Number(r.attempt),
    startedAt: toDate(r.started_at)!,
    durationMs: Number(r.duration_ms),
    statusCode: num(r.status_code),
    errorClass: (r.error_class as string | null) ?? null,
    errorMessage: (r.error_message as string | null) ?? null,
    responseExcerpt: (r.response_excerpt as string | null) ?? null,
  };
}

const EVENT_COLUMNS = `e.id, e.tenant_id, e.type, e.idempotency_key, e.ordering_key, e.ordering_seq, ${epochMs('e.created_at', 'created_at')},
  ${epochMs('e.fanned_out_at', 'fanned_out_at')}, f.total, f.pending, f.succeeded, f.dead, f.cancelled`;

// Per event, through deliveries_event_idx; under a LIMIT only the page's events are counted.
const FANOUT = `CROSS JOIN LATERAL (
  SELECT count(*) AS total,
         count(*) FILTER (WHERE d.status = 'pending') AS pending,
         count(*) FILTER (WHERE d.status = 'succeeded') AS succeeded,
         count(*) FILTER (WHERE d.status = 'dead') AS dead,
         count(*) FILTER (WHERE d.status = 'cancelled') AS cancelled
  FROM hookbox.deliveries d WHERE d.event_id = e.id
) f`;

function toEvent(r: Row): EventRecord {
  return {
    id: String(r.id),
    tenantId: r.tenant_id as string,
    type: r.type as string,
    idempotencyKey: (r.idempotency_key as string | null) ?? null,
    orderingKey: (r.ordering_key as string | null) ?? null,
    orderingSeq: num(r.ordering_seq),
    createdAt: toDate(r.created_at)!,
    fannedOutAt: toDate(r.fanned_out_at),
    deliveries: {
      total: Number(r.total),
      pending: Number(r.pending),
      succeeded: Number(r.succeeded),
      dead: Number(r.dead),
      cancelled: Number(r.cancelled),
    },
  };
}

const LIST_DELIVERIES_KEYS = [
  'tenantId',
  'allTenants',
  'subscriptionId',
  'eventType',
  'status',
  'orderingKey',
  'since',
  'until',
  'limit',
  'cursor',
];

/** A page of deliveries, newest first (by id), filtered as asked. */
async function listDeliveries(executor: Executor, input: ListDeliveriesInput): Promise<Page<DeliveryRecord>> {
  checkInput(input, LIST_DELIVERIES_KEYS, 'list deliveries options');
  const tenantId = validateScope(input);
  const subscriptionId = input.subscriptionId ?? null;
  if (subscriptionId !== null && !isUuid(subscriptionId)) {
    throw new ValidationError('subscriptionId', 'format', 'must be a subscription id (a uuid)');
  }
  const eventType = validateTypeFilter(input.eventType, 'eventType');
  const statuses = validateStatuses(input.status);
  const orderingKey = input.orderingKey === undefined ? null : validateOrderingKey(input.orderingKey);
  const [since, until] = validateTimeRange(input);
  const limit = validateLimit(input.limit);
  const cursor = decodeCursor(input.cursor, DELIVERY_CURSOR);

  // Only the filters given reach the SQL, so each shape gets a plan fitted to it.
  const w = new Where();
  if (tenantId !== null) w.add(`d.tenant_id = ${w.param(tenantId)}`);
  if (subscriptionId !== null) w.add(`d.subscription_id = ${w.param(subscriptionId.toLowerCase())}::uuid`);
  if (eventType !== null && eventType !== '*') {
    const p = `${w.param(eventType)}::text`;
    w.add(`EXISTS (SELECT 1 FROM hookbox.events e WHERE e.id = d.event_id AND ${typeMatches('e.type', p)})`);
  }
  if (statuses) w.add(`d.status = ANY(${w.param(statuses)}::text[])`);
  if (orderingKey !== null) w.add(`d.ordering_key = ${w.param(orderingKey)}`);
  if (since) w.add(`d.created_at >= ${w.param(since.toISOString())}::timestamptz`);
  if (until) w.add(`d.created_at < ${w.param(until.toISOString())}::timestamptz`);
  if (cursor !== null) w.add(`d.id < ${w.param(cursor)}::bigint`);
  // The page is chosen on deliveries alone, then joined for its few rows: the joins never
  // run over every row the filters keep. One row more than asked tells whether another
  // page exists.
  const page = `SELECT d.* FROM hookbox.deliveries d\n${w}\nORDER BY d.id DESC LIMIT ${w.param(limit + 1)}`;
  const text = `SELECT ${DELIVERY_COLUMNS}\n${DELIVERY_FROM.replace('hookbox.deliveries d', `(${page}) d`)}\nORDER BY d.id DESC`;
  const rows = await runQuery(executor, text, w.values);
  const items = rows.slice(0, limit).map(toDelivery);
  return { items, nextCursor: rows.length > limit ? `${DELIVERY_CURSOR}${items[items.length - 1]!.id}` : null };
}

/** One delivery of the tenant with all its attempts, in order; NotFoundError otherwise. */
async function getDelivery(executor: Executor, input: DeliveryRef): Promise<DeliveryDetail> {
  checkInput(input, ['tenantId', 'id'], 'get delivery options');
  const tenantId = validateTenantId(input.tenantId);
  const id = bigintId(input.id);
  if (id === null) throw new NotFoundError('delivery', String(input.id));
  const text = `SELECT ${DELIVERY_COLUMNS}\n${DELIVERY_FROM}\nWHERE d.tenant_id = $1 AND d.id = $2::bigint`;
  const row = (await runQuery(executor, text, [tenantId, id]))[0];
  if (!row) throw new NotFoundError('delivery', id);
  const attempts = await runQuery(
    executor,
    `SELECT id, attempt, ${epochMs('started_at', 'started_at')}, duration_ms, status_code, error_class,
  error_message, response_excerpt
FROM hookbox.delivery_attempts WHERE delivery_id = $1::bigint ORDER BY attempt, id`,
    [id],
  );
  return { delivery: toDelivery(row), attempts: attempts.map(toAttempt) };
}

/** A page of events, newest first (by their time-ordered id), each with its fan-out summary. */
async function listEvents(executor: Executor, input: ListEventsInput): Promise<Page<EventRecord>> {
  checkInput(input, ['tenantId', 'allTenants', 'type', 'since', 'until', 'limit', 'cursor'], 'list events options');
  const tenantId = validateScope(input);
  const type = validateTypeFilter(input.type, 'type');
  const [since, until] = validateTimeRange(input);
  const limit = validateLimit(input.limit);
  const cursor = decodeCursor(input.cursor, EVENT_CURSOR);

  const w = new Where();
  if (tenantId !== null) w.add(`e.tenant_id = ${w.param(tenantId)}`);
  if (type !== null && type !== '*') w.add(typeMatches('e.type', `${w.param(type)}::text`));
  if (since) w.add(`e.created_at >= ${w.param(since.toISOString())}::timestamptz`);
  if (until) w.add(`e.created_at < ${w.param(until.toISOString())}::timestamptz`);
  if (cursor !== null) w.add(`e.id < ${w.param(cursor)}::uuid`);
  const text = `SELECT ${EVENT_COLUMNS}\nFROM hookbox.events e\n${FANOUT}\n${w}\nORDER BY e.id DESC\nLIMIT ${w.param(limit + 1)}`;
  const rows = await runQuery(executor, text, w.values);
  const items = rows.slice(0, limit).map(toEvent);
  return { items, nextCursor: rows.length > limit ? `${EVENT_CURSOR}${items[items.length - 1]!.id}` : null };
}

/** One event of the tenant with its payload and all its deliveries; NotFoundError otherwise. */
async function getEvent(executor: Executor, input: EventRef): Promise<EventDetail> {
  checkInput(input, ['tenantId', 'id'], 'get event options');
  const tenantId = validateTenantId(input.tenantId);
  if (!isUuid(input.id)) throw new NotFoundError('event', String(input.id));
  const id = input.id.toLowerCase();
  const text = `SELECT ${EVENT_COLUMNS}, e.payload::text AS payload\nFROM hookbox.events e\n${FANOUT}
WHERE e.tenant_id = $1 AND e.id = $2::uuid`;
  const row = (await runQuery(executor, text, [tenantId, id]))[0];
  if (!row) throw new NotFoundError('event', id);
  const deliveries = await runQuery(
    executor,
    `SELECT ${DELIVERY_COLUMNS}\n${DELIVERY_FROM}\nWHERE d.tenant_id = $1 AND d.event_id = $2::uuid ORDER BY d.id`,
    [tenantId, id],
  );
  return {
    event: { ...toEvent(row), payload: JSON.parse(row.payload as string) },
    deliveries: deliveries.map(toDelivery),
  };
}

/** The delivery log, executor first; see the module comment for the tenant rule. */
export const deliveryLog = { listDeliveries, getDelivery, listEvents, getEvent } as const;
