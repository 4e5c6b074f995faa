/**
 * The delivery phases without a database or a network: prepareDispatch (cancel, refuse,
 * build) and the pure mapping from an HTTP attempt to the outcome to record and the
 * feedback for the endpoint's adaptive concurrency.
 */
import { generateSecret } from '@hookbox/outbox';
import { describe, expect, it } from 'vitest';
import type { HttpAttempt } from '../delivery/http.js';
import { type AttemptResult, defaultRetryPolicy, type ErrorClass } from '../policy/retry.js';
import { completeDispatch, feedbackOf, prepareDispatch } from './dispatch.js';
import { SignerCache } from './envelope.js';
import type { ClaimedDelivery } from './sql.js';

const claim = (over: Partial<ClaimedDelivery> = {}): ClaimedDelivery => ({
  deliveryId: 7,
  attempt: 1,
  eventId: '01890a5d-ac96-774b-bcce-b302099a8057',
  eventType: 'order.paid',
  tenantId: 't',
  eventCreatedAt: '2026-01-01T00:00:00.000000Z',
  eventCreatedMs: 0,
  payload: '{"n":1}',
  subscriptionId: '01890a5d-ac96-774b-bcce-b302099a8058',
  url: 'http://127.0.0.1:9/hook?x=1',
  secrets: [generateSecret()],
  headers: null,
  active: true,
  claimedAt: 0,
  origin: 'http://127.0.0.1:9',
  maxInFlight: null,
  orderingKey: null,
  orderingSeq: null,
  probe: false,
  rateLimit: null,
  requestTimeoutMs: null,
  retryScheduleMs: null,
  ...over,
});
const ctx = { signers: new SignerCache(), userAgent: 'hookbox-test', requireHttps: false, disabledSinceClaim: false };
const policy = defaultRetryPolicy({ scheduleMs: [1_000, 2_000], jitter: 0 });
const at = new Date('2026-01-01T00:00:01Z');
const attempt = (result: AttemptResult, excerpt: string | null = null): HttpAttempt => ({
  result,
  durationMs: 12,
  excerpt,
});

describe('prepareDispatch', () => {
  it('builds the signed request for an active subscription', () => {
    const p = prepareDispatch(claim(), { ...ctx, now: at });
    expect(p.kind).toBe('send');
    if (p.kind !== 'send') return;
    expect([p.origin, p.path]).toEqual(['http://127.0.0.1:9', '/hook?x=1']);
    expect(JSON.parse(p.body)).toMatchObject({ type: 'order.paid', data: { n: 1 } });
    expect(p.headers['webhook-timestamp']).toBe(String(at.getTime() / 1000));
    expect(p.headers['webhook-signature']).toMatch(/^v1,/);
  });

  it('cancels without a request when the subscription is inactive or was disabled since the claim', () => {
    for (const p of [
      prepareDispatch(claim({ active: false }), ctx),
      prepareDispatch(claim(), { ...ctx, disabledSinceClaim: true }),
    ]) {
      expect(p).toMatchObject({ kind: 'final', observed: 'cancelled' });
      if (p.kind === 'final') expect(p.outcome).toMatchObject({ status: 'cancelled', attempted: false });
    }
  });

  it('refuses an unusable URL, and http:// when https is required, as dead without a request', () => {
    const bad = prepareDispatch(claim({ url: 'ftp://x/' }), ctx);
    expect(bad).toMatchObject({ kind: 'final', observed: 'dead', reason: 'the URL is not a valid http(s) URL' });
    const plain = prepareDispatch(claim(), { ...ctx, requireHttps: true });
    expect(plain).toMatchObject({ kind: 'final', observed: 'dead' });
    if (plain.kind === 'final') expect(plain.outcome).toMatchObject({ status: 'dead', errorClass: 'blocked' });
  });
});

describe('completeDispatch', () => {
  it('2xx: succeeded, no error, excerpt kept (NUL stripped), endpoint grows', () => {
    const c = completeDispatch(claim(), attempt({ kind: 'response', status: 204 }, 'ok\u0000done'), at, policy);
    expect(c.outcome).toMatchObject({
      status: 'succeeded',
      statusCode: 204,
      errorClass: null,
      errorMessage: null,
      excerpt: 'okdone',
      durationMs: 12,
      startedAt: at,
      attempted: true,
      delayMs: 0,
    });
    expect(c.feedback).toBe('ok');
  });

  it('5xx: retry after the schedule, http_status, endpoint shrinks; dead once attempts are used up', () => {
    const r = completeDispatch(claim(), attempt({ kind: 'response', status: 503 }), at, policy);
    expect(r.outcome).toMatchObject({ status: 'pending', delayMs: 1_000, errorClass: 'http_status' });
    expect(r.outcome.errorMessage).toBe('HTTP 503');
    expect(r.feedback).toBe('overload');
    const d = completeDispatch(claim({ attempt: 3 }), attempt({ kind: 'response', status: 500 }), at, policy);
    expect(d.outcome).toMatchObject({ status: 'dead', delayMs: 0 });
    expect(d.decision.action).toBe('dead');
  });

  it('410: the decision disables the subscription; the delivery itself is dead', () => {
    const c = completeDispatch(claim(), attempt({ kind: 'response', status: 410 }), at, policy);
    expect(c.decision.action).toBe('disable');
    expect(c.outcome.status).toBe('dead');
    expect(c.feedback).toBe('ok');
  });

  it('a network error keeps its class and message; cut off by our shutdown it is due again at once and says nothing about the endpoint', () => {
    const result: AttemptResult = { kind: 'error', errorClass: 'timeout', message: 'no complete response' };
    const plain = completeDispatch(claim(), attempt(result), at, policy);
    expect(plain.outcome).toMatchObject({
      status: 'pending',
      delayMs: 1_000,
      errorClass: 'timeout',
      errorMessage: 'no complete response',
      statusCode: null,
    });
    expect(plain.feedback).toBe('overload');
    const cut = completeDispatch(claim({ attempt: 3 }), attempt(result), at, policy, { cut: true });
    expect(cut.outcome).toMatchObject({ status: 'pending', delayMs: 0, countsForBreaker: false });
    expect(cut.outcome.errorMessage).toBe('cut off by relay shutdown (no complete response)');
    expect(cut.feedback).toBe('none');
  });
});

describe('feedbackOf', () => {
  it('overload on 429, 5xx and every network error except our own SSRF refusal; ok on any other answer', () => {
    const statuses: [number, string][] = [
      [200, 'ok'],
      [301, 'ok'],
      [400, 'ok'],
      [404, 'ok'],
      [429, 'overload'],
      [500, 'overload'],
      [503, 'overload'],
    ];
    for (const [status, want] of statuses)
      expect([status, feedbackOf({ kind: 'response', status })]).toEqual([status, want]);
    const classes: ErrorClass[] = ['timeout', 'connection_refused', 'connection_reset', 'dns', 'tls', 'network'];
    for (const errorClass of classes) expect(feedbackOf({ kind: 'error', errorClass, message: '' })).toBe('overload');
    expect(feedbackOf({ kind: 'error', errorClass: 'blocked', message: '' })).toBe('none');
  });
});
