/**
 * @hookbox/outbox/admin — the operator code: delivery log, replay and retry, retention
 * (cleanup), stats and send-test. Tools and consoles import it; a service that only
 * enqueues does not need it.
 */
export type {
  AttemptRecord,
  DeliveryDetail,
  DeliveryRecord,
  DeliveryRef,
  EventDetail,
  EventRecord,
  EventRef,
  FanoutSummary,
  ListDeliveriesInput,
  ListEventsInput,
  Page,
  TenantScope,
  TimeInput,
} from './delivery-log.js';
export { DELIVERY_LOG_LIMITS, deliveryLog } from './delivery-log.js';
export type {
  RecoverDeadInput,
  RecoverDeadResult,
  ReplayEventInput,
  ReplayEventResult,
  ReplayedDelivery,
  RetryDeliveryInput,
  RetryDeliveryResult,
} from './replay.js';
export { recoverDead, replayEvent, retryDelivery } from './replay.js';
export type { CleanupInput, CleanupProgress, CleanupResult } from './retention.js';
export { CLEANUP_DEFAULTS, cleanup, FRONTIER_MARGIN_MS } from './retention.js';
export type { DeliveryOutcome, DeliveryOutcomeInput, SendTestInput, SendTestResult } from './send-test.js';
export { deliveryOutcome, sendTest, TEST_EVENT_TYPE } from './send-test.js';
export type { Stats, StatsInput, SubscriptionStats, TenantUsage } from './stats.js';
export { stats } from './stats.js';
