/**
 * `hookbox send-test`'s library half: a test event for exactly one endpoint, and where a
 * delivery stands while a relay works on it.
 */
import { NotFoundError, ValidationError } from './errors.js';
import { type Executor, runQuery } from './executor.js';
import { uuidv7 } from './id.js';
import { checkInput, deliveryIdRef as deliveryId, uuidRef as uuid } from './input.js';
import { notifyRelay } from './notify.js';
import { toDate, epochMs as ts } from './rows.js';
import type { DeliveryStatus } from './schema.js';
import { DEFAULT_MAX_PAYLOAD_BYTES, validateEvent, validateTenantId } from './validate.js';

export interface SendTestInput {
  tenantId: string;
  subscriptionId: string;
  /** Event type. Default `hookbox.ping`. */
  type?: string;
  /** Event payload. Default `{ "test": true, "message": "hookbox test event" }`. */
  payload?: unknown;
}

export interface SendTestResult {
  eventId: string;
  deliveryId: number;
}

export interface DeliveryOutcomeInput {
  tenantId: string;
  id: number | string;
}

/** Where a delivery stands, with its latest attempt: what `send-test` waits on. */
export interface DeliveryOutcome {
  id: number;
  status: DeliveryStatus;
  attempts: number;
  /** True while a relay holds the delivery (an attempt is running). */
  leased: boolean;
  lastStatus: number | null;
  lastError: string | null;
  createdAt: Date;
  completedAt: Date | null;
  /** The most recent logged HTTP attempt, or null when none has finished. */
  lastAttempt: {
    attempt: number;
    startedAt: Date;
    durationMs: number;
    statusCode: number | null;
    errorClass: string | null;
  } | null;
}

export const TEST_EVENT_TYPE = 'hookbox.ping';

// The event is born fanned out and gets exactly one delivery, so no other subscription of
// the tenant receives it. Nothing is written unless the subscription is the tenant's and
// active (the relay would only cancel a delivery to a disabled one).
const SEND_TEST = `WITH s AS (
  SELECT id, active FROM hookbox.subscriptions WHERE tenant_id = $1 AND id = $2
), ev AS (
  INSERT INTO hookbox.events (id, tenant_id, type, payload, fanned_out_at)
  SELECT $3, $1, $4, $5::jsonb, now() FROM s WHERE s.active
  RETURNING id
), ins AS (
  INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id)
  SELECT ev.id, $2, $1 FROM ev
  RETURNING id
)
SELECT (SELECT active FROM s) AS active, (SELECT id FROM ins)::text AS delivery_id`;

/**
 * Enqueues a test event (default type `hookbox.ping`) for exactly one endpoint: the event
 * and its single delivery are written directly, so no other subscription receives it. A
 * running relay sends it like any delivery (signed, retried); poll `deliveryOutcome` for the
 * result. Throws NotFoundError for another tenant's subscription and ValidationError when
 * it is disabled or the type or payload is invalid.
 */
export async function sendTest(executor: Executor, input: SendTestInput): Promise<SendTestResult> {
  checkInput(input, ['tenantId', 'subscriptionId', 'type', 'payload'], 'send-test options');
  const tenantId = validateTenantId(input.tenantId);
  const subscriptionId = uuid(input.subscriptionId, 'subscription');
  const event = validateEvent(
    {
      tenantId,
      type: input.type ?? TEST_EVENT_TYPE,
      payload: input.payload === undefined ? { test: true, message: 'hookbox test event' } : input.payload,
    },
    DEFAULT_MAX_PAYLOAD_BYTES,
  );
  const eventId = uuidv7();
  const row = (
    await runQuery(executor, SEND_TEST, [tenantId, subscriptionId, eventId, event.type, event.payloadJson])
  )[0];
  if (!row || row.active === null || row.active === undefined) throw new NotFoundError('subscription', subscriptionId);
  if (!row.active) {
    throw new ValidationError(
      'subscriptionId',
      'subscription_disabled',
      `subscription ${subscriptionId} is disabled; enable it first`,
    );
  }
  await notifyRelay(executor);
  return { eventId, deliveryId: Number(row.delivery_id) };
}

const OUTCOME = `SELECT d.id, d.status, d.attempts, coalesce(d.locked_until > now(), false) AS leased,
  d.last_status, d.last_error, ${ts('d.created_at', 'created_at')}, ${ts('d.completed_at', 'completed_at')},
  a.attempt, ${ts('a.started_at', 'started_at')}, a.duration_ms, a.status_code, a.error_class
FROM hookbox.deliveries d
LEFT JOIN LATERAL (
  SELECT * FROM hookbox.delivery_attempts x WHERE x.delivery_id = d.id ORDER BY x.attempt DESC, x.id DESC LIMIT 1
) a ON true
WHERE d.tenant_id = $1 AND d.id = $2`;

/** Where one delivery stands, with its latest logged attempt. NotFoundError for another tenant's. */
export async function deliveryOutcome(executor: Executor, input: DeliveryOutcomeInput): Promise<DeliveryOutcome> {
  checkInput(input, ['tenantId', 'id'], 'delivery options');
  const tenantId = validateTenantId(input.tenantId);
  const id = deliveryId(input.id);
  const r = (await runQuery(executor, OUTCOME, [tenantId, id]))[0];
  if (!r) throw new NotFoundError('delivery', String(id));
  return {
    id,
    status: r.status as DeliveryStatus,
    attempts: Number(r.attempts),
    leased: r.leased === true,
    lastStatus: r.last_status === null ? null : Number(r.last_status),
    lastError: (r.last_error as string | null) ?? null,
    createdAt: toDate(r.created_at) as Date,
    completedAt: toDate(r.completed_at),
    lastAttempt:
      r.attempt === null || r.attempt === undefined
        ? null
        : {
            attempt: Number(r.attempt),
            startedAt: toDate(r.started_at) as Date,
            durationMs: Number(r.duration_ms),
            statusCode: r.status_code === null ? null : Number(r.status_code),
            errorClass: (r.error_class as string | null) ?? null,
          },
  };
}
