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

// Ordered events take the next number of their (tenant, key) in the same statement. The
// upsert's row lock is held until the caller's transaction ends: a second transaction on
// the same key waits on it, so numbers follow commit order, and a rollback gives its
// number back. An idempotent repeat of a visible event takes no number. Returns one row:
// the new id (null when the event existed) and the number taken (null when none was).
// See docs/ordering.md.
const INSERT_ONE_ORDERED = `WITH k AS (
  INSERT INTO hookbox.ordering_keys AS k (tenant_id, key, seq)
  SELECT $2, $6, 1
  WHERE $5::text IS NULL
     OR NOT EXISTS (SELECT 1 FROM hookbox.events e WHERE e.tenant_id = $2 AND e.idempotency_key = $5)
  ON CONFLICT (tenant_id, key) DO UPDATE SET seq = k.seq + 1
  RETURNING k.seq
), ins AS (
  INSERT INTO hookbox.events (id, tenant_id, type, payload, idempotency_key, ordering_key, ordering_seq)
  SELECT $1, $2, $3, $4::jsonb, $5, $6, k.seq FROM k
  ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING id
)
SELECT (SELECT id FROM ins) AS id, (SELECT seq FROM k) AS seq`;

// A batch takes, per key, as many numbers as it has new events of that key (in batch
// order), locking its keys in one sorted order so that two batches cannot deadlock on each
// other. Events whose idempotency key exists already (or repeats one earlier in the batch)
// take no number. Returns the inserted ids, and per key the last number taken and how many.
const INSERT_MANY_ORDERED = `WITH u0 AS (
  SELECT u.*,
    u.idempotency_key IS NULL
    OR (row_number() OVER (PARTITION BY u.tenant_id, u.idempotency_key ORDER BY u.ord) = 1
        AND NOT EXISTS (SELECT 1 FROM hookbox.events e
                        WHERE e.tenant_id = u.tenant_id AND e.idempotency_key = u.idempotency_key)) AS fresh
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY
    AS u(id, tenant_id, type, payload, idempotency_key, ordering_key, ord)
), u AS (
  SELECT u0.*, count(*) OVER w AS n, row_number() OVER (w ORDER BY u0.ord) AS rn
  FROM u0 WHERE u0.fresh
  WINDOW w AS (PARTITION BY u0.tenant_id, u0.ordering_key)
), k AS (
  INSERT INTO hookbox.ordering_keys AS k (tenant_id, key, seq)
  SELECT DISTINCT u.tenant_id, u.ordering_key, u.n FROM u WHERE u.ordering_key IS NOT NULL
  ORDER BY 1, 2
  ON CONFLICT (tenant_id, key) DO UPDATE SET seq = k.seq + excluded.seq
  RETURNING k.tenant_id, k.key, k.seq
), ins AS (
  INSERT INTO hookbox.events (id, tenant_id, type, payload, idempotency_key, ordering_key, ordering_seq)
  SELECT u.id, u.tenant_id, u.type, u.payload::jsonb, u.idempotency_key, u.ordering_key, k.seq - u.n + u.rn
  FROM u LEFT JOIN k ON k.tenant_id = u.tenant_id AND k.key = u.ordering_key
  ORDER BY u.ord
  ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING id
)
SELECT ins.id::text AS id, NULL AS tenant_id, NULL AS key, NULL::bigint AS seq, NULL::bigint AS taken FROM ins
UNION ALL
SELECT NULL, k.tenant_id, k.key, k.seq, (SELECT max(u.n) FROM u WHERE u.tenant_id = k.tenant_id AND u.ordering_key = k.key)
FROM k`;

// Numbers taken for events that a concurrent transaction inserted first (its idempotency
// key committed while this insert waited) are given back, and this call's new events of
// those keys renumbered without gaps. Only keys whose counter still ends at the number
// this call took: inside a transaction that is always so (its row locks are held), while
// after an autocommit statement another writer may have moved on, and then the gap stays.
const GIVE_BACK = `WITH t AS (
  SELECT * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS t(tenant_id, key, last, taken)
), b AS (
  SELECT k.tenant_id, k.key, t.last - t.taken AS base
  FROM hookbox.ordering_keys k JOIN t ON k.tenant_id = t.tenant_id AND k.key = t.key AND k.seq = t.last
  FOR UPDATE OF k
), mine AS (
  SELECT e.id, b.base + row_number() OVER (PARTITION BY e.tenant_id, e.ordering_key ORDER BY e.ordering_seq) AS seq
  FROM hookbox.events e JOIN b ON b.tenant_id = e.tenant_id AND b.key = e.ordering_key
  WHERE e.id = ANY($1::uuid[])
), renumber AS (
  UPDATE hookbox.events e SET ordering_seq = m.seq FROM mine m WHERE e.id = m.id AND e.ordering_seq <> m.seq
)
UPDATE hookbox.ordering_keys k
SET seq = b.base + (SELECT count(*) FROM mine m JOIN hookbox.events e ON e.id = m.id
                    WHERE e.tenant_id = b.tenant_id AND e.ordering_key = b.key)
FROM b WHERE k.tenant_id = b.tenant_id AND k.key = b.key`;

type TakenRow = {
  id: string | null;
  tenant_id: string | null;
  key: string | null;
  seq: string | number | null;
  taken: string | number | null;
};

async function giveBack(executor: Executor, insertedIds: string[], taken: TakenRow[]): Promise<void> {
  if (taken.length === 0) return;
  await runQuery(executor, GIVE_BACK, [
    insertedIds,
    taken.map((t) => t.tenant_id),
    taken.map((t) => t.key),
    taken.map((t) => Number(t.seq)),
    taken.map((t) => Number(t.taken)),
  ]);
}

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
    if (ordered) {
      const [r] = await runQuery<{ id: string | null; seq: string | null }>(
        executor,
        INSERT_ONE_ORDERED,
        [id, ev.tenantId, ev.type, ev.payloadJson, ev.idempotencyKey, ev.orderingKey],
        opts.preparedStatements ? 'hookbox_enqueue_ordered_v1' : undefined,
      );
      if (r?.id) return { id, created: true };
      if (r?.seq !== null && r?.seq !== undefined) {
        await giveBack(executor, [], [{ id: null, tenant_id: ev.tenantId, key: ev.orderingKey, seq: r.seq, taken: 1 }]);
      }
    } else {
      const rows = await runQuery<{ id: string }>(
        executor,
        INSERT_ONE,
        [id, ev.tenantId, ev.type, ev.payloadJson, ev.idempotencyKey],
        opts.preparedStatements ? 'hookbox_enqueue_v1' : undefined,
      );
      if (rows.length > 0) return { id, created: true };
    }
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
    let rows: { id: string }[];
    if (ordered) {
      const out = await runQuery<TakenRow>(executor, INSERT_MANY_ORDERED, [
        ...columns,
        valid.map((e) => e.orderingKey),
      ]);
      rows = out.filter((r): r is TakenRow & { id: string } => r.id !== null);
      if (rows.length === valid.length) return ids.map((id) => ({ id, created: true }));
      // Only when a concurrent transaction won an idempotency key after the numbers were taken.
      const numbered = out.filter((r) => r.key !== null);
      const newOfKey = new Map<string, number>();
      const insertedSet = new Set(rows.map((r) => r.id));
      valid.forEach((e, i) => {
        if (e.orderingKey !== null && insertedSet.has(ids[i] as string)) {
          const k = keyOf(e.tenantId, e.orderingKey);
          newOfKey.set(k, (newOfKey.get(k) ?? 0) + 1);
        }
      });
      const short = numbered.filter(
        (r) => (newOfKey.get(keyOf(r.tenant_id as string, r.key as string)) ?? 0) < Number(r.taken),
      );
      await giveBack(
        executor,
        rows.map((r) => r.id),
        short,
      );
    } else {
      rows = await runQuery<{ id: string }>(executor, INSERT_MANY, columns);
      if (rows.length === valid.length) return ids.map((id) => ({ id, created: true }));
    }
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
