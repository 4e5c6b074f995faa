/**
 * Reading rows back. Timestamps leave Postgres as epoch milliseconds: pg gives a Date, drizzle's
 * session the server's text; a float8 reads the same everywhere.
 */

/** `(extract(epoch FROM expr) * 1000)::float8 AS as`: a timestamp column as epoch ms. */
export const epochMs = (expr: string, as: string) => `(extract(epoch FROM ${expr}) * 1000)::float8 AS ${as}`;

/** An epoch-ms (or Date) column → Date; null stays null. */
export function toDate(value: unknown): Date | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value;
  return new Date(Number(value));
}

/** A numeric column (bigint and numeric arrive as text) → number; null stays null. */
export const num = (value: unknown): number | null => (value === null || value === undefined ? null : Number(value));
