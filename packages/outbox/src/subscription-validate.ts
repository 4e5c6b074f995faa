/**
 * Validation of subscription input. Pure functions, run before any SQL: bad input never
 * reaches the database. Every error is a ValidationError naming the field and the rule.
 */
import { ValidationError } from './errors.js';
import { isValidEventPattern, isValidEventType } from './event-types.js';
import { intInRange, isPlainObject, isUuid } from './input.js';
import { ORDERING_ON_DEAD, type OrderingOnDead } from './schema.js';
import { parseSecret } from './secret.js';

/** The limits subscription input is held to. */
export const SUBSCRIPTION_LIMITS = {
  /** Longest endpoint URL, in characters (before and after normalisation). */
  maxUrlLength: 2048,
  /** Most event-type patterns on one subscription (after de-duplication). */
  maxEventPatterns: 100,
  /** Longest description, in characters. */
  maxDescriptionLength: 1000,
  /** Longest disable reason, in characters. */
  maxReasonLength: 1000,
  /** Most custom headers on one subscription. */
  maxHeaders: 20,
  /** Longest custom header name, in characters. */
  maxHeaderNameLength: 256,
  /** Largest custom header value, in UTF-8 bytes (4 KiB). */
  maxHeaderValueBytes: 4096,
  /** Bounds of `maxInFlight`. */
  minInFlight: 1,
  maxInFlight: 1000,
  /** Bounds of `rateLimit` (requests per second). */
  minRateLimit: 1,
  maxRateLimit: 10_000,
  /** Bounds of `requestTimeoutMs` (1 ms to 1 hour). */
  minRequestTimeoutMs: 1,
  maxRequestTimeoutMs: 60 * 60 * 1000,
  /** Most delays in `retryScheduleMs`, and the largest one (30 days). */
  maxRetries: 50,
  maxRetryDelayMs: 30 * 24 * 60 * 60 * 1000,
  /** Default and largest page of `list`. */
  defaultListLimit: 50,
  maxListLimit: 500,
  /** Default and largest time the previous secret keeps signing after a rotation. */
  defaultPreviousSecretTtlMs: 24 * 60 * 60 * 1000,
  maxPreviousSecretTtlMs: 30 * 24 * 60 * 60 * 1000,
} as const;

/**
 * Header names a subscription may not set, compared case-insensitively; names starting with
 * `webhook-` are refused too. The relay owns the body framing, the signature and the
 * connection: these would break or forge them (undici also refuses the hop-by-hop ones).
 */
export const RESERVED_HEADER_NAMES: readonly string[] = [
  'content-type',
  'content-length',
  'content-encoding',
  'host',
  'user-agent',
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'expect',
];
const RESERVED_PREFIX = 'webhook-';
const RESERVED = new Set(RESERVED_HEADER_NAMES);

/** RFC 9110 token: the characters a header name may use. */
const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Header values: HTAB, space, visible ASCII and obs-text; no CR, LF, NUL or other controls. */
const HEADER_VALUE_RE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** An absolute http(s) URL without credentials; returns its normalised form (`URL.href`). */
export function validateUrl(url: unknown, field = 'url'): string {
  const max = SUBSCRIPTION_LIMITS.maxUrlLength;
  if (typeof url !== 'string' || url === '') {
    throw new ValidationError(field, 'required', 'is required and must be a non-empty string');
  }
  if (url.length > max) throw new ValidationError(field, 'max_length', `must be at most ${max} characters`);
  // `new URL` silently strips surrounding whitespace and controls; refuse them instead.
  if (/[\s\x00-\x1f\x7f]/.test(url)) {
    throw new ValidationError(field, 'format', 'must not contain whitespace or control characters');
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ValidationError(field, 'format', 'must be an absolute URL, e.g. https://example.com/webhooks');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ValidationError(field, 'scheme', `must use http or https (got ${parsed.protocol.slice(0, -1)})`);
  }
  if (parsed.username !== '' || parsed.password !== '') {
    throw new ValidationError(field, 'credentials', 'must not contain a username or password');
  }
  if (parsed.href.length > max) {
    throw new ValidationError(field, 'max_length', `must be at most ${max} characters once normalised`);
  }
  return parsed.href;
}

/** A non-empty array of event-type patterns; returns them de-duplicated, in order. */
export function validateEventPatterns(patterns: unknown, field = 'eventTypes'): string[] {
  if (!Array.isArray(patterns) || patterns.length === 0) {
    throw new ValidationError(field, 'required', 'must be a non-empty array of event-type patterns');
  }
  const unique = new Set<string>();
  patterns.forEach((p, i) => {
    if (typeof p !== 'string' || !isValidEventPattern(p)) {
      throw new ValidationError(
        `${field}[${i}]`,
        'format',
        'must be an event type (message.new), a prefix pattern (message.*) or * (everything)',
      );
    }
    unique.add(p);
  });
  const max = SUBSCRIPTION_LIMITS.maxEventPatterns;
  if (unique.size > max) throw new ValidationError(field, 'max_items', `must hold at most ${max} patterns`);
  return [...unique];
}

/** Custom request headers: at most 20, valid names, not reserved, safe values. */
/** What the API shows in place of a secret (a custom header's value, a signature); never a header value itself. */
export const REDACTED = '[redacted]';

export function validateHeaders(headers: unknown, field = 'headers'): Record<string, string> {
  if (!isPlainObject(headers)) {
    throw new ValidationError(field, 'type', 'must be an object of header name to string value');
  }
  const names = Object.keys(headers);
  const { maxHeaders, maxHeaderNameLength, maxHeaderValueBytes } = SUBSCRIPTION_LIMITS;
  if (names.length > maxHeaders) {
    throw new ValidationError(field, 'max_items', `must hold at most ${maxHeaders} headers (got ${names.length})`);
  }
  const seen = new Set<string>();
  const out: Record<string, string> = {};
  for (const name of names) {
    const f = `${field}.${name}`;
    if (!TOKEN_RE.test(name)) {
      throw new ValidationError(
        f,
        'name_format',
        "header name must be an HTTP token (letters, digits, !#$%&'*+-.^_`|~)",
      );
    }
    if (name.length > maxHeaderNameLength) {
      throw new ValidationError(f, 'max_length', `header name must be at most ${maxHeaderNameLength} characters`);
    }
    const lower = name.toLowerCase();
    if (lower === '__proto__') {
      // A JavaScript object cannot carry it as an ordinary key: it would be dropped silently.
      throw new ValidationError(f, 'reserved', 'is not allowed as a header name (it is the JavaScript prototype key)');
    }
    if (RESERVED.has(lower) || lower.startsWith(RESERVED_PREFIX)) {
      throw new ValidationError(f, 'reserved', 'is set by the relay and may not be overridden');
    }
    if (seen.has(lower)) {
      throw new ValidationError(f, 'duplicate', 'appears twice (header names are case-insensitive)');
    }
    seen.add(lower);
    const value = headers[name];
    if (typeof value !== 'string') throw new ValidationError(f, 'value_type', 'header value must be a string');
    if (value === REDACTED) {
      // What the API shows in place of a value: a client that sends back what it read would
      // otherwise replace the endpoint's token with the placeholder.
      throw new ValidationError(f, 'redacted', 'is the placeholder the API shows for a value; send the real value');
    }
    if (!HEADER_VALUE_RE.test(value)) {
      const bad = [...value].find((c) => !HEADER_VALUE_RE.test(c)) ?? '';
      const code = `U+${(bad.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
      if ((bad.codePointAt(0) ?? 0) > 0xff) {
        throw new ValidationError(
          f,
          'latin1',
          `header value must be Latin-1 text (HTTP carries header values as bytes); ${code} is outside it: percent-encode or base64 such values`,
        );
      }
      throw new ValidationError(
        f,
        'invalid_char',
        `header value must not contain CR, LF, NUL or other control characters (found ${code})`,
      );
    }
    if (Buffer.byteLength(value) > maxHeaderValueBytes) {
      throw new ValidationError(f, 'max_bytes', `header value must be at most ${maxHeaderValueBytes} bytes`);
    }
    out[name] = value;
  }
  return out;
}

/** Optional free text (description, disable reason): a string up to `max` characters, or null. */
export function validateText(value: unknown, field: string, max: number): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value !== 'string') throw new ValidationError(field, 'type', 'must be a string or null');
  if (value.length > max) throw new ValidationError(field, 'max_length', `must be at most ${max} characters`);
  // Postgres text cannot hold NUL; refuse it here rather than fail in the driver.
  if (value.includes('\u0000')) throw new ValidationError(field, 'nul', 'must not contain the NUL character');
  // The driver would store a lone surrogate as U+FFFD: a silent change, so refuse it.
  if (!value.isWellFormed()) {
    throw new ValidationError(field, 'unicode', 'must be well-formed Unicode (a lone surrogate was found)');
  }
  return value;
}

/** `block` or `skip`; null when not given. */
export function validateOrderingOnDead(value: unknown, field = 'orderingOnDead'): OrderingOnDead | null {
  if (value === undefined) return null;
  if (!(ORDERING_ON_DEAD as readonly unknown[]).includes(value)) {
    throw new ValidationError(field, 'enum', `must be one of ${ORDERING_ON_DEAD.join(', ')}`);
  }
  return value as OrderingOnDead;
}

/** An integer 1..1000, or null for the relay's default. */
export function validateMaxInFlight(value: unknown, field = 'maxInFlight'): number | null {
  if (value === null || value === undefined) return null;
  const { minInFlight, maxInFlight } = SUBSCRIPTION_LIMITS;
  return intInRange(value, field, minInFlight, maxInFlight, { suffix: ', or null' });
}

/** Requests per second, an integer 1..10000, or null for no limit. */
export function validateRateLimit(value: unknown, field = 'rateLimit'): number | null {
  if (value === null || value === undefined) return null;
  const { minRateLimit, maxRateLimit } = SUBSCRIPTION_LIMITS;
  return intInRange(value, field, minRateLimit, maxRateLimit, { suffix: ' requests per second, or null' });
}

/** Milliseconds allowed per request, an integer 1..3,600,000, or null for the relay's default. */
export function validateRequestTimeout(value: unknown, field = 'requestTimeoutMs'): number | null {
  if (value === null || value === undefined) return null;
  const { minRequestTimeoutMs, maxRequestTimeoutMs } = SUBSCRIPTION_LIMITS;
  return intInRange(value, field, minRequestTimeoutMs, maxRequestTimeoutMs, { suffix: ' milliseconds, or null' });
}

/**
 * Delays before each retry in ms (0..30 days each, at most 50; an empty list means no
 * retries), or null for the relay's schedule.
 */
export function validateRetrySchedule(value: unknown, field = 'retryScheduleMs'): number[] | null {
  if (value === null || value === undefined) return null;
  const { maxRetries, maxRetryDelayMs } = SUBSCRIPTION_LIMITS;
  if (!Array.isArray(value))
    throw new ValidationError(field, 'type', 'must be an array of delays in milliseconds, or null');
  if (value.length > maxRetries) {
    throw new ValidationError(field, 'max_items', `must have at most ${maxRetries} delays`);
  }
  return value.map((delay, i) => intInRange(delay, `${field}[${i}]`, 0, maxRetryDelayMs, { suffix: ' milliseconds' }));
}

/** A `whsec_` secret (checked by parseSecret); returns the secret string. */
export function validateSecret(value: unknown, field = 'secret'): string {
  parseSecret(value, field);
  return value as string;
}

export function validatePreviousSecretTtl(value: unknown, field = 'previousSecretTtlMs'): number {
  if (value === undefined) return SUBSCRIPTION_LIMITS.defaultPreviousSecretTtlMs;
  const max = SUBSCRIPTION_LIMITS.maxPreviousSecretTtlMs;
  return intInRange(value, field, 0, max, { suffix: ' milliseconds (30 days)' });
}

export function validateListLimit(value: unknown, field = 'limit'): number {
  const { defaultListLimit, maxListLimit } = SUBSCRIPTION_LIMITS;
  return intInRange(value, field, 1, maxListLimit, { fallback: defaultListLimit });
}

export function validateCursor(value: unknown, field = 'after'): string | null {
  if (value === undefined || value === null) return null;
  if (!isUuid(value)) throw new ValidationError(field, 'format', 'must be a subscription id (a uuid) from nextCursor');
  return value.toLowerCase();
}

export function validateEventTypeFilter(value: unknown, field = 'eventType'): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || !isValidEventType(value)) {
    throw new ValidationError(field, 'format', 'must be an event type such as message.new (not a pattern)');
  }
  return value;
}
