/**
 * `hookbox portal-token --tenant T --ttl 1h`: a short-lived token that scopes the API and
 * the portal to one tenant. Host apps mint them per signed-in user with the library's
 * `createPortalToken` instead.
 */
import { createPortalToken } from '@hookbox/outbox/api';
import type { Command } from 'commander';
import { databaseUrlOption } from '../config.js';
import { parseDuration } from '../duration.js';
import { UsageError } from '../errors.js';
import { printJson, withClient, withFlagNames } from './output.js';

export function registerPortalToken(program: Command): void {
  program
    .command('portal-token')
    .description("mint a short-lived portal token for one tenant (the API and the portal see that tenant's data only)")
    .requiredOption('--tenant <id>', 'the tenant')
    .option('--ttl <duration>', 'lifetime: 1m to 7d', '1h')
    .option('--url <base>', 'also print the portal link under this hookbox serve address')
    .addOption(databaseUrlOption())
    .option('--json', 'print JSON ({ token, tenantId, expiresAt })')
    .addHelpText(
      'after',
      `
The token goes in Authorization: Bearer <token>, or in the portal's URL fragment
(/portal#token=<token>), which browsers never send to a server.

Examples:
  $ hookbox portal-token --tenant acme
  $ hookbox portal-token --tenant acme --ttl 15m --url http://127.0.0.1:8080`,
    )
    .action(async (opts: { tenant: string; ttl: string; url?: string; databaseUrl?: string; json?: boolean }) => {
      const ms = parseDuration(opts.ttl, '--ttl');
      if (ms % 1000 !== 0) throw new UsageError('--ttl: must be whole seconds');
      const token = await withFlagNames({ tenantId: '--tenant', ttlSeconds: '--ttl' }, () =>
        withClient(opts.databaseUrl, (c) => createPortalToken(c, { tenantId: opts.tenant, ttlSeconds: ms / 1000 })),
      );
      if (opts.json) return printJson(token);
      process.stdout.write(`${token.token}\n`);
      if (opts.url) process.stdout.write(`${opts.url.replace(/\/+$/, '')}/portal#token=${token.token}\n`);
      process.stderr.write(`portal token for tenant ${token.tenantId}, expires ${token.expiresAt.toISOString()}\n`);
    });
}
