/**
 * One delivery as typed phases (Svix's worker is the model): `prepareDispatch` decides
 * whether a request is made at all and builds it; the relay sends it (delivery/http.ts);
 * `completeDispatch` maps what came back to the outcome to record — a pure function of the
 * claim, the HTTP attempt and the retry policy, tested exhaustively in dispatch.test.ts.
 */
import type { HttpAttempt } from '../delivery/http.js';
import { type AttemptResult, type Decision, decide, type RetryPolicy } from '../policy/retry.js';
import type { Feedback } from './dispatch-queue.js';
import { buildBody, buildHeaders, type SignerCache } from './envelope.js';
import type { ClaimedDelivery, Outcome } from './sql.js';
import { parseTarget } from './urls.js';

/** NUL cannot be stored in Postgres text; responses and error messages may contain it. */
export const clean = (text: string): string => (text.includes('\u0000') ? text.replaceAll('\u0000', '') : text);

/**
 * What became of one claimed delivery, as observers (RelayObserver.outcome) and the
 * `hookbox_deliveries_total{outcome}` counter name it. `retry`: the delivery stays pending;
 * `disabled`: this attempt's failure auto-disabled its subscription.
 */
export const DELIVERY_OUTCOMES = ['succeeded', 'retry', 'dead', 'disabled', 'cancelled'] as const;
export type DeliveryOutcome = (typeof DELIVERY_OUTCOMES)[number];

export type Prepared =
  /** No request: record this outcome as it is. `level` is how loudly to log it. */
  | { kind: 'final'; outcome: Outcome; observed: Extract<DeliveryOutcome, 'cancelled' | 'dead'>; reason: string }
  | { kind: 'send'; origin: string; path: string; headers: Record<string, string>; body: string; startedAt: Date };

export interface PrepareContext {
  signers: SignerCache;
  userAgent: string;
  requireHttps: boolean;
  /** The subscription was disabled by this relay after this claim was taken. */
  disabledSinceClaim: boolean;
  now?: Date;
}

/** An outcome for a delivery that made no HTTP request. */
export function finalOutcome(
  d: ClaimedDelivery,
  status: Outcome['status'],
  errorClass: string,
  message: string,
  startedAt = new Date(),
): Outcome {
  return {
    deliveryId: d.deliveryId,
    attempt: d.attempt,
    subscriptionId: d.subscriptionId,
    status,
    delayMs: 0,
    statusCode: null,
    errorClass,
    errorMessage: message,
    startedAt,
    durationMs: 0,
    excerpt: null,
    attempted: false,
  };
}

/** Phase 1: cancel, refuse, or build the signed request. */
export function prepareDispatch(d: ClaimedDelivery, ctx: PrepareContext): Prepared {
  const now = ctx.now ?? new Date();
  if (!d.active || ctx.disabledSinceClaim) {
    const reason = 'subscription is disabled';
    return {
      kind: 'final',
      outcome: finalOutcome(d, 'cancelled', 'cancelled', reason, now),
      observed: 'cancelled',
      reason,
    };
  }
  const target = parseTarget(d.url);
  if (!target || (ctx.requireHttps && target.protocol !== 'https:')) {
    const reason = target ? 'https is required (--require-https)' : 'the URL is not a valid http(s) URL';
    return { kind: 'final', outcome: finalOutcome(d, 'dead', 'blocked', reason, now), observed: 'dead', reason };
  }
  const body = buildBody(d);
  const headers = buildHeaders(d, body, ctx.signers.get(d.secrets), ctx.userAgent, Math.floor(now.getTime() / 1000));
  return { kind: 'send', origin: target.origin, path: target.path, headers, body, startedAt: now };
}

export interface CompletedDispatch {
  decision: Decision;
  outcome: Outcome;
  /** How the endpoint's adaptive concurrency moves (dispatch-queue.ts). */
  feedback: Feedback;
}

/**
 * Phase 3, pure: what one HTTP attempt means. `cut`: the relay's own shutdown aborted it,
 * so an error is not the endpoint's fault and the delivery is due again at once.
 */
export function completeDispatch(
  d: ClaimedDelivery,
  attempt: HttpAttempt,
  startedAt: Date,
  retry: RetryPolicy,
  { cut = false, now = Date.now(), random = Math.random }: { cut?: boolean; now?: number; random?: () => number } = {},
): CompletedDispatch {
  const { result } = attempt;
  const decision: Decision =
    cut && result.kind === 'error'
      ? { action: 'retry', delayMs: 0, reason: 'cut off by relay shutdown' }
      : decide(result, d.attempt, retry, now, random);
  const succeeded = decision.action === 'succeeded';
  const outcome: Outcome = {
    deliveryId: d.deliveryId,
    attempt: d.attempt,
    subscriptionId: d.subscriptionId,
    status: succeeded ? 'succeeded' : decision.action === 'retry' ? 'pending' : 'dead',
    delayMs: decision.action === 'retry' ? Math.round(decision.delayMs) : 0,
    statusCode: result.kind === 'response' ? result.status : null,
    errorClass: succeeded ? null : result.kind === 'response' ? 'http_status' : result.errorClass,
    errorMessage: succeeded
      ? null
      : result.kind === 'response'
        ? `HTTP ${result.status}`
        : clean(cut ? `cut off by relay shutdown (${result.message})` : result.message),
    startedAt,
    durationMs: attempt.durationMs,
    excerpt: attempt.excerpt === null ? null : clean(attempt.excerpt),
    attempted: true,
    countsForBreaker: !cut,
  };
  return { decision, outcome, feedback: cut ? 'none' : feedbackOf(result) };
}

/**
 * Overload signals shrink an endpoint's concurrency: timeouts, connection failures, 429 and
 * 5xx. Any other answer (2xx, 3xx, 4xx) shows the endpoint keeps up. `blocked` (our own SSRF
 * guard) says nothing about the endpoint.
 */
export function feedbackOf(result: AttemptResult): Feedback {
  if (result.kind === 'response') return result.status === 429 || result.status >= 500 ? 'overload' : 'ok';
  return result.errorClass === 'blocked' ? 'none' : 'overload';
}
