/**
 * Durations as operators type them (`250ms`, `5s`, `1.5m`, `2h`, `1d`, `1h30m`) and as the relay
 * prints them. A bare number is refused because nobody can tell whether `5` means seconds or
 * milliseconds; only `0` is unambiguous.
 */
import { ValidationError } from '@hookbox/outbox';

const MS = 1;
const SECOND = 1000 * MS;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** The longest duration accepted anywhere: one year. Longer is a typo, not a setting. */
export const MAX_DURATION_MS = 365 * DAY;

/** Largest unit first: formatDuration walks this list, parseDuration enforces its order. */
const UNITS: readonly (readonly [suffix: string, ms: number])[] = [
  ['d', DAY],
  ['h', HOUR],
  ['m', MINUTE],
  ['s', SECOND],
  ['ms', MS],
];

const UNIT_MS = new Map(UNITS);
/** Rank by size so `1h30m` is accepted and `30m1h` or `1s1s` are not. */
const UNIT_RANK = new Map(UNITS.map(([suffix], i) => [suffix, i]));

/** One `<number><unit>` part. `ms` comes before `m` and `s` so the alternation is greedy. */
const PART = /(\d+(?:\.\d+)?|\.\d+)(ms|d|h|m|s)/y;

const LIKE = 'must be a duration like 250ms, 5s, 5m or 2h';

/**
 * Parses a duration into whole milliseconds (rounded to the nearest). Accepts one or more
 * `<number><unit>` parts with units `ms`, `s`, `m`, `h`, `d` in decreasing order (`1h30m`),
 * decimals (`1.5s`), and a bare `0`. Throws a ValidationError naming `field` for anything else,
 * for negatives, and for values over 365 days.
 */
export function parseDuration(text: string, field: string): number {
  const input = text.trim();
  const got = ` (got ${JSON.stringify(text)})`;
  if (input === '0') return 0;
  if (input === '') throw new ValidationError(field, 'format', `${LIKE}${got}`);
  if (input.startsWith('-')) throw new ValidationError(field, 'range', `must not be negative${got}`);
  if (/^\d+(?:\.\d+)?$/.test(input)) {
    throw new ValidationError(field, 'format', `a bare number is ambiguous; add a unit like 250ms, 5s, 5m or 2h${got}`);
  }

  let total = 0;
  let lastRank = -1;
  PART.lastIndex = 0;
  while (PART.lastIndex < input.length) {
    const match = PART.exec(input);
    if (!match) throw new ValidationError(field, 'format', `${LIKE}${got}`);
    const [, amount, suffix] = match as unknown as [string, string, string];
    const rank = UNIT_RANK.get(suffix)!;
    if (rank <= lastRank) {
      throw new ValidationError(
        field,
        'format',
        `units must go from largest to smallest, each once (e.g. 1h30m)${got}`,
      );
    }
    lastRank = rank;
    total += Number(amount) * UNIT_MS.get(suffix)!;
  }

  const ms = Math.round(total);
  if (!Number.isFinite(ms) || ms > MAX_DURATION_MS) {
    throw new ValidationError(field, 'range', `must be at most 365d${got}`);
  }
  return ms;
}

/**
 * Parses a comma-separated list of durations (`5s,5m,30m`; spaces around items are fine).
 * Throws a ValidationError for an empty list, an empty item, or any item parseDuration rejects.
 */
export function parseDurationList(text: string, field: string): number[] {
  if (text.trim() === '') {
    throw new ValidationError(field, 'required', 'must be a comma-separated list of durations like 5s,5m,30m (got "")');
  }
  return text.split(',').map((item, i) => {
    if (item.trim() === '') {
      throw new ValidationError(field, 'format', `item ${i + 1} is empty (got ${JSON.stringify(text)})`);
    }
    return parseDuration(item, `${field} item ${i + 1}`);
  });
}

/**
 * The shortest readable form of a duration, e.g. `250ms`, `5s`, `2h`, `1m30s`, `1d2h`.
 * The output parses back with parseDuration to the same value. Fractions of a millisecond are
 * rounded; negative values get a leading `-` (for logs only: parseDuration refuses them).
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  let rest = Math.round(Math.abs(ms));
  if (rest === 0) return '0';
  let out = ms < 0 ? '-' : '';
  for (const [suffix, size] of UNITS) {
    const count = Math.floor(rest / size);
    if (count > 0) {
      out += `${count}${suffix}`;
      rest -= count * size;
    }
  }
  return out;
}
