/**
 * The hookbox tables, in the Postgres schema `hookbox`. Every column is documented here
 * once; SQL is snake_case, TypeScript camelCase. drizzle-kit generates `drizzle/` from
 * this file (`pnpm db:generate`); released migrations are never edited by hand.
 */
import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgSchema,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

export const hookboxSchema = pgSchema('hookbox');

/**
 * Source of `events.pos`. No per-session cache (CACHE 1, the default): with cached ranges a
 * session could draw a lower number after another session's later commit.
 */
export const eventsPosSeq = hookboxSchema.sequence('events_pos_seq');

const tz = { withTimezone: true, mode: 'date' } as const;

/** Policies for a dead delivery of an ordering key (see `subscriptions.ordering_on_dead`). */
export const ORDERING_ON_DEAD = ['block', 'skip'] as const;
export type OrderingOnDead = (typeof ORDERING_ON_DEAD)[number];

/** Delivery states. `pending` is the only one the relay works on; the others are final. */
export const DELIVERY_STATUSES = ['pending', 'succeeded', 'dead', 'cancelled'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** A tenant's webhook endpoint and what it wants to receive. */
export const subscriptions = hookboxSchema.table(
  'subscriptions',
  {
    /** Random uuid; never reveals order or count of other tenants' subscriptions. */
    id: uuid('id').primaryKey().defaultRandom(),
    /** Owner. Every read and write is scoped by it; events only fan out within a tenant. */
    tenantId: text('tenant_id').notNull(),
    /** Absolute http(s) URL without credentials, at most 2,048 characters. */
    url: text('url').notNull(),
    /** Event-type patterns: `message.new` (exact), `message.*` (prefix), `*` (all). */
    eventTypes: text('event_types').array().notNull(),
    /** Free text for operators. */
    description: text('description'),
    /** Current signing secret, `whsec_` + base64 key. Never logged, never listed. */
    secret: text('secret').notNull(),
    /** Secret replaced by the last rotation; still signs until `previousSecretExpiresAt`. */
    previousSecret: text('previous_secret'),
    /** When the previous secret stops signing. */
    previousSecretExpiresAt: timestamp('previous_secret_expires_at', tz),
    /** Extra request headers (name → value); reserved names are refused at validation. */
    headers: jsonb('headers').$type<Record<string, string>>().notNull().default({}),
    /** Inactive subscriptions receive no new deliveries. */
    active: boolean('active').notNull().default(true),
    /** Why it was disabled (an operator, or `410 Gone` from the endpoint). */
    disabledReason: text('disabled_reason'),
    disabledAt: timestamp('disabled_at', tz),
    /** Per-endpoint cap on concurrent requests; null means the relay's default. */
    maxInFlight: integer('max_in_flight'),
    /**
     * What a dead delivery of an ordering key does to the key's later deliveries to this
     * subscription: `block` (default) holds them until the dead one is replayed and
     * succeeds; `skip` moves on to the next.
     */
    orderingOnDead: text('ordering_on_dead').$type<OrderingOnDead>().notNull().default('block'),
    /**
     * Most requests per second to this endpoint, counted across every relay sharing the
     * database (hookbox.take_rate_tokens, table rate_windows); null: no limit.
     */
    rateLimit: integer('rate_limit'),
    /** Total time allowed per request to this endpoint, in ms; null: the relay's --request-timeout. */
    requestTimeoutMs: integer('request_timeout_ms'),
    /** Delays before each retry, in ms (its length is the retry budget); null: the relay's --retry-schedule. */
    retryScheduleMs: integer('retry_schedule_ms').array(),
    /** Consecutive failed attempts; reset by a success. */
    failureStreak: integer('failure_streak').notNull().default(0),
    lastSuccessAt: timestamp('last_success_at', tz),
    lastFailureAt: timestamp('last_failure_at', tz),
    /** Start of the current run of failed attempts (no success since); null while healthy. Auto-disable counts from it. */
    failingSince: timestamp('failing_since', tz),
    /**
     * Circuit breaker, shared by every relay. Null: closed. In the future: open, its
     * deliveries are held (not claimed, no attempt spent) until then. In the past: half-open,
     * one probe at a time (see `probeUntil`) until one succeeds (closed) or fails (open again).
     */
    circuitOpenUntil: timestamp('circuit_open_until', tz),
    /** The cooldown of the last opening, in ms; the next one doubles it (capped). Null while closed. */
    circuitCooldownMs: integer('circuit_cooldown_ms'),
    /** Lease of the half-open circuit's single probe, across relays; null when no probe is out. */
    probeUntil: timestamp('probe_until', tz),
    createdAt: timestamp('created_at', tz).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', tz).notNull().defaultNow(),
  },
  (t) => [
    check('subscriptions_ordering_on_dead_ck', sql`${t.orderingOnDead} in ('block', 'skip')`),
    // Fan-out reads the active subscriptions of one tenant.
    index('subscriptions_tenant_active_idx').on(t.tenantId).where(sql`${t.active}`),
    // Listing a tenant's subscriptions, keyset-paginated by id.
    index('subscriptions_tenant_id_idx').on(t.tenantId, t.id),
    // Probe claims and the open-circuit gauge read the few subscriptions whose circuit is not closed.
    index('subscriptions_circuit_idx').on(t.circuitOpenUntil).where(sql`${t.circuitOpenUntil} is not null`),
  ],
);

/** The outbox: one row per event, written in the service's own transaction. */
export const events = hookboxSchema.table(
  'events',
  {
    /**
     * UUIDv7: unique, time-ordered by enqueue time, stable. It is the `webhook-id` header.
     * A uuid is 16 bytes in the index (half a text ULID) and v7's time prefix keeps
     * inserts at the right edge of the btree. Order is by enqueue, not commit, so the relay
     * claims by state (`fanned_out_at is null`), never with an id cursor.
     */
    id: uuid('id').primaryKey().default(sql`hookbox.uuid_v7()`),
    /** Owner; the event fans out only to this tenant's subscriptions. */
    tenantId: text('tenant_id').notNull(),
    /** Dot-separated lowercase segments, e.g. `message.new`; at most 255 characters. */
    type: text('type').notNull(),
    /** The event's data; becomes `data` in the delivered body. */
    payload: jsonb('payload').notNull(),
    /** Optional caller key; a second enqueue with the same key (per tenant) returns the first id. */
    idempotencyKey: text('idempotency_key'),
    createdAt: timestamp('created_at', tz).notNull().defaultNow(),
    /** Set when the relay has created this event's deliveries; null while pending. */
    fannedOutAt: timestamp('fanned_out_at', tz),
    /** Optional caller key (`conversation:42`): events of one tenant and key are delivered in order. */
    orderingKey: text('ordering_key'),
    /**
     * Position of this event among its tenant's events with the same ordering key: 1, 2, 3…
     * in the commit order of their transactions, without gaps. Null until fan-out numbers it
     * (from `ordering_keys`, in `pos` order); events numbered at enqueue by hookbox before
     * migration 0016 carry theirs from the start.
     */
    orderingSeq: bigint('ordering_seq', { mode: 'number' }),
    /**
     * Drawn from `events_pos_seq` when the row is inserted. An ordered event draws it only
     * after taking its key's transaction-level advisory lock, which is held until commit,
     * so per (tenant, ordering key) `pos` order is commit order (gaps do not matter). The
     * fan-out takes each tenant's pending events in `pos` order. Null in rows written
     * before migration 0016 (taken first).
     */
    pos: bigint('pos', { mode: 'number' }).default(sql`nextval('hookbox.events_pos_seq'::regclass)`),
  },
  (t) => [
    uniqueIndex('events_tenant_idempotency_key_uq')
      .on(t.tenantId, t.idempotencyKey)
      .where(sql`${t.idempotencyKey} is not null`),
    // The relay's fan-out claim: the tenants with pending events (a skip scan), then each
    // one's pending events in `pos` order, a bounded number per tenant per batch; and its
    // deferral probe, a tenant's pending events below a `pos`. Only this index gives
    // (tenant_id, pos) order, so the fan-out's cached plan never walks events_tenant_id_idx
    // past fanned-out events (migrations 0015, 0016).
    index('events_pending_tenant_idx').on(t.tenantId, t.pos.asc().nullsFirst()).where(sql`${t.fannedOutAt} is null`),
    index('events_tenant_id_idx').on(t.tenantId, t.id),
    // Ordered delivery waits while an earlier numbered event of the same key is not fanned
    // out yet: only events numbered at enqueue before migration 0016 are ever pending and
    // numbered (fan-out numbers the others as it marks them fanned out).
    index('events_pending_numbered_idx')
      .on(t.tenantId, t.orderingKey, t.orderingSeq)
      .where(sql`${t.fannedOutAt} is null and ${t.orderingSeq} is not null`),
  ],
);

/**
 * The last sequence number given per (tenant, ordering key). The relay's fan-out adds the
 * number of events of the key it numbers in a batch (migration 0016; before it, `enqueue`
 * incremented it in the producer's transaction).
 */
export const orderingKeys = hookboxSchema.table(
  'ordering_keys',
  {
    tenantId: text('tenant_id').notNull(),
    key: text('key').notNull(),
    /** The last sequence number given to an event of this key. */
    seq: bigint('seq', { mode: 'number' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.key] })],
);

/** One row per (event, subscription) to deliver; replays add new rows. */
export const deliveries = hookboxSchema.table(
  'deliveries',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    eventId: uuid('event_id')
      .notNull()
      .references(() => events.id, { onDelete: 'cascade' }),
    subscriptionId: uuid('subscription_id')
      .notNull()
      .references(() => subscriptions.id, { onDelete: 'cascade' }),
    /** Copied from the event so tenant-scoped reads need no join. */
    tenantId: text('tenant_id').notNull(),
    /** pending → succeeded | dead | cancelled. */
    status: text('status').$type<DeliveryStatus>().notNull().default('pending'),
    /** Attempts started so far; also the fencing token of the current claim. */
    attempts: integer('attempts').notNull().default(0),
    /**
     * When the row may next be claimed. A claim moves it to the end of the lease, so an
     * expired lease (a relay that died) makes the row due again with no extra predicate.
     */
    nextAttemptAt: timestamp('next_attempt_at', tz).notNull().defaultNow(),
    /** End of the current lease; null when no relay holds the row. */
    lockedUntil: timestamp('locked_until', tz),
    /** HTTP status of the last attempt, if a response came back. */
    lastStatus: integer('last_status'),
    /** Error class and message of the last failed attempt. */
    lastError: text('last_error'),
    lastAttemptAt: timestamp('last_attempt_at', tz),
    /** The delivery this one replays, if any. */
    replayOf: bigint('replay_of', { mode: 'number' }),
    createdAt: timestamp('created_at', tz).notNull().defaultNow(),
    /** When the row reached a final state. */
    completedAt: timestamp('completed_at', tz),
    /** The event's ordering key and sequence, copied so the claim needs no join. */
    orderingKey: text('ordering_key'),
    orderingSeq: bigint('ordering_seq', { mode: 'number' }),
  },
  (t) => [
    check('deliveries_status_ck', sql`${t.status} in ('pending', 'succeeded', 'dead', 'cancelled')`),
    // The dispatch claim: due pending rows, oldest first.
    index('deliveries_due_idx').on(t.nextAttemptAt).where(sql`${t.status} = 'pending'`),
    index('deliveries_event_idx').on(t.eventId),
    index('deliveries_subscription_id_idx').on(t.subscriptionId, t.id),
    index('deliveries_tenant_id_idx').on(t.tenantId, t.id),
    // Dead deliveries are few and wanted often (the dead gauge, bulk recovery): a small
    // partial index instead of a scan of the whole table.
    index('deliveries_dead_idx').on(t.id).where(sql`${t.status} = 'dead'`),
    // Ordered delivery: the unfinished deliveries of one (subscription, key), in sequence.
    index('deliveries_ordering_idx')
      .on(t.tenantId, t.orderingKey, t.subscriptionId, t.orderingSeq)
      .where(sql`${t.orderingKey} is not null and ${t.status} in ('pending', 'dead')`),
  ],
);

/** The delivery log: one row per HTTP attempt. */
export const deliveryAttempts = hookboxSchema.table(
  'delivery_attempts',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    /**
     * The delivery attempted. No foreign key (migration 0007): checking one cost a row lock
     * per attempt on the delivery the same statement had just updated, more than the rest
     * of the outcome write. The relay logs an attempt only for a delivery it holds locked,
     * and the trigger `deliveries_delete_attempts` deletes a delivery's attempts with it
     * (however it is deleted: retention, a deleted subscription or event), so the log
     * never holds an attempt without its delivery.
     */
    deliveryId: bigint('delivery_id', { mode: 'number' }).notNull(),
    /** 1 for the first attempt. */
    attempt: integer('attempt').notNull(),
    startedAt: timestamp('started_at', tz).notNull(),
    durationMs: integer('duration_ms').notNull(),
    /** HTTP status, when a response came back. */
    statusCode: integer('status_code'),
    /** null on 2xx; otherwise `http_status`, `timeout`, `connection_refused`, `connection_reset`, `dns`, `tls`, `network`, `blocked`. */
    errorClass: text('error_class'),
    errorMessage: text('error_message'),
    /** First bytes of the response body (capped by the relay). */
    responseExcerpt: text('response_excerpt'),
  },
  (t) => [
    index('delivery_attempts_delivery_idx').on(t.deliveryId),
    // Time-window reads (stats, retention) over an append-only log: a BRIN index costs
    // almost nothing on insert and skips the blocks outside the window.
    index('delivery_attempts_started_brin').using('brin', t.startedAt),
  ],
);

/**
 * The current one-second window of each rate-limited subscription: how many requests the
 * relays have been allowed in it. Written only by hookbox.take_rate_tokens (migration 0012),
 * which every relay calls before sending to a subscription with a rate limit.
 */
export const rateWindows = hookboxSchema.table('rate_windows', {
  subscriptionId: uuid('subscription_id')
    .primaryKey()
    .references(() => subscriptions.id, { onDelete: 'cascade' }),
  /** Start of the current window (a whole second of the database's clock). */
  windowStart: timestamp('window_start', tz).notNull(),
  /** Requests allowed in that window so far. */
  used: integer('used').notNull().default(0),
});

/**
 * Operator API keys of `hookbox serve` (every tenant). Only a SHA-256 hash of each key is
 * stored: keys are 32 random bytes, so a slow hash adds nothing, and a leaked table lets
 * nobody in.
 */
export const apiKeys = hookboxSchema.table(
  'api_keys',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    /** What the key is for, for people (`ci`, `grafana`). */
    name: text('name').notNull(),
    /** The key's first characters (`hbk_Ab12Cd`), to recognise it in lists; not enough to use it. */
    prefix: text('prefix').notNull(),
    /** Hex SHA-256 of the whole key. */
    keyHash: text('key_hash').notNull(),
    createdAt: timestamp('created_at', tz).notNull().defaultNow(),
    /** Refreshed at most once a minute per key. */
    lastUsedAt: timestamp('last_used_at', tz),
    /** Set by `hookbox api-keys revoke`; a revoked key is refused at once. */
    revokedAt: timestamp('revoked_at', tz),
  },
  (t) => [uniqueIndex('api_keys_hash_idx').on(t.keyHash)],
);

/**
 * Keys that sign tenant portal tokens (HMAC-SHA256). Created on first use; the newest
 * signs, every one verifies, so deleting a row revokes every token it signed.
 */
export const portalKeys = hookboxSchema.table('portal_keys', {
  /** Named in each token, so verification picks the right key. */
  id: text('id').primaryKey(),
  /** Base64 of 32 random bytes. */
  secret: text('secret').notNull(),
  createdAt: timestamp('created_at', tz).notNull().defaultNow(),
});

export type Subscription = typeof subscriptions.$inferSelect;
export type NewSubscription = typeof subscriptions.$inferInsert;
export type EventRow = typeof events.$inferSelect;
export type NewEventRow = typeof events.$inferInsert;
export type Delivery = typeof deliveries.$inferSelect;
export type DeliveryAttempt = typeof deliveryAttempts.$inferSelect;
