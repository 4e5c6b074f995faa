import { HookboxError, ValidationError } from './errors.js';
import { assertInTransaction, type Executor, runQuery } from './executor.js';
import { uuidv7 } from './id.js';
import { attachNotifier, type Notifier, type NotifierOptions, type NotifierSource } from './notify.js';
import { DEFAULT_MAX_PAYLOAD_BYTES, type EventInput, type ValidEvent, validateEvent } from './validate.js';

/** Options of `createOutbox`. Unknown keys are rejected. */
export interface OutboxOptions {
  /** Largest payload accepted, in bytes of JSON text. Default 262,144 (256 KiB). */
  maxPayloadBytes?: number;
  /** Most events one `enqueueMany` call accepts. Default 10,000. */
  maxBatchSize?: number;
  /**
   * Most bytes of payload JSON one `enqueueMany` call accepts, summed over its events.
   * Checked while validating, before anything is sent. Default 33,554,432 (32 MiB).
   */
  maxBatchBytes?: number;
  /**
   * Refuse a TypeORM executor (EntityManager or QueryRunner) that is not inside an active
   * transaction: `enqueue(dataSource.manager, …)` outside `transaction()` would write the
   * event in its own autocommit statement, so a later rollback of the business write
   * leaves the event behind. Throws `HookboxError` with code `HOOKBOX_NO_TRANSACTION`.
   * pg clients and drizzle executors cannot be inspected and are not checked. Default false.
   */
  requireTransaction?: boolean;
  /**
   * Prepare `enqueue`'s statement once per connection (node-postgres executors only):
   * Postgres then skips parsing and planning it on every call. Default true. Set false
   * behind a PgBouncer older than 1.21 in transaction mode, which cannot route prepared
   * statements.
   */
  preparedStatements?: boolean;
}

const DEFAULTS = {
  maxPayloadBytes: DEFAULT_MAX_PAYLOAD_BYTES,
  maxBatchSize: 10_000,
  maxBatchBytes: 32 * 1024 * 1024,
  preparedStatements: true,
  requireTransaction: false,
} satisfies Required<OutboxOptions>;

/**
 * Maps each event type to its payload type, e.g. `{ 'message.new': { id: string } }`.
 * A type alias or an interface: any object type whose keys are the event types.
 */
// biome-ignore lint/suspicious/noExplicitAny: `any` (not `unknown`) lets interfaces, which have no index signature, satisfy it
export type EventMap = Record<string, any>;

/** The event types of a map (its string keys); `string` for the untyped default. */
export type EventTypeOf<E extends EventMap> = keyof E & string;

/** The payload type of event type `T` in map `E`. */
export type PayloadOf<E extends EventMap, T extends EventTypeOf<E>> = E[T];

/** An event whose payload type follows from its type (a union over the map's types). */
export type TypedEvent<E extends EventMap, T extends EventTypeOf<E> = EventTypeOf<E>> = {
  [K in T]: EventInput<K, E[K]>;
}[T];

export interface EnqueueResult {
  /** The event id (a UUIDv7); also the `webhook-id` its deliveries carry. */
  id: string;
  /** False when the idempotency key was enqueued before and the earlier id is returned. */
  created: boolean;
}

export interface Outbox<out E extends EventMap = EventMap> {
  /**
   * Writes one event with the caller's executor, inside the caller's transaction; a
   * rollback removes it. Throws ValidationError before writing anything on bad input.
   * Generic in the event type, so a wrapper `emit<K extends keyof E>(type: K, payload: E[K])`
   * type-checks.
   */
  enqueue<T extends EventTypeOf<E>>(executor: Executor, event: EventInput<T, E[T]>): Promise<EnqueueResult>;
  /** Writes many events in one statement (plus one more if idempotency keys repeat). */
  enqueueMany<T extends EventTypeOf<E> = EventTypeOf<E>>(
    executor: Executor,
    events: readonly TypedEvent<E, T>[],
  ): Promise<EnqueueResult[]>;
  /**
   * Wakes the relay soon after your transactions commit: watches the pg Pool behind
   * `source` — a pg Pool, a drizzle node-postgres db (`db.$client`) or a TypeORM
   * DataSource (its driver's pool) — for returned connections and sends a debounced
   * NOTIFY after those that may have committed an enqueue. Optional: without it the relay
   * finds events on its next poll. Call `detach()` on shutdown.
   */
  attachNotifier(source: NotifierSource, options?: NotifierOptions): Notifier;
  /** The resolved options. */
  readonly options: Readonly<Required<OutboxOptions>>;
}

function resolveOptions(options: OutboxOptions): Required<OutboxOptions> {
  if (options === null || typeof options !== 'object') {
    throw new ValidationError('options', 'type', 'must be an object');
  }
  for (const key of Object.keys(options)) {
    if (!(key in DEFAULTS)) {
      throw new ValidationError(
        `options.${key}`,
        'unknown',
        `is not an option (known: ${Object.keys(DEFAULTS).join(', ')})`,
      );
    }
  }
  const resolved = { ...DEFAULTS, ...options };
  for (const key of ['maxPayloadBytes', 'maxBatchSize', 'maxBatchBytes'] as const) {
    const v = resolved[key];
    if (!Number.isSafeInteger(v) || v < 1) {
      throw new ValidationError(`options.${key}`, 'positive_integer', 'must be a positive integer');
    }
  }
  for (const key of ['preparedStatements', 'requireTransaction'] as const) {
    if (typeof resolved[key] !== 'boolean') {
      throw new ValidationError(`options.${key}`, 'type', 'must be true or false');
    }
  }
  return resolved;
}

const INSERT_ONE = `INSERT INTO hookbox.events (id, tenant_id, type, payload, idempotency_key)
VALUES ($1, $2, $3, $4::jsonb, $5)
ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id`;

const INSERT_MANY = `INSERT INTO hookbox.events (id, tenant_id, type, payload, idempotency_key)
SELECT u.id, u.tenant_id, u.type, u.payload::jsonb, u.idempotency_key
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
  AS u(id, tenant_id, type, payload, idempotency_key)
ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id`;

// Ordered events take their key's transaction-level advisory lock, held until the caller's
// transaction ends, and only then draw events.pos (the lock is taken in a CTE the insert
// reads from, so nextval runs after it): a second transaction on the same key waits here
// until the first commits or rolls back, and per key, pos order is commit order. The relay
// numbers ordering_seq from pos order at fan-out; a rollback or an idempotent repeat leaves
// only a gap in pos. The lock key: classid 1751868015, objid hashtext(tenant || 0x1f || key)
// (the same as hookbox.enqueue in SQL). See docs/ordering.md.
const INSERT_ONE_ORDERED = `WITH l AS (
  SELECT pg_advisory_xact_lock(1751868015, hashtext($2::text || E'\\x1f' || $6::text))
)
INSERT INTO hookbox.events (id, tenant_id, type, payload, idempotency_key, ordering_key, pos)
SELECT $1, $2, $3, $4::jsonb, $5, $6, nextval('hookbox.events_pos_seq') FROM l
ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id`;

// A batch locks its distinct keys in one order (of the lock key), so that two batches
// cannot deadlock on each other, all before its first pos is drawn (the one-time filter
// reads every lock row first); then draws pos in batch order (volatile expressions are
// evaluated after the sort).
const INSERT_MANY_ORDERED = `WITH u AS (
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY
    AS u(id, tenant_id, type, payload, idempotency_key, ordering_key, ord)
), l AS MATERIALIZED (
  SELECT pg_advisory_xact_lock(1751868015, x.h) IS NULL AS locked
  FROM (SELECT DISTINCT hashtext(u.tenant_id || E'\\x1f' || u.ordering_key) AS h
        FROM u WHERE u.ordering_key IS NOT NULL ORDER BY 1) x
)
INSERT INTO hookbox.events (id, tenant_id, type, payload, idempotency_key, ordering_key, pos)
SELECT u.id, u.tenant_id, u.type, u.payload::jsonb, u.idempotency_key, u.ordering_key, nextval('hookbox.events_pos_seq')
FROM u
WHERE (SELECT count(*) FROM l) >= 0
ORDER BY u.ord
ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id`;

// A separate statement, so that in READ COMMITTED it sees a row a concurrent transaction
// committed while our INSERT waited on the unique index.
const FIND_BY_KEYS = `SELECT e.id, e.tenant_id, e.idempotency_key FROM hookbox.events e
JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, idempotency_key)
  ON e.tenant_id = k.tenant_id AND e.idempotency_key = k.idempotency_key`;

const keyOf = (tenantId: string, key: string) => `${tenantId}\u0000${key}`;

async function resolveExisting(executor: Executor, missing: ValidEvent[]): Promise<Map<string, string>> {
  const rows = await runQuery<{ id: string; tenant_id: string; idempotency_key: string }>(executor, FIND_BY_KEYS, [
    missing.map((e) => e.tenantId),
    missing.map((e) => e.idempotencyKey),
  ]);
  const found = new Map<string, string>();
  for (const r of rows) found.set(keyOf(r.tenant_id, r.idempotency_key), r.id);
  return found;
}

/** Creates the outbox API. `E` types payloads by event type; leave it out to accept any. */
export function createOutbox<E extends EventMap = EventMap>(options: OutboxOptions = {}): Outbox<E> {
  const opts = resolveOptions(options);
  let lastEnqueueAt = Number.NEGATIVE_INFINITY;

  async function enqueue(executor: Executor, event: EventInput): Promise<EnqueueResult> {
    const ev = validateEvent(event, opts.maxPayloadBytes);
    if (opts.requireTransaction) assertInTransaction(executor);
    const id = uuidv7();
    lastEnqueueAt = performance.now();
    const ordered = ev.orderingKey !== null;
    const rows = await runQuery<{ id: string }>(
      executor,
      ordered ? INSERT_ONE_ORDERED : INSERT_ONE,
      ordered
        ? [id, ev.tenantId, ev.type, ev.payloadJson, ev.idempotencyKey, ev.orderingKey]
        : [id, ev.tenantId, ev.type, ev.payloadJson, ev.idempotencyKey],
      opts.preparedStatements ? (ordered ? 'hookbox_enqueue_ordered_v2' : 'hookbox_enqueue_v1') : undefined,
    );
    if (rows.length > 0) return { id, created: true };
    const existing = (await resolveExisting(executor, [ev])).get(keyOf(ev.tenantId, ev.idempotencyKey ?? ''));
    if (!existing) throw lostIdempotentRow();
    return { id: existing, created: false };
  }

  async function enqueueMany(executor: Executor, events: readonly EventInput[]): Promise<EnqueueResult[]> {
    if (!Array.isArray(events)) throw new ValidationError('events', 'type', 'must be an array');
    if (events.length > opts.maxBatchSize) {
      throw new ValidationError(
        'events',
        'max_items',
        `must hold at most ${opts.maxBatchSize} events (got ${events.length})`,
      );
    }
    if (events.length === 0) return [];
    // Validate everything first: one bad event rejects the batch before anything is written,
    // and the running total stops an oversized batch before it is all serialised.
    const valid: ValidEvent[] = [];
    let batchBytes = 0;
    for (let i = 0; i < events.length; i++) {
      const ev = validateEvent(events[i] as EventInput, opts.maxPayloadBytes, `events[${i}]`);
      batchBytes += ev.payloadBytes;
      if (batchBytes > opts.maxBatchBytes) {
        throw new ValidationError(
          'events',
          'max_batch_bytes',
          `must hold at most ${opts.maxBatchBytes} bytes of payload JSON in one call (events[0..${i}] already hold ${batchBytes}); split the batch or raise maxBatchBytes`,
        );
      }
      valid.push(ev);
    }
    if (opts.requireTransaction) assertInTransaction(executor);
    const ids = valid.map(() => uuidv7());
    lastEnqueueAt = performance.now();
    const ordered = valid.some((e) => e.orderingKey !== null);
    const columns = [
      ids,
      valid.map((e) => e.tenantId),
      valid.map((e) => e.type),
      valid.map((e) => e.payloadJson),
      valid.map((e) => e.idempotencyKey),
    ];
    const rows = ordered
      ? await runQuery<{ id: string }>(executor, INSERT_MANY_ORDERED, [...columns, valid.map((e) => e.orderingKey)])
      : await runQuery<{ id: string }>(executor, INSERT_MANY, columns);
    if (rows.length === valid.length) return ids.map((id) => ({ id, created: true }));
    const inserted = new Set(rows.map((r) => r.id));
    const missing = valid.filter((_, i) => !inserted.has(ids[i] as string));
    const existing = await resolveExisting(executor, missing);
    return valid.map((e, i) => {
      const id = ids[i] as string;
      if (inserted.has(id)) return { id, created: true };
      const found = existing.get(keyOf(e.tenantId, e.idempotencyKey ?? ''));
      if (!found) throw lostIdempotentRow();
      return { id: found, created: false };
    });
  }

  return {
    enqueue,
    enqueueMany,
    attachNotifier: (pool, notifierOptions) => attachNotifier(pool, () => lastEnqueueAt, notifierOptions),
    options: opts,
  };
}

function lostIdempotentRow(): HookboxError {
  // Only under REPEATABLE READ/SERIALIZABLE can the conflicting row be invisible here.
  return new HookboxError(
    'HOOKBOX_DATABASE',
    'idempotencyKey: the key conflicts with an event this transaction cannot see (run enqueue in READ COMMITTED, or retry the transaction)',
  );
}
