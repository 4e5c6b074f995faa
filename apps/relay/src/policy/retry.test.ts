import { ValidationError } from '@hookbox/outbox';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  type AttemptResult,
  classifyStatus,
  DEFAULT_RETRY_SCHEDULE_MS,
  decide,
  defaultRetryPolicy,
  parseRetryAfter,
} from './retry.js';

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const NOW = Date.UTC(2025, 5, 15, 12, 0, 0); // Sun, 15 Jun 2025 12:00:00 GMT
const noJitter = () => 0.5;

const status = (code: number, retryAfter?: string | null): AttemptResult => ({
  kind: 'response',
  status: code,
  retryAfter,
});
const http500 = status(500);

describe('DEFAULT_RETRY_SCHEDULE_MS', () => {
  it('is the Standard Webhooks schedule and cannot be mutated', () => {
    expect(DEFAULT_RETRY_SCHEDULE_MS).toEqual([5 * S, 5 * M, 30 * M, 2 * H, 5 * H, 10 * H, 10 * H]);
    expect(() => (DEFAULT_RETRY_SCHEDULE_MS as number[]).push(1)).toThrow(TypeError);
  });
});

describe('defaultRetryPolicy', () => {
  it('has the documented defaults', () => {
    expect(defaultRetryPolicy()).toEqual({
      scheduleMs: DEFAULT_RETRY_SCHEDULE_MS,
      maxAttempts: 8,
      jitter: 0.1,
      maxRetryAfterMs: 6 * H,
    });
  });

  it('derives maxAttempts from an overridden schedule', () => {
    expect(defaultRetryPolicy({ scheduleMs: [1 * S, 2 * S] }).maxAttempts).toBe(3);
    expect(defaultRetryPolicy({ scheduleMs: [] }).maxAttempts).toBe(1);
    expect(defaultRetryPolicy({ scheduleMs: [1 * S], maxAttempts: 5 }).maxAttempts).toBe(5);
  });

  it('treats undefined overrides as absent and copies the schedule', () => {
    const schedule = [1 * S, 2 * S];
    const policy = defaultRetryPolicy({ scheduleMs: schedule, jitter: undefined });
    expect(policy.jitter).toBe(0.1);
    schedule[0] = 99;
    expect(policy.scheduleMs).toEqual([1 * S, 2 * S]);
  });

  it('accepts the boundaries of each rule', () => {
    expect(() => defaultRetryPolicy({ scheduleMs: [0], maxAttempts: 1, jitter: 0, maxRetryAfterMs: 0 })).not.toThrow();
    expect(() => defaultRetryPolicy({ jitter: 0.999 })).not.toThrow();
  });

  it.each([
    [{ scheduleMs: [5 * S, -1] }, 'retry.scheduleMs[1]: must be a non-negative finite number of ms (got -1)'],
    [{ scheduleMs: [Number.NaN] }, 'retry.scheduleMs[0]: must be a non-negative finite number of ms'],
    [{ scheduleMs: [Number.POSITIVE_INFINITY] }, 'retry.scheduleMs[0]: must be a non-negative finite number'],
    [{ scheduleMs: ['5s'] as unknown as number[] }, 'retry.scheduleMs[0]: must be a non-negative finite'],
    [{ scheduleMs: [], maxAttempts: 2 }, 'retry.scheduleMs: must not be empty when maxAttempts > 1'],
    [{ maxAttempts: 0 }, 'retry.maxAttempts: must be an integer >= 1 (got 0)'],
    [{ maxAttempts: 2.5 }, 'retry.maxAttempts: must be an integer >= 1 (got 2.5)'],
    [{ jitter: -0.1 }, 'retry.jitter: must be >= 0 and < 1 (got -0.1)'],
    [{ jitter: 1 }, 'retry.jitter: must be >= 0 and < 1 (got 1)'],
    [{ jitter: Number.NaN }, 'retry.jitter: must be >= 0 and < 1'],
    [{ maxRetryAfterMs: -1 }, 'retry.maxRetryAfterMs: must be a non-negative finite number of ms (got -1)'],
    [
      { retries: 3 } as Partial<ReturnType<typeof defaultRetryPolicy>>,
      'retry.retries: is not a retry option (known: scheduleMs, maxAttempts, jitter, maxRetryAfterMs)',
    ],
  ])('rejects %j', (overrides, message) => {
    let caught: unknown;
    try {
      defaultRetryPolicy(overrides);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    expect((caught as ValidationError).field).toMatch(/^retry\./);
    expect((caught as Error).message).toContain(message);
  });
});

describe('decide: the schedule', () => {
  const policy = defaultRetryPolicy();

  it('walks the whole default schedule without jitter, then gives up', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7].map((attempt) => decide(http500, attempt, policy, NOW, noJitter));
    expect(delays).toEqual(
      DEFAULT_RETRY_SCHEDULE_MS.map((delayMs) => ({ action: 'retry', delayMs, reason: 'HTTP 500' })),
    );
    expect(decide(http500, 8, policy, NOW, noJitter)).toEqual({
      action: 'dead',
      reason: 'attempts exhausted after HTTP 500',
    });
  });

  it('keeps jitter within ±10% at the extremes of the random source', () => {
    for (const [i, base] of DEFAULT_RETRY_SCHEDULE_MS.entries()) {
      const low = decide(http500, i + 1, policy, NOW, () => 0);
      const high = decide(http500, i + 1, policy, NOW, () => 0.999_999_999);
      expect(low).toMatchObject({ action: 'retry', delayMs: Math.round(base * 0.9) });
      expect(high.action).toBe('retry');
      const highMs = (high as { delayMs: number }).delayMs;
      expect(highMs).toBeGreaterThan(base * 1.099);
      expect(highMs).toBeLessThanOrEqual(base * 1.1);
    }
  });

  it('uses the configured jitter and none when jitter is 0', () => {
    const wide = defaultRetryPolicy({ jitter: 0.5 });
    expect(decide(http500, 1, wide, NOW, () => 0)).toMatchObject({ delayMs: 2_500 });
    const none = defaultRetryPolicy({ jitter: 0 });
    expect(decide(http500, 1, none, NOW, () => 0)).toMatchObject({ delayMs: 5_000 });
    expect(decide(http500, 1, none, NOW, () => 0.999)).toMatchObject({ delayMs: 5_000 });
  });

  it('is dead once attempt reaches a smaller maxAttempts', () => {
    const short = defaultRetryPolicy({ maxAttempts: 3 });
    expect(decide(http500, 2, short, NOW, noJitter)).toMatchObject({ action: 'retry', delayMs: 5 * M });
    expect(decide(http500, 3, short, NOW, noJitter)).toEqual({
      action: 'dead',
      reason: 'attempts exhausted after HTTP 500',
    });
    expect(decide(http500, 4, short, NOW, noJitter).action).toBe('dead');
  });

  it('gives up after the first attempt when maxAttempts is 1', () => {
    const once = defaultRetryPolicy({ maxAttempts: 1 });
    expect(decide({ kind: 'error', errorClass: 'timeout', message: 'x' }, 1, once, NOW, noJitter)).toEqual({
      action: 'dead',
      reason: 'attempts exhausted after timeout',
    });
  });

  it('repeats the last delay when maxAttempts outlasts the schedule', () => {
    const long = defaultRetryPolicy({ scheduleMs: [1 * S, 1 * M], maxAttempts: 6 });
    const delays = [1, 2, 3, 4, 5].map((attempt) => decide(http500, attempt, long, NOW, noJitter));
    expect(delays.map((d) => (d as { delayMs: number }).delayMs)).toEqual([1 * S, 1 * M, 1 * M, 1 * M, 1 * M]);
    expect(decide(http500, 6, long, NOW, noJitter).action).toBe('dead');
  });

  it.each([301, 302, 304, 400, 401, 404, 409, 413, 422, 500, 502, 504, 199, 600])(
    'retries HTTP %d on the schedule',
    (code) => {
      expect(decide(status(code), 1, policy, NOW, noJitter)).toEqual({
        action: 'retry',
        delayMs: 5 * S,
        reason: `HTTP ${code}`,
      });
    },
  );

  it.each([
    ['timeout', 'timeout'],
    ['connection_refused', 'connection refused'],
    ['connection_reset', 'connection reset'],
    ['dns', 'DNS lookup failed'],
    ['tls', 'TLS handshake failed'],
    ['network', 'network error'],
  ] as const)('retries the %s error on the schedule', (errorClass, reason) => {
    const result: AttemptResult = { kind: 'error', errorClass, message: 'boom' };
    expect(decide(result, 2, policy, NOW, noJitter)).toEqual({ action: 'retry', delayMs: 5 * M, reason });
    expect(decide(result, 8, policy, NOW, noJitter)).toEqual({
      action: 'dead',
      reason: `attempts exhausted after ${reason}`,
    });
  });

  it('refuses an attempt number that is not a positive integer', () => {
    for (const attempt of [0, -1, 1.5, Number.NaN]) {
      expect(() => decide(http500, attempt, policy, NOW, noJitter)).toThrow(RangeError);
    }
  });
});

describe('decide: terminal answers', () => {
  const policy = defaultRetryPolicy();

  it.each([
    [199, 'retry'],
    [200, 'succeeded'],
    [201, 'succeeded'],
    [204, 'succeeded'],
    [299, 'succeeded'],
    [300, 'retry'],
  ])('HTTP %d → %s', (code, action) => {
    expect(decide(status(code), 1, policy, NOW, noJitter).action).toBe(action);
  });

  it('succeeds on the last attempt too', () => {
    expect(decide(status(200), 8, policy, NOW, noJitter)).toEqual({ action: 'succeeded' });
  });

  it('disables the endpoint on 410 Gone, whatever the attempt', () => {
    for (const attempt of [1, 8, 20]) {
      expect(decide(status(410), attempt, policy, NOW, noJitter)).toEqual({
        action: 'disable',
        reason: 'HTTP 410 Gone',
      });
    }
  });

  it('is dead at once when the SSRF guard blocked the destination', () => {
    const blocked: AttemptResult = { kind: 'error', errorClass: 'blocked', message: '10.0.0.1 is a private address' };
    const decision = decide(blocked, 1, policy, NOW, noJitter);
    expect(decision.action).toBe('dead');
    expect((decision as { reason: string }).reason).toBe(
      'destination blocked by the SSRF guard, not retried: 10.0.0.1 is a private address',
    );
  });
});

describe('decide: Retry-After', () => {
  const policy = defaultRetryPolicy();

  it.each([429, 503])('honours delta-seconds on %d exactly, without jitter', (code) => {
    expect(decide(status(code, '120'), 1, policy, NOW, () => 0)).toEqual({
      action: 'retry',
      delayMs: 120 * S,
      reason: `HTTP ${code}, Retry-After 2m`,
    });
  });

  it('honours an HTTP-date', () => {
    const decision = decide(status(429, 'Sun, 15 Jun 2025 12:01:30 GMT'), 3, policy, NOW, () => 0);
    expect(decision).toEqual({ action: 'retry', delayMs: 90 * S, reason: 'HTTP 429, Retry-After 1m30s' });
  });

  it('retries at once for Retry-After 0 or a date in the past', () => {
    expect(decide(status(503, '0'), 1, policy, NOW, () => 0)).toMatchObject({ action: 'retry', delayMs: 0 });
    expect(decide(status(503, 'Sun, 15 Jun 2025 11:00:00 GMT'), 1, policy, NOW, () => 0)).toMatchObject({
      action: 'retry',
      delayMs: 0,
    });
  });

  it('caps a huge Retry-After at maxRetryAfterMs', () => {
    expect(decide(status(429, '86400'), 1, policy, NOW, noJitter)).toMatchObject({ delayMs: 6 * H });
    expect(decide(status(429, '9'.repeat(400)), 1, policy, NOW, noJitter)).toMatchObject({ delayMs: 6 * H });
    const tight = defaultRetryPolicy({ maxRetryAfterMs: 10 * S });
    expect(decide(status(503, '60'), 1, tight, NOW, noJitter)).toMatchObject({ delayMs: 10 * S });
  });

  it.each(['soon', '-5', '1.5', '', '12abc', 'Sun, 31 Feb 2025 12:00:00 GMT'])(
    'falls back to the jittered schedule for the unusable header %j',
    (header) => {
      expect(decide(status(429, header), 1, policy, NOW, () => 0)).toEqual({
        action: 'retry',
        delayMs: 4_500,
        reason: 'HTTP 429',
      });
    },
  );

  it('falls back to the schedule when the header is absent', () => {
    expect(decide(status(503), 2, policy, NOW, noJitter)).toEqual({
      action: 'retry',
      delayMs: 5 * M,
      reason: 'HTTP 503',
    });
    expect(decide(status(503, null), 2, policy, NOW, noJitter)).toMatchObject({ delayMs: 5 * M });
  });

  it('ignores Retry-After on other statuses', () => {
    expect(decide(status(500, '120'), 1, policy, NOW, noJitter)).toEqual({
      action: 'retry',
      delayMs: 5 * S,
      reason: 'HTTP 500',
    });
  });

  it('is dead when the attempt budget is spent, Retry-After or not', () => {
    expect(decide(status(429, '1'), 8, policy, NOW, noJitter)).toEqual({
      action: 'dead',
      reason: 'attempts exhausted after HTTP 429',
    });
  });

  describe('with the real clock', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('measures an HTTP-date from Date.now() by default', () => {
      vi.useFakeTimers({ now: NOW });
      expect(decide(status(503, 'Sun, 15 Jun 2025 12:00:10 GMT'), 1, policy)).toMatchObject({ delayMs: 10 * S });
    });
  });
});

describe('parseRetryAfter', () => {
  it('returns null when absent', () => {
    expect(parseRetryAfter(undefined, NOW)).toBeNull();
    expect(parseRetryAfter(null, NOW)).toBeNull();
    expect(parseRetryAfter('', NOW)).toBeNull();
  });

  it('reads delta-seconds', () => {
    expect(parseRetryAfter('0', NOW)).toBe(0);
    expect(parseRetryAfter('30', NOW)).toBe(30 * S);
    expect(parseRetryAfter(' 30 ', NOW)).toBe(30 * S);
  });

  it('keeps huge delta-seconds finite', () => {
    expect(parseRetryAfter('9'.repeat(400), NOW)).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('reads all three HTTP-date forms as GMT', () => {
    expect(parseRetryAfter('Sun, 15 Jun 2025 12:00:30 GMT', NOW)).toBe(30 * S);
    expect(parseRetryAfter('Sunday, 15-Jun-25 12:00:30 GMT', NOW)).toBe(30 * S);
    expect(parseRetryAfter('Sun Jun 15 12:00:30 2025', NOW)).toBe(30 * S);
    expect(parseRetryAfter('Tue Jul  1 12:00:00 2025', NOW)).toBe(16 * 24 * H);
  });

  it('clamps a date in the past to 0', () => {
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT', NOW)).toBe(0);
  });

  it.each([
    '-5',
    '+5',
    '1.5',
    '5s',
    'soon',
    '2025-06-15T12:00:30Z',
    'Sun, 15 Jun 2025 12:00:30',
    'Sun, 15 Jun 2025 12:00:30 PST',
    'Sun, 15 Foo 2025 12:00:30 GMT',
    'Sun, 31 Feb 2025 12:00:30 GMT',
    'Sun, 15 Jun 2025 25:00:30 GMT',
  ])('rejects %j', (value) => {
    expect(parseRetryAfter(value, NOW)).toBeNull();
  });
});

describe('classifyStatus', () => {
  it.each([
    [200, '2xx'],
    [299, '2xx'],
    [300, '3xx'],
    [399, '3xx'],
    [400, '4xx'],
    [499, '4xx'],
    [500, '5xx'],
    [599, '5xx'],
    [199, '5xx'],
    [600, '5xx'],
  ])('%d is %s', (code, cls) => {
    expect(classifyStatus(code)).toBe(cls);
  });
});
