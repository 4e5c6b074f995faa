/**
 * Replay and recovery from the shell: `hookbox replay` (bulk recovery of dead deliveries),
 * plus `deliveries retry` and `events replay` attached to the groups `registerDeliveries` /
 * `registerEvents` made. Commander parses; `@hookbox/outbox` does the work.
 */
import {
  type RecoverDeadResult,
  type ReplayedDelivery,
  recoverDead,
  replayEvent,
  retryDelivery,
} from '@hookbox/outbox/admin';
import { type Command, Option } from 'commander';
import { databaseUrlOption } from '../config.js';
import { UsageError } from '../errors.js';
import { parseWholeNumber } from '../option-text.js';
import { deliveriesCommand } from './deliveries.js';
import { eventsCommand } from './events.js';
import { deliveryIdArg, examples, parseTimeFlag, run as runWith, uuidArg } from './flags.js';
import { formatTable, formatCount as n, printJson, progress } from './output.js';

/** Library field → what the operator typed, for error messages. */
const FLAGS: Record<string, string> = {
  tenantId: '--tenant',
  allTenants: '--all-tenants',
  subscriptionId: '--subscription',
  since: '--since',
  until: '--until',
  limit: '--limit',
  batchSize: '--batch-size',
  id: 'ID',
  eventId: 'EVENT_ID',
};

const run = <T>(databaseUrl: string | undefined, fn: Parameters<typeof runWith<T>>[2]) =>
  runWith(FLAGS, databaseUrl, fn);

function deliveryTable(items: readonly ReplayedDelivery[]): string {
  return formatTable(
    ['ID', 'SUBSCRIPTION', 'STATUS', 'REPLAYS'],
    items.map((d) => [String(d.id), d.subscriptionId, d.status, d.replayOf === null ? '-' : String(d.replayOf)]),
  );
}

export function registerReplay(program: Command): void {
  registerRecover(program);
  registerRetry(deliveriesCommand(program));
  registerEventReplay(eventsCommand(program));
}

// ---- hookbox replay ---------------------------------------------------------------------

interface RecoverFlags {
  tenant?: string;
  allTenants?: boolean;
  subscription?: string;
  since?: string;
  until?: string;
  limit?: string;
  batchSize: string;
  dryRun?: boolean;
  json?: boolean;
  databaseUrl?: string;
}

function recoverSummary(r: RecoverDeadResult, limit: number | undefined): string {
  const skipped = [
    r.alreadyReplayed > 0 ? `${n(r.alreadyReplayed)} already replayed` : '',
    r.subscriptionDisabled > 0 ? `${n(r.subscriptionDisabled)} to disabled subscriptions` : '',
  ].filter(Boolean);
  const tail = skipped.length > 0 ? ` (skipped ${skipped.join(', ')})` : '';
  const head = r.dryRun
    ? `dry run: would replay ${n(r.replayed)} of ${n(r.matched)} dead deliveries${tail}; nothing was written`
    : `replayed ${n(r.replayed)} of ${n(r.matched)} dead deliveries${tail}`;
  const endpoints =
    r.bySubscription.length === 0
      ? ''
      : `\n${formatTable(
          ['subscription', 'tenant', 'url', r.dryRun ? 'would replay' : 'replayed'],
          r.bySubscription.map((s) => [s.subscriptionId, s.tenantId, s.url, n(s.count)]),
        )}`;
  const body = `${head}${endpoints}`;
  return r.limitReached
    ? `${body}\nstopped at --limit ${n(limit ?? r.replayed)}; more may be left: run again (it replays nothing when none are)`
    : body;
}

function registerRecover(program: Command): void {
  program
    .command('replay')
    .description('bulk recovery: replay dead deliveries as new deliveries (never the same one twice)')
    .addOption(new Option('--tenant <id>', "only this tenant's dead deliveries").conflicts('allTenants'))
    .option('--all-tenants', 'every tenant (operators only)')
    .option('--subscription <id>', 'only deliveries to this subscription')
    .option('--since <when>', 'went dead at or after: a duration ago (24h, 7d) or an ISO 8601 time')
    .option('--until <when>', 'went dead before: a duration ago or an ISO 8601 time')
    .option('--limit <n>', 'replay at most this many (default: all)')
    .option('--batch-size <n>', 'dead deliveries examined per statement (1–10000)', '500')
    .option('--dry-run', 'say what would be replayed; write nothing')
    .option('--json', 'print the summary as JSON')
    .addOption(databaseUrlOption())
    .addHelpText(
      'after',
      `
Replays are new pending deliveries (due now) that point at the dead one (replay_of); the
delivery log keeps every earlier attempt. A dead delivery that already has a later delivery
of the same event to the same endpoint is skipped, so running it twice replays nothing twice.
Progress goes to stderr when it is a terminal.
${examples(
  'hookbox replay --tenant acme --since 24h --dry-run',
  'hookbox replay --tenant acme --subscription $SUB --since 2025-01-31T10:00:00Z --until 2025-01-31T12:00:00Z',
  'hookbox replay --all-tenants --since 6h --limit 10000 --json',
)}`,
    )
    .action(async (opts: RecoverFlags) => {
      if (!opts.tenant && !opts.allTenants)
        throw new UsageError('give --tenant <id>, or --all-tenants for every tenant');
      const now = Date.now();
      const limit = opts.limit === undefined ? undefined : parseWholeNumber(opts.limit, '--limit', 1, 10_000_000);
      const input = {
        ...(opts.allTenants ? { allTenants: true } : { tenantId: opts.tenant as string }),
        ...(opts.subscription === undefined
          ? {}
          : { subscriptionId: uuidArg(opts.subscription, '--subscription', 'a subscription') }),
        ...(opts.since === undefined ? {} : { since: parseTimeFlag(opts.since, '--since', now) }),
        ...(opts.until === undefined ? {} : { until: parseTimeFlag(opts.until, '--until', now) }),
        ...(limit === undefined ? {} : { limit }),
        batchSize: parseWholeNumber(opts.batchSize, '--batch-size', 1, 10_000),
        dryRun: opts.dryRun === true,
      };
      const bar = progress();
      const verb = input.dryRun ? 'would replay' : 'replayed';
      const result = await run(opts.databaseUrl, (c) =>
        recoverDead(c, {
          ...input,
          onProgress: (p) => bar.update(`replay: ${verb} ${n(p.replayed)} of ${n(p.matched)} dead so far…`),
        }),
      ).finally(() => bar.done());
      if (opts.json) return printJson(result);
      console.log(recoverSummary(result, limit));
    });
}

// ---- deliveries retry / events replay ---------------------------------------------------

function registerRetry(deliveries: Command): void {
  deliveries
    .command('retry')
    .description('send a dead, cancelled or failed delivery again now, as a new delivery')
    .argument('<id>', 'the delivery id')
    .requiredOption('--tenant <id>', 'tenant that owns the delivery')
    .option('--json', 'print the new delivery as JSON')
    .addOption(databaseUrlOption())
    .addHelpText(
      'after',
      `
The new delivery is due now and points at the old one (replay_of); the old one and its
attempts stay in the log. A failed delivery still waiting for its next try is cancelled and
replaced, so the endpoint gets one request. If one is already pending, nothing is added.
${examples('hookbox deliveries retry 1234 --tenant acme', 'hookbox deliveries retry 1234 --tenant acme --json')}`,
    )
    .action(async (id: string, opts: { tenant: string; json?: boolean; databaseUrl?: string }) => {
      const ref = { tenantId: opts.tenant, id: deliveryIdArg(id) };
      const { delivery, created } = await run(opts.databaseUrl, (c) => retryDelivery(c, ref));
      if (opts.json) return printJson({ created, delivery });
      console.log(
        created
          ? `created delivery ${delivery.id} (replays ${id}); a running relay sends it now`
          : `delivery ${delivery.id} of the same event to the same endpoint is already pending; nothing added`,
      );
    });
}

function registerEventReplay(events: Command): void {
  events
    .command('replay')
    .description('send an event again to its current matching subscriptions (or one), as new deliveries')
    .argument('<event-id>', 'the event id (its webhook-id)')
    .requiredOption('--tenant <id>', 'tenant that owns the event')
    .option('--subscription <id>', 'only this subscription (it must be active and match the event type)')
    .option('--json', 'print the new deliveries as JSON')
    .addOption(databaseUrlOption())
    .addHelpText(
      'after',
      `
Goes to the subscriptions that are active and match the event type now, which may differ
from those it first went to. An endpoint with a delivery of the event still pending is not
sent a second one.
${examples(
  'hookbox events replay 0190f3c2-7d1e-7b3a-9c4f-2b8e5d6a1f00 --tenant acme',
  'hookbox events replay $EVENT --tenant acme --subscription $SUB --json',
)}`,
    )
    .action(
      async (
        eventId: string,
        opts: { tenant: string; subscription?: string; json?: boolean; databaseUrl?: string },
      ) => {
        const input = {
          tenantId: opts.tenant,
          eventId: uuidArg(eventId, 'EVENT_ID', 'an event'),
          ...(opts.subscription === undefined
            ? {}
            : { subscriptionId: uuidArg(opts.subscription, '--subscription', 'a subscription') }),
        };
        const result = await run(opts.databaseUrl, (c) => replayEvent(c, input));
        if (opts.json) return printJson(result);
        if (result.created.length === 0 && result.alreadyPending.length === 0) {
          return console.log(`no active subscription of ${opts.tenant} matches this event now; nothing replayed`);
        }
        if (result.created.length > 0) {
          console.log(`replayed event ${result.eventId} to ${result.created.length} subscription(s):\n`);
          console.log(deliveryTable(result.created));
        }
        if (result.alreadyPending.length > 0) {
          console.log(`\nalready pending (not sent twice):\n`);
          console.log(deliveryTable(result.alreadyPending));
        }
      },
    );
}
