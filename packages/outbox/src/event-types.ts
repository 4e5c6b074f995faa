/**
 * Event types and the patterns subscriptions use to select them. Pure functions: enqueue's
 * and the subscriptions' validation, replay and the API's catalog use them; the relay's
 * fan-out matches in SQL with hookbox.matches_any, which follows matchesEventType
 * (test/fanout-matching.test.ts checks the two agree).
 */

export const MAX_EVENT_TYPE_LENGTH = 255;

/** Dot-separated segments of lowercase letters, digits, `_` and `-`. Same regex as the SQL function. */
export const EVENT_TYPE_RE = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

/** A pattern: an exact type, a type prefix followed by `.*`, or `*` alone. */
const PATTERN_RE = /^(\*|[a-z0-9_-]+(\.[a-z0-9_-]+)*(\.\*)?)$/;

export function isValidEventType(type: string): boolean {
  return type.length <= MAX_EVENT_TYPE_LENGTH && EVENT_TYPE_RE.test(type);
}

export function isValidEventPattern(pattern: string): boolean {
  return pattern.length <= MAX_EVENT_TYPE_LENGTH && PATTERN_RE.test(pattern);
}

/** Prefix of hookbox's own operational event types (docs/operational-events.md). */
export const OPERATIONAL_PREFIX = 'hookbox.';

/**
 * Does `type` match `pattern`? `*` matches every type except hookbox's operational events
 * (`hookbox.…`), which only patterns that name them match (`hookbox.*`, `hookbox.delivery.*`,
 * the exact type); `message.*` matches `message.new` and `message.status.read` but not
 * `message` itself nor `messages.new`; anything else must be equal. Same rule as the SQL
 * function hookbox.matches_any.
 */
export function matchesEventType(pattern: string, type: string): boolean {
  if (pattern === '*') return !type.startsWith(OPERATIONAL_PREFIX);
  if (pattern.endsWith('.*')) {
    const prefix = pattern.slice(0, -1); // keeps the dot: `message.`
    return type.length > prefix.length && type.startsWith(prefix);
  }
  return pattern === type;
}

/** True when any of `patterns` matches `type`. */
export function matchesAny(patterns: readonly string[], type: string): boolean {
  for (const p of patterns) if (matchesEventType(p, type)) return true;
  return false;
}
