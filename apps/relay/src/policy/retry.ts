/**
 * The retry decision for one finished HTTP attempt: a pure function of the attempt's result,
 * its number and the policy (plus the clock and a random source, both injectable for tests).
 * Persistent retries live in the database; this only says what to record next.
 */

import { ValidationError } from '@hookbox/outbox';
import { formatDuration } from '../duration.js';

/** Why an attempt produced no HTTP response. `blocked`: the SSRF guard refused the destination. */
export type ErrorClass = 'timeout' | 'connection_refused' | 'connection_reset' | 'dns' | 'tls' | 'network' | 'blocked';

export type AttemptResult =
  /** `retryAfter` is the raw Retry-After header, if any. */
  | { kind: 'response'; status: number; retryAfter?: string | null }
  /** `address`: for a refused (SSRF) hostname, the address it resolved to — for the relay's log only, never recorded. */
  | { kind: 'error'; errorClass: ErrorClass; message: string; address?: string };

export type Decision =
  | { action: 'succeeded' }
  | { action: 'retry'; delayMs: number; reason: string }
  | { action: 'dead'; reason: string }
  | { action: 'disable'; reason: string };

export interface RetryPolicy {
  /** Delays after the 1st, 2nd, … failed attempt. Default DEFAULT_RETRY_SCHEDULE_MS. */
  scheduleMs: readonly number[];
  /** Total attempts allowed including the first. Default scheduleMs.length + 1; if larger, the last delay repeats. */
  maxAttempts: number;
  /** Jitter as a fraction: each delay is multiplied by a uniform factor in [1 - jitter, 1 + jitter]. Default 0.1. */
  jitter: number;
  /** Cap on a honoured Retry-After. Default 6 h. */
  maxRetryAfterMs: number;
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/**
 * 5s, 5m, 30m, 2h, 5h, 10h, 10h: the Standard Webhooks / Svix schedule. The first attempt is
 * immediate, so with the default budget of 8 attempts the last one comes about 27.5 h after it.
 */
export const DEFAULT_RETRY_SCHEDULE_MS: readonly number[] = Object.freeze([
  5 * SECOND,
  5 * MINUTE,
  30 * MINUTE,
  2 * HOUR,
  5 * HOUR,
  10 * HOUR,
  10 * HOUR,
]);

const POLICY_KEYS: ReadonlySet<string> = new Set(['scheduleMs', 'maxAttempts', 'jitter', 'maxRetryAfterMs']);

/** A bad `retry.<key>` option (RelayOptions.retry), naming the key, the rule and the value. */
function invalid(key: string, rule: string, must: string, got: unknown): ValidationError {
  return new ValidationError(`retry.${key}`, rule, `${must} (got ${JSON.stringify(got) ?? String(got)})`);
}

/**
 * The default policy with `overrides` applied, validated: unknown keys are refused, delays must
 * be non-negative finite numbers, maxAttempts an integer >= 1, 0 <= jitter < 1. Keys whose value
 * is `undefined` keep their default. Throws a ValidationError naming the field (`retry.maxAttempts`).
 */
export function defaultRetryPolicy(overrides: Partial<RetryPolicy> = {}): RetryPolicy {
  for (const key of Object.keys(overrides)) {
    if (!POLICY_KEYS.has(key)) {
      throw new ValidationError(
        `retry.${key}`,
        'unknown',
        `is not a retry option (known: ${[...POLICY_KEYS].join(', ')})`,
      );
    }
  }
  const scheduleMs = overrides.scheduleMs ?? DEFAULT_RETRY_SCHEDULE_MS;
  if (!Array.isArray(scheduleMs)) throw invalid('scheduleMs', 'type', 'must be an array of delays in ms', scheduleMs);
  scheduleMs.forEach((delay, i) => {
    if (typeof delay !== 'number' || !Number.isFinite(delay) || delay < 0) {
      throw invalid(`scheduleMs[${i}]`, 'range', 'must be a non-negative finite number of ms', delay);
    }
  });
  const maxAttempts = overrides.maxAttempts ?? scheduleMs.length + 1;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1)
    throw invalid('maxAttempts', 'range', 'must be an integer >= 1', maxAttempts);
  if (maxAttempts > 1 && scheduleMs.length === 0) {
    throw invalid('scheduleMs', 'required', 'must not be empty when maxAttempts > 1', scheduleMs);
  }
  const jitter = overrides.jitter ?? 0.1;
  if (typeof jitter !== 'number' || !(jitter >= 0 && jitter < 1))
    throw invalid('jitter', 'range', 'must be >= 0 and < 1', jitter);
  const maxRetryAfterMs = overrides.maxRetryAfterMs ?? 6 * HOUR;
  if (typeof maxRetryAfterMs !== 'number' || !Number.isFinite(maxRetryAfterMs) || maxRetryAfterMs < 0) {
    throw invalid('maxRetryAfterMs', 'range', 'must be a non-negative finite number of ms', maxRetryAfterMs);
  }
  return { scheduleMs: Object.freeze([...scheduleMs]), maxAttempts, jitter, maxRetryAfterMs };
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
/** IMF-fixdate, the preferred form: `Sun, 06 Nov 1994 08:49:37 GMT`. */
const IMF_FIXDATE = /^[a-z]{3}, (\d{2}) ([a-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/i;
/** Obsolete RFC 850 form: `Sunday, 06-Nov-94 08:49:37 GMT`. */
const RFC850_DATE = /^[a-z]{6,9}, (\d{2})-([a-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/i;
/** Obsolete asctime form: `Sun Nov  6 08:49:37 1994` (always GMT). */
const ASCTIME_DATE = /^[a-z]{3} ([a-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/i;

/**
 * Parses the three HTTP-date forms of RFC 9110 §5.6.7 into epoch ms. Date.parse alone is too
 * lenient: it accepts `-5` as the year -5, which would turn a bad header into a date.
 */
function parseHttpDate(text: string, now: number): number | null {
  let parts: [day: string, month: string, year: number, h: string, m: string, s: string];
  const imf = IMF_FIXDATE.exec(text);
  const rfc850 = imf ? null : RFC850_DATE.exec(text);
  const asctime = imf || rfc850 ? null : ASCTIME_DATE.exec(text);
  if (imf) {
    parts = [imf[1]!, imf[2]!, Number(imf[3]), imf[4]!, imf[5]!, imf[6]!];
  } else if (rfc850) {
    // Two-digit year: RFC 9110 puts one more than 50 years ahead in the past century.
    const nowYear = new Date(now).getUTCFullYear();
    let year = Math.floor(nowYear / 100) * 100 + Number(rfc850[3]);
    if (year > nowYear + 50) year -= 100;
    parts = [rfc850[1]!, rfc850[2]!, year, rfc850[4]!, rfc850[5]!, rfc850[6]!];
  } else if (asctime) {
    parts = [asctime[2]!.trim(), asctime[1]!, Number(asctime[6]), asctime[3]!, asctime[4]!, asctime[5]!];
  } else {
    return null;
  }

  const [day, monthName, year, h, m, s] = parts;
  const month = MONTHS.indexOf(monthName.toLowerCase());
  const [d, hh, mm, ss] = [Number(day), Number(h), Number(m), Number(s)];
  if (month < 0 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60) return null;
  const ms = Date.UTC(year, month, d, hh, mm, ss);
  // Date.UTC rolls 31 Feb over into March; such a date is malformed, not a date in March.
  if (new Date(ms).getUTCDate() !== d) return null;
  return ms;
}

/**
 * A Retry-After header (delta-seconds or HTTP-date) as milliseconds from `now`, never below 0
 * (a date in the past means "now"). Null when the header is absent or not valid per RFC 9110.
 */
export function parseRetryAfter(value: string | null | undefined, now: number): number | null {
  if (value == null) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Math.min(Number(text) * SECOND, Number.MAX_SAFE_INTEGER);
  const at = parseHttpDate(text, now);
  return at === null ? null : Math.max(0, at - now);
}

/**
 * The class of a status code for logs and metrics. Codes outside 200–499 that are not 3xx
 * (1xx as a final answer, 600+) are the server's misbehaviour and count as `5xx`.
 */
export function classifyStatus(status: number): '2xx' | '3xx' | '4xx' | '5xx' {
  if (status >= 200 && status < 300) return '2xx';
  if (status >= 300 && status < 400) return '3xx';
  if (status >= 400 && status < 500) return '4xx';
  return '5xx';
}

const ERROR_REASONS: Record<ErrorClass, string> = {
  timeout: 'timeout',
  connection_refused: 'connection refused',
  connection_reset: 'connection reset',
  dns: 'DNS lookup failed',
  tls: 'TLS handshake failed',
  network: 'network error',
  blocked: 'destination blocked',
};

/**
 * What to do after attempt number `attempt` (1-based) finished with `result`:
 * - any 2xx: succeeded;
 * - 410 Gone: disable the endpoint (the receiver says it is gone for good);
 * - `blocked` by the SSRF guard: dead at once, since retrying cannot change the address;
 * - 429 / 503 with a valid Retry-After: retry after exactly min(Retry-After, maxRetryAfterMs);
 * - anything else (3xx as redirects are not followed, 4xx, 5xx, network errors): retry after
 *   the schedule's delay for this attempt, jittered;
 * - and dead instead of any retry once `attempt >= maxAttempts`.
 */
export function decide(
  result: AttemptResult,
  attempt: number,
  policy: RetryPolicy,
  now: number = Date.now(),
  random: () => number = Math.random,
): Decision {
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new RangeError(`decide: attempt must be an integer >= 1 (got ${attempt})`);
  }
  let reason: string;
  if (result.kind === 'response') {
    const { status } = result;
    if (status >= 200 && status < 300) return { action: 'succeeded' };
    if (status === 410) return { action: 'disable', reason: 'HTTP 410 Gone' };
    reason = `HTTP ${status}`;
    if (status === 429 || status === 503) {
      const retryAfterMs = parseRetryAfter(result.retryAfter, now);
      if (retryAfterMs !== null) {
        if (attempt >= policy.maxAttempts) return { action: 'dead', reason: `attempts exhausted after ${reason}` };
        const delayMs = Math.max(0, Math.min(retryAfterMs, policy.maxRetryAfterMs));
        return { action: 'retry', delayMs, reason: `${reason}, Retry-After ${formatDuration(delayMs)}` };
      }
    }
  } else {
    reason = ERROR_REASONS[result.errorClass] ?? result.errorClass;
    if (result.errorClass === 'blocked') {
      return { action: 'dead', reason: `destination blocked by the SSRF guard, not retried: ${result.message}` };
    }
  }

  if (attempt >= policy.maxAttempts) return { action: 'dead', reason: `attempts exhausted after ${reason}` };
  const { scheduleMs, jitter } = policy;
  const base = scheduleMs[Math.min(attempt, scheduleMs.length) - 1];
  if (base === undefined) {
    throw new RangeError(`decide: retry policy has an empty scheduleMs but maxAttempts ${policy.maxAttempts}`);
  }
  const factor = 1 - jitter + 2 * jitter * random();
  return { action: 'retry', delayMs: Math.max(0, Math.round(base * factor)), reason };
}
