/**
 * `hookbox deliveries list|show`: the delivery log from the shell. Commander parses;
 * `@hookbox/outbox`'s `deliveryLog` does the work. Also the flag helpers the other log
 * commands (`events`, `stats`) share: tenant scope and time flags.
 *
 * More subcommands (e.g. `deliveries retry`) attach to the same group through
 * `deliveriesCommand(program)`, which creates the group once and returns it after.
 */
import { type DeliveryRecord, type DeliveryStatus, deliveryLog } from '@hookbox/outbox';
import type { Command } from 'commander';
import type pg from 'pg';
import { databaseUrlOption } from '../config.js';
import { parseDuration } from '../duration.js';
import { UsageError } from '../errors.js';
import { formatFields, formatTable, formatTime, parseIntFlag, printJson, withClient, withFlagNames } from './output.js';

/** Library field → the flag an operator types, for error messages. */
export const LOG_FLAGS: Readonly<Record<string, string>> = {
  tenantId: '--tenant',
  allTenants: '--all-tenants',
  subscriptionId: '--subscription',
  eventType: '--event-type',
  type: '--type',
  status: '--status',
  since: '--since',
  until: '--until',
  limit: '--limit',
  cursor: '--cursor',
};

export const examples = (...lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}`;

/** Runs `fn` on a fresh client; library validation errors name the flag (exit 2). */
export function runLog<T>(databaseUrl: string | undefined, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  return withFlagNames(LOG_FLAGS, () => withClient(databaseUrl, fn));
}

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
    limit: parseIntFlag(opts.limit, '--limit', 1, 500),
    ...(opts.since === undefined ? {} : { since: parseTimeFlag(opts.since, '--since', now) }),
    ...(opts.until === undefined ? {} : { until: parseTimeFlag(opts.until, '--until', now) }),
    ...(opts.cursor === undefined ? {} : { cursor: opts.cursor }),
  };
}

/**
 * A time flag: a duration ago (`30m`, `24h`, `7d`) or an ISO 8601 time, which the library
 * validates (its error then names the flag).
 */
export function parseTimeFlag(text: string, flag: string, now = Date.now()): Date | string {
  const t = text.trim();
  if (/^\d{4}-\d{2}-\d{2}/.test(t)) return t;
  if (/^(\d|\.\d)/.test(t)) return new Date(now - parseDuration(t, flag));
  throw new UsageError(
    `${flag}: must be a duration ago (30m, 24h, 7d) or an ISO 8601 time (2024-05-01T12:00:00Z) (got ${JSON.stringify(text)})`,
  );
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

/** `pending (in flight)` while a relay holds the lease. */
export function deliveryState(d: DeliveryRecord, now = Date.now()): string {
  if (d.status === 'pending' && d.lockedUntil && d.lockedUntil.getTime() > now) return 'pending (in flight)';
  return d.status;
}

/** The last result in a few characters: the HTTP status, or the error class. */
export function lastResult(d: DeliveryRecord): string {
  if (d.lastStatus !== null) return String(d.lastStatus);
  return d.lastError ? (d.lastError.split(':')[0] ?? d.lastError) : '-';
}

/** A table of deliveries, with a tenant column when several tenants may appear. */
export function deliveriesTable(items: readonly DeliveryRecord[], withTenant: boolean): string {
  const headers = ['ID', 'CREATED', 'STATUS', 'TRIES', 'LAST', 'EVENT TYPE', ...(withTenant ? ['TENANT'] : []), 'URL'];
  const rows = items.map((d) => [
    String(d.id),
    formatTime(d.createdAt),
    deliveryState(d),
    String(d.attempts),
    lastResult(d),
    d.eventType,
    ...(withTenant ? [d.tenantId] : []),
    d.url,
  ]);
  return formatTable(headers, rows);
}

/** The `deliveries` command group, created on first use; later calls return the same one. */
export function deliveriesCommand(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === 'deliveries');
  if (existing) return existing;
  return program
    .command('deliveries')
    .description('the delivery log: one row per (event, subscription), with every HTTP attempt')
    .addHelpText(
      'after',
      examples(
        'hookbox deliveries list --tenant acme --status dead --since 24h',
        'hookbox deliveries show 4711 --tenant acme',
        'hookbox deliveries retry 4711 --tenant acme',
      ),
    );
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

interface ListFlags extends PageFlags {
  subscription?: string;
  eventType?: string;
  status?: string;
}

/** Registers `deliveries list` and `deliveries show`; returns the group. */
export function registerDeliveries(program: Command): Command {
  const group = deliveriesCommand(program);

  pageOptions(scopeOptions(group.command('list'), 'deliveries'))
    .description('list deliveries, newest first (keyset-paginated: pass --cursor for the next page)')
    .option('--subscription <id>', 'only deliveries to this subscription')
    .option('--event-type <type>', 'only events of this type or pattern (message.new, message.*)')
    .option('--status <list>', 'only these statuses, comma-separated: pending, succeeded, dead, cancelled')
    .addHelpText(
      'after',
      examples(
        'hookbox deliveries list --tenant acme',
        'hookbox deliveries list --tenant acme --status dead --since 24h',
        "hookbox deliveries list --tenant acme --event-type 'message.*' --limit 200 --json",
        'hookbox deliveries list --all-tenants --status pending --cursor dlv_1234',
      ),
    )
    .action(async (opts: ListFlags) => {
      const input = {
        ...pageInput(opts),
        ...(opts.subscription === undefined ? {} : { subscriptionId: opts.subscription }),
        ...(opts.eventType === undefined ? {} : { eventType: opts.eventType }),
        ...(opts.status === undefined
          ? {}
          : { status: opts.status.split(',').map((s) => s.trim()) as DeliveryStatus[] }),
      };
      const page = await runLog(opts.databaseUrl, (c) => deliveryLog.listDeliveries(c, input));
      if (opts.json) return printJson(page);
      if (page.items.length === 0) return console.log('no deliveries');
      console.log(deliveriesTable(page.items, 'allTenants' in input));
      if (page.nextCursor) console.log(`\nmore: --cursor ${page.nextCursor}`);
    });

  group
    .command('show')
    .description('show one delivery with every attempt (status, duration, error, response excerpt)')
    .argument('<id>', 'delivery id')
    .requiredOption('--tenant <id>', 'tenant that owns the delivery')
    .addOption(databaseUrlOption())
    .option('--json', 'print JSON ({ delivery, attempts }) instead of text')
    .addHelpText(
      'after',
      examples('hookbox deliveries show 1234 --tenant acme', 'hookbox deliveries show 1234 --tenant acme --json'),
    )
    .action(async (id: string, opts: { tenant: string; databaseUrl?: string; json?: boolean }) => {
      const detail = await runLog(opts.databaseUrl, (c) => deliveryLog.getDelivery(c, { tenantId: opts.tenant, id }));
      if (opts.json) return printJson(detail);
      const d = detail.delivery;
      console.log(
        formatFields([
          ['id', String(d.id)],
          ['tenant', d.tenantId],
          ['status', deliveryState(d)],
          ['event', `${d.eventId} (${d.eventType})`],
          ['subscription', d.subscriptionId],
          ['url', d.url],
          ['attempts', String(d.attempts)],
          ['next attempt', d.status === 'pending' ? formatTime(d.nextAttemptAt) : '-'],
          ['last status', d.lastStatus === null ? '-' : String(d.lastStatus)],
          ['last error', d.lastError ?? '-'],
          ['last attempt', formatTime(d.lastAttemptAt)],
          ['replay of', d.replayOf === null ? '-' : String(d.replayOf)],
          ['created', formatTime(d.createdAt)],
          ['completed', formatTime(d.completedAt)],
        ]),
      );
      if (detail.attempts.length === 0) return console.log('\nno attempts yet');
      const rows = detail.attempts.map((a) => [
        String(a.attempt),
        formatTime(a.startedAt),
        formatMs(a.durationMs),
        a.statusCode === null ? '-' : String(a.statusCode),
        a.errorClass === null ? '-' : cell(`${a.errorClass}${a.errorMessage ? `: ${a.errorMessage}` : ''}`, 50),
        cell(a.responseExcerpt),
      ]);
      console.log(`\n${formatTable(['#', 'STARTED', 'DURATION', 'HTTP', 'ERROR', 'RESPONSE'], rows)}`);
    });

  return group;
}
