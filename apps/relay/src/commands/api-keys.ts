/**
 * `hookbox api-keys create|list|revoke`: operator API keys of `hookbox serve`. A key is
 * printed once, by create; the database keeps only its hash.
 */
import { createApiKey, listApiKeys, revokeApiKey } from '@hookbox/outbox/api';
import type { Command } from 'commander';
import { databaseUrlOption } from '../config.js';
import { formatTable, formatTime, printJson, withClient } from './output.js';

export function registerApiKeys(program: Command): void {
  const group = program
    .command('api-keys')
    .description('operator API keys for hookbox serve (every tenant)')
    .addHelpText(
      'after',
      `
Examples:
  $ hookbox api-keys create --name grafana
  $ hookbox api-keys list
  $ hookbox api-keys revoke 0192f7c4-…`,
    );
  group
    .command('create')
    .description('create a key and print it (once: only its hash is stored)')
    .requiredOption('--name <name>', 'what the key is for')
    .addOption(databaseUrlOption())
    .option('--json', 'print JSON')
    .action(async (opts: { name: string; databaseUrl?: string; json?: boolean }) => {
      const key = await withClient(opts.databaseUrl, (c) => createApiKey(c, { name: opts.name }));
      if (opts.json) return printJson(key);
      process.stdout.write(
        `${key.key}\n\napi key ${key.id} (${key.name}) created. It is shown this once: store it now.\nUse it as: Authorization: Bearer ${key.prefix}…\n`,
      );
    });
  group
    .command('list')
    .description('list keys (never the keys themselves)')
    .addOption(databaseUrlOption())
    .option('--json', 'print JSON')
    .action(async (opts: { databaseUrl?: string; json?: boolean }) => {
      const keys = await withClient(opts.databaseUrl, (c) => listApiKeys(c));
      if (opts.json) return printJson(keys);
      if (keys.length === 0) return console.log('no api keys');
      console.log(
        formatTable(
          ['ID', 'NAME', 'PREFIX', 'CREATED', 'LAST USED', 'REVOKED'],
          keys.map((k) => [
            k.id,
            k.name,
            `${k.prefix}…`,
            formatTime(k.createdAt),
            formatTime(k.lastUsedAt),
            formatTime(k.revokedAt),
          ]),
        ),
      );
    });
  group
    .command('revoke')
    .description('revoke a key: refused from the next request on')
    .argument('<id>', 'the key id (from list)')
    .addOption(databaseUrlOption())
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { databaseUrl?: string; json?: boolean }) => {
      const key = await withClient(opts.databaseUrl, (c) => revokeApiKey(c, { id }));
      if (opts.json) return printJson(key);
      console.log(`api key ${key.id} (${key.name}) revoked at ${formatTime(key.revokedAt)}`);
    });
}
