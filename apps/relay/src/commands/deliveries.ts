/**
 * `hookbox deliveries list|show`: the delivery log from the shell. Commander parses;
 * `@hookbox/outbox`'s `deliveryLog` does the work. Also the delivery table `events show`
 * prints. `deliveries retry` attaches to the same group (commands/replay.ts) through
 * `deliveriesCommand(program)`.
 */
import type { DeliveryStatus } from '@hookbox/outbox';
import { type DeliveryRecord, deliveryLog } from '@hookbox/outbox/admin';
import type { Command } from 'commander';
import { databaseUrlOption } from '../config.js';
import {
  commandGroup,
  deliveryIdArg,
  examples,
  LOG_FLAGS,
  type PageFlags,
  pageInput,
  pageOptions,
  run,
  scopeOptions,
  uuidArg,
} from './flags.js';
import { cell, formatFields, formatMs, formatTable, formatTime, printJson } from './output.js';

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
  return commandGroup(
    program,
    'deliveries',
    'the delivery log: one row per (event, subscription), with every HTTP attempt',
    'hookbox deliveries list --tenant acme --status dead --since 24h',
    'hookbox deliveries show 4711 --tenant acme',
    'hookbox deliveries retry 4711 --tenant acme',
  );
}

interface ListFlags extends PageFlags {
  subscription?: string;
  eventType?: string;
  status?: string;
  orderingKey?: string;
}

/** Registers `deliveries list` and `deliveries show`; returns the group. */
export function registerDeliveries(program: Command): Command {
  const group = deliveriesCommand(program);

  pageOptions(scopeOptions(group.command('list'), 'deliveries'))
    .description('list deliveries, newest first (keyset-paginated: pass --cursor for the next page)')
    .option('--subscription <id>', 'only deliveries to this subscription')
    .option('--event-type <type>', 'only events of this type or pattern (message.new, message.*)')
    .option('--status <list>', 'only these statuses, comma-separated: pending, succeeded, dead, cancelled')
    .option('--ordering-key <key>', 'only deliveries of events with this ordering key')
    .addHelpText(
      'after',
      examples(
        'hookbox deliveries list --tenant acme',
        'hookbox deliveries list --tenant acme --status dead --since 24h',
        "hookbox deliveries list --tenant acme --event-type 'message.*' --limit 200 --json",
        'hookbox deliveries list --all-tenants --status pending --cursor dlv_1234',
        'hookbox deliveries list --tenant acme --ordering-key conversation:42 --status pending,dead',
      ),
    )
    .action(async (opts: ListFlags) => {
      const input = {
        ...pageInput(opts),
        ...(opts.subscription === undefined
          ? {}
          : { subscriptionId: uuidArg(opts.subscription, '--subscription', 'a subscription') }),
        ...(opts.eventType === undefined ? {} : { eventType: opts.eventType }),
        ...(opts.status === undefined
          ? {}
          : { status: opts.status.split(',').map((s) => s.trim()) as DeliveryStatus[] }),
        ...(opts.orderingKey === undefined ? {} : { orderingKey: opts.orderingKey }),
      };
      const page = await run(LOG_FLAGS, opts.databaseUrl, (c) => deliveryLog.listDeliveries(c, input));
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
      const ref = { tenantId: opts.tenant, id: deliveryIdArg(id) };
      const detail = await run(LOG_FLAGS, opts.databaseUrl, (c) => deliveryLog.getDelivery(c, ref));
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
          ['ordering', d.orderingKey === null ? '-' : `${d.orderingKey} #${d.orderingSeq}`],
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
