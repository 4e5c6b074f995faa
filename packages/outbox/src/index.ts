/**
 * @hookbox/outbox — the library services import. Enqueue webhook events in your own
 * transaction; manage subscriptions; sign and verify Standard Webhooks.
 *
 * The operator code (delivery log, replay, retention, stats, send-test) lives in
 * `@hookbox/outbox/admin`, not here: a service that only enqueues does not load it.
 */

export type { HookboxErrorCode, WebhookVerificationReason } from './errors.js';
export { HookboxError, NotFoundError, ValidationError, WebhookVerificationError } from './errors.js';
export {
  isValidEventPattern,
  isValidEventType,
  MAX_EVENT_TYPE_LENGTH,
  matchesAny,
  matchesEventType,
} from './event-types.js';
export type { DrizzleExecutor, Executor, QueryExecutor } from './executor.js';
export { assertInTransaction, runQuery } from './executor.js';
export { uuidv7 } from './id.js';
export type { Notifier, NotifierOptions, NotifierSource, NotifyPool } from './notify.js';
export { NOTIFY_CHANNEL, notifyRelay } from './notify.js';
export type {
  EnqueueResult,
  EventMap,
  EventTypeOf,
  Outbox,
  OutboxOptions,
  PayloadOf,
  TypedEvent,
} from './outbox.js';
export { createOutbox } from './outbox.js';
export type { Delivery, DeliveryAttempt, DeliveryStatus, EventRow, OrderingOnDead, Subscription } from './schema.js';
export * as schema from './schema.js';
export { GENERATED_SECRET_BYTES, generateSecret, MAX_SECRET_BYTES, MIN_SECRET_BYTES, parseSecret } from './secret.js';
export type { OrderingReport, OrderingState, Signer, VerifyOptions, WebhookHeaders } from './signing.js';
export {
  checkOrdering,
  createSigner,
  DEFAULT_TOLERANCE_SECONDS,
  sign,
  verify,
  WEBHOOK_HEADERS,
} from './signing.js';
export { RESERVED_HEADER_NAMES, SUBSCRIPTION_LIMITS } from './subscription-validate.js';
export type {
  CreateSubscriptionInput,
  DisableSubscriptionInput,
  EnabledSubscription,
  ListSubscriptionsInput,
  RotateSecretInput,
  SubscriptionPage,
  SubscriptionRecord,
  SubscriptionRef,
  UpdateSubscriptionInput,
} from './subscriptions.js';
export { activeSecrets, circuitState, subscriptions } from './subscriptions.js';
export { parseIsoTime } from './time.js';
export type { EventInput, ValidEvent } from './validate.js';
export {
  DEFAULT_MAX_PAYLOAD_BYTES,
  MAX_IDEMPOTENCY_KEY_LENGTH,
  MAX_ORDERING_KEY_LENGTH,
  MAX_PAYLOAD_DEPTH,
  MAX_TENANT_ID_LENGTH,
  validateEvent,
} from './validate.js';
