/**
 * Shared plumbing of the one-shot operations commands: a database client that is always
 * closed, JSON and plain-table printing, and mapping library validation errors to the flag
 * the operator typed.
 */
import { stringifyJson } from '@hookbox/outbox/api';
import pg from 'pg';
import { resolveDatabaseUrl } from '../config.js';
import { UsageError } from '../errors.js';

export { stringifyJson };

/**
 * Opens one pg Client on the flag's (or DATABASE_URL's) database, runs `fn`, and closes the
 * client whatever happens. Commands are short: a pool would only add idle connections.
 */
export async function withClient<T>(
  databaseUrl: string | undefined,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({ connectionString: resolveDatabaseUrl(databaseUrl), application_name: 'hookbox-cli' });
  try {
    await client.connect();
  } catch (err) {
    // A failed connect leaves nothing open; say which step failed.
    throw new Error(`cannot connect to the database: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Pretty JSON on stdout; dates become ISO strings. Any depth (see stringifyJson). */
export function printJson(value: unknown): void {
  process.stdout.write(`${stringifyJson(value, 2)}\n`);
}

/** A plain table: a header row, then the rows, columns padded to their widest cell. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** `label  value` lines with the labels aligned. */
export function formatFields(fields: readonly (readonly [label: string, value: string])[]): string {
  const width = Math.max(...fields.map(([label]) => label.length));
  return fields.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n');
}

/** An ISO timestamp, or `-` for none. */
export function formatTime(date: Date | null | undefined): string {
  return date ? date.toISOString() : '-';
}

/** A duration in ms for tables: `85ms`, `1.25s`. */
export function formatMs(ms: number | null): string {
  if (ms === null) return '-';
  return ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(2)}s`;
}

/** One line, at most `max` characters, for a table cell. */
export function cell(text: string | null | undefined, max = 60): string {
  if (text === null || text === undefined || text === '') return '-';
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** A count with thousands separators: `12,345`. */
export const formatCount = (x: number) => x.toLocaleString('en-US');

/** One progress line on stderr, rewritten in place; only when stderr is a terminal. */
export function progress(): { update(line: string): void; done(): void } {
  const tty = process.stderr.isTTY === true;
  let shown = false;
  return {
    update(line) {
      if (!tty) return;
      process.stderr.write(`\r\x1b[K${line}`);
      shown = true;
    },
    done() {
      if (shown) process.stderr.write('\r\x1b[K');
    },
  };
}

/**
 * Runs `fn`; a library ValidationError becomes a UsageError (exit 2) that names the flag the
 * operator typed, e.g. `--events (eventTypes[1]): must be …` instead of the library's field.
 */
export async function withFlagNames<T>(flags: Readonly<Record<string, string>>, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const e = err as { code?: unknown; field?: unknown; message?: unknown };
    if (e?.code === 'HOOKBOX_INVALID_INPUT' && typeof e.field === 'string' && typeof e.message === 'string') {
      const key = e.field.split(/[.[]/)[0] ?? e.field;
      const flag = flags[key];
      if (flag) {
        const prefix = `${e.field}: `;
        const rest = e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message;
        throw new UsageError(`${flag}${e.field === key ? '' : ` (${e.field})`}: ${rest}`);
      }
    }
    throw err;
  }
}
