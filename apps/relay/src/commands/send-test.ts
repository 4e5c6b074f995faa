/**
 * `hookbox send-test`: one test event for one endpoint, sent by a running relay, and its
 * outcome. Commander parses; `@hookbox/outbox`'s `sendTest` and `deliveryOutcome` do the work.
 */
import { type DeliveryOutcome, deliveryOutcome, sendTest, TEST_EVENT_TYPE } from '@hookbox/outbox/admin';
import type { Command } from 'commander';
import { databaseUrlOption } from '../config.js';
import { formatDuration, parseDuration } from '../duration.js';
import { UsageError } from '../errors.js';
import { examples, run, uuidArg } from './flags.js';
import { printJson } from './output.js';

const FLAGS: Record<string, string> = { tenantId: '--tenant', subscriptionId: '--subscription', type: '--type' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

export function registerSendTest(program: Command): void {
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
      const subscriptionId = uuidArg(opts.subscription, '--subscription', 'a subscription');
      await run(FLAGS, opts.databaseUrl, async (c) => {
        const sent = await sendTest(c, { tenantId: opts.tenant, subscriptionId, type: opts.type });
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
