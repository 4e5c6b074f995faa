/**
 * `hookbox events list|show`: the outbox's events and how each fanned out. Commander
 * parses; `@hookbox/outbox`'s `deliveryLog` does the work.
 *
 * More subcommands (e.g. `events replay`) attach to the same group through
 * `eventsCommand(program)`, which creates the group once and returns it after.
 */
import { deliveryLog, type FanoutSummary } from '@hookbox/outbox/admin';
import type { Command } from 'commander';
import { databaseUrlOption } from '../config.js';
import { deliveriesTable } from './deliveries.js';
import {
  commandGroup,
  examples,
  LOG_FLAGS,
  type PageFlags,
  pageInput,
  pageOptions,
  run,
  scopeOptions,
  uuidArg,
} from './flags.js';
import { formatFields, formatTable, formatTime, printJson, stringifyJson } from './output.js';

/** `3: 2 succeeded, 1 dead`, or `none` when the event matched no subscription. */
export function fanoutText(f: FanoutSummary, fannedOut: boolean): string {
  if (!fannedOut) return 'not fanned out yet';
  if (f.total === 0) return 'none';
  const parts = (['succeeded', 'pending', 'dead', 'cancelled'] as const)
    .filter((k) => f[k] > 0)
    .map((k) => `${f[k]} ${k}`);
  return `${f.total}: ${parts.join(', ')}`;
}

/** The `events` command group, created on first use; later calls return the same one. */
export function eventsCommand(program: Command): Command {
  return commandGroup(
    program,
    'events',
    'the outbox: enqueued events and their fan-out to subscriptions',
    "hookbox events list --tenant acme --type 'message.*' --since 1h",
    'hookbox events show 01a2…-uuid --tenant acme',
    'hookbox events replay 01a2…-uuid --tenant acme',
  );
}

interface ListFlags extends PageFlags {
  type?: string;
}

/** Registers `events list` and `events show`; returns the group. */
export function registerEvents(program: Command): Command {
  const group = eventsCommand(program);

  pageOptions(scopeOptions(group.command('list'), 'events'))
    .description('list events, newest first, with their fan-out (keyset-paginated: pass --cursor for the next page)')
    .option('--type <type>', 'only events of this type or pattern (message.new, message.*)')
    .addHelpText(
      'after',
      examples(
        'hookbox events list --tenant acme',
        "hookbox events list --tenant acme --type 'message.*' --since 1h --json",
        'hookbox events list --all-tenants --limit 20',
      ),
    )
    .action(async (opts: ListFlags) => {
      const input = { ...pageInput(opts), ...(opts.type === undefined ? {} : { type: opts.type }) };
      const page = await run(LOG_FLAGS, opts.databaseUrl, (c) => deliveryLog.listEvents(c, input));
      if (opts.json) return printJson(page);
      if (page.items.length === 0) return console.log('no events');
      const withTenant = 'allTenants' in input;
      const rows = page.items.map((e) => [
        e.id,
        formatTime(e.createdAt),
        e.type,
        ...(withTenant ? [e.tenantId] : []),
        fanoutText(e.deliveries, e.fannedOutAt !== null),
      ]);
      console.log(formatTable(['ID', 'CREATED', 'TYPE', ...(withTenant ? ['TENANT'] : []), 'DELIVERIES'], rows));
      if (page.nextCursor) console.log(`\nmore: --cursor ${page.nextCursor}`);
    });

  group
    .command('show')
    .description('show one event: its payload and every delivery made of it')
    .argument('<id>', 'event id (the webhook-id)')
    .requiredOption('--tenant <id>', 'tenant that owns the event')
    .addOption(databaseUrlOption())
    .option('--json', 'print JSON ({ event, deliveries }) instead of text')
    .addHelpText(
      'after',
      examples(
        'hookbox events show 0190a5c4-…-id --tenant acme',
        'hookbox events show 0190a5c4-…-id --tenant acme --json',
      ),
    )
    .action(async (id: string, opts: { tenant: string; databaseUrl?: string; json?: boolean }) => {
      const ref = { tenantId: opts.tenant, id: uuidArg(id, 'ID', 'an event') };
      const detail = await run(LOG_FLAGS, opts.databaseUrl, (c) => deliveryLog.getEvent(c, ref));
      if (opts.json) return printJson(detail);
      const e = detail.event;
      console.log(
        formatFields([
          ['id', e.id],
          ['tenant', e.tenantId],
          ['type', e.type],
          ['idempotency key', e.idempotencyKey ?? '-'],
          [
            'ordering',
            e.orderingKey === null ? '-' : `${e.orderingKey} #${e.orderingSeq ?? '- (numbered at fan-out)'}`,
          ],
          ['created', formatTime(e.createdAt)],
          ['fanned out', formatTime(e.fannedOutAt)],
          ['deliveries', fanoutText(e.deliveries, e.fannedOutAt !== null)],
        ]),
      );
      // stringifyJson: a stored payload may be nested deeper than JSON.stringify can print.
      console.log(`\npayload:\n${stringifyJson(e.payload, 2)}`);
      if (detail.deliveries.length > 0) console.log(`\n${deliveriesTable(detail.deliveries, false)}`);
    });

  return group;
}
