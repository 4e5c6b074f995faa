/**
 * Flag helpers every command shares: help examples, running a library call so that its
 * validation errors name the flag the operator typed, the tenant scope, paging, the one
 * time-flag parser, id arguments, whole-number flags, repeatable flags and command groups,
 * and waiting for Ctrl-C in the long-running ones. Commands parse and check their flags here
 * before connecting: a typo never costs a connection.
 */
import { parseIsoTime } from '@hookbox/outbox';
import type { Command } from 'commander';
import type pg from 'pg';
import { databaseUrlOption } from '../config.js';
import { parseDuration } from '../duration.js';
import { UsageError } from '../errors.js';
import { parseWholeNumber } from '../option-text.js';
import { withClient, withFlagNames } from './output.js';

/** The `Examples:` block of a command's --help. */
export const examples = (...lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}`;

/**
 * Runs `fn` on a fresh client; a library ValidationError becomes a UsageError (exit 2) that
 * names the flag from `flags` (library field → flag).
 */
export function run<T>(
  flags: Readonly<Record<string, string>>,
  databaseUrl: string | undefined,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  return withFlagNames(flags, () => withClient(databaseUrl, fn));
}

/** The group `name` (e.g. `deliveries`), created on first use; later calls return the same one. */
export function commandGroup(program: Command, name: string, description: string, ...exampleLines: string[]): Command {
  const existing = program.commands.find((c) => c.name() === name);
  if (existing) return existing;
  const group = program.command(name).description(description);
  if (exampleLines.length > 0) group.addHelpText('after', examples(...exampleLines));
  return group;
}

/**
 * The one time flag (`--since`, `--until`): a duration ago (`30m`, `24h`, `7d`) or an ISO
 * 8601 time. Anything that starts like a date is held to the library's date rules
 * (`parseIsoTime`): `2024-02-30` or a six-digit year is refused as a date, not read as a
 * duration or rolled over to another day.
 */
export function parseTimeFlag(text: string, flag: string, now = Date.now()): Date {
  const t = text.trim();
  if (/^[+-]?\d{4,}-/.test(t)) {
    try {
      return parseIsoTime(t, flag);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new UsageError(message);
    }
  }
  if (/^[-\d.]/.test(t)) return new Date(now - parseDuration(t, flag));
  throw new UsageError(
    `${flag}: must be a duration ago (30m, 24h, 7d) or an ISO 8601 time (2024-05-01T12:00:00Z) (got ${JSON.stringify(text)})`,
  );
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An id argument or flag that must be a uuid (subscription and event ids). */
export function uuidArg(text: string, name: string, what: string): string {
  if (!UUID_RE.test(text.trim())) {
    throw new UsageError(
      `${name}: must be ${what} id, a uuid like 0190a5c4-1c2b-7d3e-8f40-123456789abc (got ${JSON.stringify(text)})`,
    );
  }
  return text.trim();
}

/** A delivery id argument: a positive whole number. */
export function deliveryIdArg(text: string, name = 'ID'): string {
  const t = text.trim();
  if (!/^\d{1,16}$/.test(t) || !Number.isSafeInteger(Number(t)) || Number(t) < 1) {
    throw new UsageError(
      `${name}: must be a delivery id, a positive whole number like 4711 (got ${JSON.stringify(text)})`,
    );
  }
  return t;
}

/** Library field → the flag an operator types, for the log listings' error messages. */
export const LOG_FLAGS: Readonly<Record<string, string>> = {
  tenantId: '--tenant',
  allTenants: '--all-tenants',
  subscriptionId: '--subscription',
  eventType: '--event-type',
  type: '--type',
  status: '--status',
  orderingKey: '--ordering-key',
  since: '--since',
  until: '--until',
  limit: '--limit',
  cursor: '--cursor',
  id: 'ID',
};

export interface ScopeFlags {
  tenant?: string;
  allTenants?: boolean;
}

/** `--tenant T` or an explicit `--all-tenants`: nothing crosses tenants by accident. */
export function scopeFromFlags(opts: ScopeFlags): { tenantId: string } | { allTenants: true } {
  if (opts.tenant !== undefined && opts.allTenants) {
    throw new UsageError('--tenant and --all-tenants: give one or the other, not both');
  }
  if (opts.allTenants) return { allTenants: true };
  if (opts.tenant === undefined) throw new UsageError('--tenant: required (or --all-tenants to read every tenant)');
  return { tenantId: opts.tenant };
}

/** Adds `--tenant` and `--all-tenants` to a list command. */
export function scopeOptions(cmd: Command, what: string): Command {
  return cmd
    .option('--tenant <id>', `tenant whose ${what} to read (required unless --all-tenants)`)
    .option('--all-tenants', `operators: read the ${what} of every tenant`);
}

/** What pageOptions adds. */
export interface PageFlags extends ScopeFlags {
  since?: string;
  until?: string;
  limit: string;
  cursor?: string;
  databaseUrl?: string;
  json?: boolean;
}

/** The paging, time-window and output flags every log listing shares. */
export function pageOptions(cmd: Command): Command {
  return cmd
    .option('--since <when>', 'created at or after: a duration ago (1h, 7d) or an ISO 8601 time')
    .option('--until <when>', 'created before: a duration ago or an ISO 8601 time')
    .option('--limit <n>', 'page size (1–500)', '50')
    .option('--cursor <cursor>', 'continue after the previous page (its "next" cursor)')
    .addOption(databaseUrlOption())
    .option('--json', 'print JSON ({ items, nextCursor }) instead of a table');
}

/** The scope, page and time-window part of a listing's library input, from pageOptions' flags. */
export function pageInput(opts: PageFlags) {
  const now = Date.now();
  return {
    ...scopeFromFlags(opts),
    limit: parseWholeNumber(opts.limit, '--limit', 1, 500),
    ...(opts.since === undefined ? {} : { since: parseTimeFlag(opts.since, '--since', now) }),
    ...(opts.until === undefined ? {} : { until: parseTimeFlag(opts.until, '--until', now) }),
    ...(opts.cursor === undefined ? {} : { cursor: opts.cursor }),
  };
}

/** commander's argument parser for a repeatable flag: every value, in order. */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** Resolves on the first SIGINT or SIGTERM, so a long-running command can close and exit 0. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve(signal);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
