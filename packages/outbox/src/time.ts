/**
 * Time input, one behaviour everywhere: a Date, or an ISO 8601 string with a zone (or a bare
 * date, meaning midnight UTC). Calendar dates are checked as written: 2024-02-30 is refused,
 * not rolled over to 1 March, and years are 0001–9999 (Postgres and ISO 8601 agree there).
 */
import { ValidationError } from './errors.js';

/** A point in time: a Date, or an ISO 8601 string with a time zone (`2024-05-01T12:00:00Z`) or a bare date (UTC). */
export type TimeInput = Date | string;

// A date, optionally a time, which then needs a zone (a bare local time is ambiguous).
const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}(?::?\d{2})?))?$/i;

const FORMS = 'an ISO 8601 time with a zone, e.g. 2024-05-01T12:00:00Z or 2024-05-01';

/** The day count of `month` (1–12) in `year`. */
const daysIn = (year: number, month: number) => new Date(Date.UTC(year, month, 0)).getUTCDate();

/**
 * Parses ISO 8601 text into a Date; throws a ValidationError naming `field` for anything else,
 * saying what is wrong: the form, or the date that does not exist.
 */
export function parseIsoTime(text: string, field: string): Date {
  const t = text.trim();
  if (/^[+-]?\d{5,}-/.test(t)) {
    throw new ValidationError(
      field,
      'format',
      `is not a date: the year must be from 0001 to 9999 (got ${JSON.stringify(text)})`,
    );
  }
  const m = ISO_RE.exec(t);
  if (!m) throw new ValidationError(field, 'format', `must be ${FORMS} (got ${JSON.stringify(text)})`);
  const [year, month, day, hour = 0, minute = 0, second = 0] = m.slice(1, 7).map((x) => Number(x ?? 0)) as number[];
  if (year === undefined || month === undefined || day === undefined || year < 1) {
    throw new ValidationError(
      field,
      'format',
      `is not a date: the year must be from 0001 to 9999 (got ${JSON.stringify(text)})`,
    );
  }
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) {
    throw new ValidationError(field, 'format', `is not a date: ${t.slice(0, 10)} does not exist in the calendar`);
  }
  if (hour > 23 || minute > 59 || second > 59) {
    throw new ValidationError(
      field,
      'format',
      `is not a time: ${JSON.stringify(text)} (hours 00–23, minutes and seconds 00–59)`,
    );
  }
  const date = new Date(m[4] === undefined ? `${t.slice(0, 10)}T00:00:00Z` : t.replace(' ', 'T'));
  if (Number.isNaN(date.getTime()))
    throw new ValidationError(field, 'format', `must be ${FORMS} (got ${JSON.stringify(text)})`);
  // The zone can carry a time written in 9999 or 0001 over the edge (9999-12-31T23:00-05:00
  // is in the year 10000 in UTC), which Postgres refuses.
  const utcYear = date.getUTCFullYear();
  if (utcYear < 1 || utcYear > 9999) {
    throw new ValidationError(
      field,
      'format',
      `is out of range: in UTC it falls outside the years 0001 to 9999 (got ${JSON.stringify(text)})`,
    );
  }
  return date;
}

/** A Date or ISO 8601 string → Date; undefined/null → null. */
export function validateTime(value: unknown, field: string): Date | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return parseIsoTime(value, field);
  if (value instanceof Date) {
    const year = value.getUTCFullYear();
    if (Number.isNaN(year) || year < 1 || year > 9999) {
      throw new ValidationError(field, 'format', 'must be a valid Date from year 0001 to 9999');
    }
    return value;
  }
  throw new ValidationError(field, 'format', `must be a Date or ${FORMS}`);
}

/** `since` and `until` of a window: each validateTime's, and `since` not later than `until`. */
export function validateTimeRange(input: { since?: unknown; until?: unknown }): [Date | null, Date | null] {
  const since = validateTime(input.since, 'since');
  const until = validateTime(input.until, 'until');
  if (since && until && since.getTime() > until.getTime()) {
    throw new ValidationError('since', 'order', 'must not be later than until');
  }
  return [since, until];
}
