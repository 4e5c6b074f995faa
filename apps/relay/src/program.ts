/**
 * The `hookbox` program: every command and its options, without running anything (cli.ts
 * runs it). Tests walk it to check every command, e.g. for its exit codes.
 */
import { Command } from 'commander';
import { registerApiKeys } from './commands/api-keys.js';
import { registerCleanup } from './commands/cleanup.js';
import { registerDeliveries } from './commands/deliveries.js';
import { registerEvents } from './commands/events.js';
import { registerListen } from './commands/listen.js';
import { registerMigrate } from './commands/migrate.js';
import { registerPortalToken } from './commands/portal-token.js';
import { registerRelay } from './commands/relay.js';
import { registerReplay } from './commands/replay.js';
import { registerSendTest } from './commands/send-test.js';
import { registerServe } from './commands/serve.js';
import { registerStats } from './commands/stats.js';
import { registerSubscriptions } from './commands/subscriptions.js';
import { VERSION } from './version.js';

export function buildProgram(): Command {
  const program = new Command('hookbox')
    .description('hookbox: turns committed Postgres outbox rows into signed, retried webhooks')
    .version(VERSION)
    .option('--verbose', 'print stack traces of errors')
    .addHelpText(
      'after',
      `
Every command has --help with examples. DATABASE_URL or --database-url picks the database.

Examples:
  $ hookbox migrate --database-url postgres://app@db/app
  $ hookbox relay --metrics-port 9464
  $ hookbox subscriptions create --tenant acme --url https://hooks.acme.example/crm --events 'message.*'
  $ hookbox deliveries list --tenant acme --status dead --since 24h
  $ hookbox listen --port 9000 --secret whsec_...
  $ hookbox serve --port 8080   # REST API, /openapi.json, web console`,
    )
    .exitOverride();
  registerMigrate(program);
  registerSubscriptions(program);
  registerDeliveries(program);
  registerEvents(program);
  registerStats(program);
  registerRelay(program);
  registerListen(program);
  registerReplay(program);
  registerSendTest(program);
  registerCleanup(program);
  registerServe(program);
  registerApiKeys(program);
  registerPortalToken(program);
  return program;
}
