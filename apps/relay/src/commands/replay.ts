/**
 * Replay, recovery and retention from the shell: `hookbox replay` (bulk recovery of dead
 * deliveries), `hookbox send-test`, `hookbox cleanup`, plus `deliveries retry` and
 * `events replay` attached to the groups `registerDeliveries` / `registerEvents` made.
 * Commander parses; `@hookbox/outbox` does the work.
 */
import {
  cleanup,
  type DeliveryOutcome,
  deliveryOutcome,
  type RecoverDeadResult,
  type ReplayedDelivery,
  recoverDead,
  replayEvent,
  retryDelivery,
  sendTest,
  TEST_EVENT_TYPE,
} from '@hookbox/outbox';
import { type Command, Option } from 'commander';
import type pg from 'pg';
import { databaseUrlOption } from '../config.js';
import { formatDuration, parseDuration } from '../duration.js';
import { UsageError } from '../errors.js';
import { formatTable, parseIntFlag, printJson, withClient, withFlagNames } from './output.js';

/** Library field → what the operator typed, for error messages. */
const FLAGS: Record<string, string> = {
  tenantId: '--tenant',
  subscriptionId: '--subscription',
  since: '--since',
  until: '--until',
  limit: '--limit',
  batchSize: '--batch-size',
  maxBatches: '--max-batches',
  olderThanMs: '--older-than',
  type: '--type',
  id: 'ID',
  eventId: 'EVENT_ID',
};

function run<T>(databaseUrl: string | undefined, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  return withFlagNames(FLAGS, () => withClient(databaseUrl, fn));
}

const examples = (...lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}`;
const n = (x: number) => x.toLocaleString('en-US');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A time flag: a duration ago (`24h`, `7d`) or an ISO 8601 time. */
export function parseWhen(text: string, flag: string, now = Date.now()): Date {
  const t = text.trim();
  if (/^\d{4}-\d\d-\d\d/.test(t)) {
    const ms = Date.parse(t);
    if (Number.isFinite(ms)) return new Date(ms);
  } else {
    try {
      return new Date(now - parseDuration(t, flag));
    } catch {
      // Fall through to the message that names both forms.
    }
  }
  throw new UsageError(
    `${flag}: must be a duration ago (24h, 7d) or an ISO 8601 time like 2025-01-31T12:00:00Z (got ${JSON.stringify(text)})`,
  );
}

/** One progress line on stderr, rewritten in place; only when stderr is a terminal. */
function progress(): { update(line: string): void; done(): void } {
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

function group(program: Command, name: string, description: string): Command {
  return program.commands.find((c) => c.name() === name) ?? program.command(name).description(description);
}

function deliveryTable(items: readonly ReplayedDelivery[]): string {
  return formatTable(
    ['ID', 'SUBSCRIPTION', 'STATUS', 'REPLAYS'],
    items.map((d) => [String(d.id), d.subscriptionId, d.status, d.replayOf === null ? '-' : String(d.replayOf)]),
  );
}

export function registerReplay(program: Command): void {
  registerRecover(program);
  registerSendTest(program);
  registerCleanup(program);
  registerRetry(group(program, 'deliveries', 'the delivery log: one row per (event, subscription)'));
  registerEventReplay(group(program, 'events', 'the outbox: enqueued events and their fan-out'));
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
  return r.limitReached ? `${body}\nstopped at --limit ${n(limit ?? r.replayed)}; run again for more` : body;
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
      const limit = opts.limit === undefined ? undefined : parseIntFlag(opts.limit, '--limit', 1, 10_000_000);
      const input = {
        ...(opts.allTenants ? { allTenants: true } : { tenantId: opts.tenant as string }),
        ...(opts.subscription === undefined ? {} : { subscriptionId: opts.subscription }),
        ...(opts.since === undefined ? {} : { since: parseWhen(opts.since, '--since', now) }),
        ...(opts.until === undefined ? {} : { until: parseWhen(opts.until, '--until', now) }),
        ...(limit === undefined ? {} : { limit }),
        batchSize: parseIntFlag(opts.batchSize, '--batch-size', 1, 10_000),
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

// ---- hookbox send-test ------------------------------------------------------------------

interface SendTestFlags {
  tenant: string;
  subscription: string;
  type: string;
  timeout: string;
  json?: boolean;
  databaseUrl?: string;
}

type Verdict = 'succeeded' | 'failed' | 'waiting';

/** Succeeded, failed (final, or an attempt failed and a retry is scheduled), or not yet. */
function verdict(o: DeliveryOutcome): Verdict {
  if (o.status === 'succeeded') return 'succeeded';
  if (o.status === 'dead' || o.status === 'cancelled') return 'failed';
  return o.lastAttempt?.errorClass ? 'failed' : 'waiting';
}

function attemptText(o: DeliveryOutcome): string {
  const a = o.lastAttempt;
  if (!a) return o.lastError ?? 'no attempt was made';
  const what = a.statusCode === null ? (a.errorClass ?? 'error') : `HTTP ${a.statusCode}`;
  return `${what} in ${a.durationMs}ms`;
}

function registerSendTest(program: Command): void {
  program
    .command('send-test')
    .description('send a test event to one endpoint through a running relay and report the outcome')
    .requiredOption('--subscription <id>', 'the endpoint (subscription) to test')
    .requiredOption('--tenant <id>', 'tenant that owns the subscription')
    .option('--type <type>', 'event type of the test event', TEST_EVENT_TYPE)
    .option('--timeout <dur>', 'how long to wait for the outcome', '30s')
    .option('--json', 'print the outcome as JSON')
    .addOption(databaseUrlOption())
    .addHelpText(
      'after',
      `
The test event and its one delivery are written directly: no other subscription receives it.
A relay must be running against the same database; it signs and sends the event like any
other. Exit 0 when the endpoint answered 2xx, 1 when it failed or nothing happened in time
(the delivery then stays in the log and the relay retries it on its schedule).
${examples(
  'hookbox send-test --tenant acme --subscription $SUB',
  'hookbox send-test --tenant acme --subscription $SUB --type message.new --timeout 10s --json',
)}`,
    )
    .action(async (opts: SendTestFlags) => {
      const timeoutMs = parseDuration(opts.timeout, '--timeout');
      if (timeoutMs < 100 || timeoutMs > 10 * 60_000) throw new UsageError('--timeout: must be from 100ms to 10m');
      await run(opts.databaseUrl, async (c) => {
        const sent = await sendTest(c, { tenantId: opts.tenant, subscriptionId: opts.subscription, type: opts.type });
        const deadline = Date.now() + timeoutMs;
        let outcome = await deliveryOutcome(c, { tenantId: opts.tenant, id: sent.deliveryId });
        while (verdict(outcome) === 'waiting' && Date.now() < deadline) {
          await sleep(Math.min(100, Math.max(0, deadline - Date.now())));
          outcome = await deliveryOutcome(c, { tenantId: opts.tenant, id: sent.deliveryId });
        }
        const v = verdict(outcome);
        const a = outcome.lastAttempt;
        const endToEndMs = a ? Math.round(a.startedAt.getTime() + a.durationMs - outcome.createdAt.getTime()) : null;
        const result = v === 'waiting' ? 'timeout' : v;
        if (opts.json) {
          printJson({
            result,
            eventId: sent.eventId,
            deliveryId: sent.deliveryId,
            status: outcome.status,
            httpStatus: a?.statusCode ?? null,
            errorClass: a?.errorClass ?? null,
            lastError: outcome.lastError,
            latencyMs: a?.durationMs ?? null,
            endToEndMs,
          });
        }
        const ref = `delivery ${sent.deliveryId}, event ${sent.eventId}`;
        if (result === 'succeeded') {
          if (!opts.json) {
            console.log(`succeeded: ${attemptText(outcome)}; received ${endToEndMs}ms after enqueue (${ref})`);
          }
          return;
        }
        if (result === 'timeout') {
          throw new Error(
            `no outcome within ${formatDuration(timeoutMs)} (${ref} is still pending): is a relay running against this database?`,
          );
        }
        if (!opts.json) {
          console.log(`failed: ${attemptText(outcome)}${outcome.lastError ? ` (${outcome.lastError})` : ''} (${ref})`);
        }
        throw new Error(
          outcome.status === 'pending'
            ? `test delivery failed; the relay retries it on its schedule (hookbox deliveries show ${sent.deliveryId} --tenant ${opts.tenant})`
            : `test delivery ${outcome.status}`,
        );
      });
    });
}

// ---- hookbox cleanup --------------------------------------------------------------------

interface CleanupFlags {
  olderThan: string;
  batchSize: string;
  maxBatches?: string;
  dryRun?: boolean;
  json?: boolean;
  databaseUrl?: string;
}

function registerCleanup(program: Command): void {
  program
    .command('cleanup')
    .description('delete finished deliveries, their attempts and fanned-out events past retention')
    .requiredOption('--older-than <dur>', 'retention: rows finished longer ago than this are deleted (e.g. 30d)')
    .option('--batch-size <n>', 'rows per DELETE statement (1–10000)', '1000')
    .option('--max-batches <n>', 'stop after this many statements; run again to continue (default: no limit)')
    .option('--dry-run', 'count what would be deleted; delete nothing')
    .option('--json', 'print the summary as JSON')
    .addOption(databaseUrlOption())
    .addHelpText(
      'after',
      `
Deletes in bounded batches, each its own short statement: no long locks, no table-wide
DELETE; safe while relays run. Never deletes a pending delivery (due, retrying or leased),
nor an event that still has any delivery. Progress goes to stderr when it is a terminal.
${examples('hookbox cleanup --older-than 30d --dry-run', 'hookbox cleanup --older-than 30d --batch-size 5000 --json')}`,
    )
    .action(async (opts: CleanupFlags) => {
      const olderThanMs = parseDuration(opts.olderThan, '--older-than');
      const batchSize = parseIntFlag(opts.batchSize, '--batch-size', 1, 10_000);
      const maxBatches =
        opts.maxBatches === undefined ? undefined : parseIntFlag(opts.maxBatches, '--max-batches', 1, 100_000_000);
      const bar = progress();
      const started = Date.now();
      const result = await run(opts.databaseUrl, (c) =>
        cleanup(c, {
          olderThanMs,
          batchSize,
          dryRun: opts.dryRun === true,
          ...(maxBatches === undefined ? {} : { maxBatches }),
          onBatch: (p) =>
            bar.update(
              `cleanup: ${n(p.deliveries)} deliveries, ${n(p.attempts)} attempts, ${n(p.events)} events deleted (${n(p.batches)} batches)…`,
            ),
        }),
      ).finally(() => bar.done());
      const durationMs = Date.now() - started;
      if (opts.json) return printJson({ ...result, olderThanMs, durationMs });
      const what = `${n(result.deliveries)} deliveries (${n(result.attempts)} attempts) and ${n(result.events)} events finished before ${result.cutoff.toISOString()} (older than ${formatDuration(olderThanMs)})`;
      if (result.dryRun) return console.log(`dry run: would delete ${what}; nothing was deleted`);
      console.log(`deleted ${what} in ${n(result.batches)} batches, ${formatDuration(durationMs)}`);
      if (!result.complete) console.log(`stopped after --max-batches ${n(maxBatches ?? 0)}; run again to continue`);
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
      const { delivery, created } = await run(opts.databaseUrl, (c) => retryDelivery(c, { tenantId: opts.tenant, id }));
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
        const result = await run(opts.databaseUrl, (c) =>
          replayEvent(c, {
            tenantId: opts.tenant,
            eventId,
            ...(opts.subscription === undefined ? {} : { subscriptionId: opts.subscription }),
          }),
        );
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
