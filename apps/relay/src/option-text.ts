/**
 * Option values as operators type them, in flags and environment variables: whole numbers
 * and booleans (durations have their own module, duration.ts). `field` is the flag the
 * message names, e.g. `--concurrency`. Bad text throws a ValidationError naming it.
 */
import { ValidationError } from '@hookbox/outbox';

/** A whole number from `min` to `max`, written in decimal digits only. */
export function parseWholeNumber(text: string, field: string, min: number, max: number): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new ValidationError(
      field,
      'range',
      `must be a whole number from ${min} to ${max} (got ${JSON.stringify(text)})`,
    );
  }
  return n;
}

/** `1`, `true`, `yes`, `on` or `0`, `false`, `no`, `off`, empty (any case). */
export function parseBoolean(text: string, field: string): boolean {
  const t = text.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(t)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(t)) return false;
  throw new ValidationError(field, 'type', `must be true or false (got ${JSON.stringify(text)})`);
}
