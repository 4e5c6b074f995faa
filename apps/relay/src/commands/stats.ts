/**
 * `hookbox stats`: per subscription, attempts, success rate, latency percentiles, dead and
 * pending deliveries, last success/failure; per tenant, the usage operators bill or alert
 * on. Commander parses; `@hookbox/outbox`'s `stats` does the work.
 */
import { stats } from '@hookbox/outbox/admin';
import type { Command } from 'commander';
import { databaseUrlOption } from '../config.js';
import { examples, LOG_FLAGS, parseTimeFlag, run, type ScopeFlags, scopeFromFlags, scopeOptions } from './flags.js';
import { formatMs, formatTable, formatTime, printJson } from './output.js';

const percent = (rate: number | null) => (rate === null ? '-' : `${(rate * 100).toFixed(1)}%`);

export function registerStats(program: Command): Command {
  return scopeOptions(program.command('stats'), 'statistics')
    .description('delivery statistics per subscription and usage per tenant')
    .option('--since <when>', 'window start: a duration ago (1h, 7d) or an ISO 8601 time', '24h')
    .addOption(databaseUrlOption())
    .option('--json', 'print JSON ({ since, generatedAt, subscriptions, tenants }) instead of tables')
    .addHelpText(
      'after',
      `
Latency is the duration of HTTP attempts (p50/p95, interpolated); success rate is 2xx
attempts over all attempts; DEAD counts deliveries that died in the window, PENDING the
backlog now.${examples(
        'hookbox stats --tenant acme',
        'hookbox stats --tenant acme --since 7d --json',
        'hookbox stats --all-tenants --since 2024-05-01T00:00:00Z',
      )}`,
    )
    .action(async (opts: ScopeFlags & { since: string; databaseUrl?: string; json?: boolean }) => {
      const scope = scopeFromFlags(opts);
      const since = parseTimeFlag(opts.since, '--since');
      const result = await run(LOG_FLAGS, opts.databaseUrl, (c) => stats(c, { since, ...scope }));
      if (opts.json) return printJson(result);
      console.log(`since ${formatTime(result.since)} (as of ${formatTime(result.generatedAt)})\n`);
      const withTenant = 'allTenants' in scope;
      if (result.subscriptions.length === 0) console.log('no subscriptions');
      else {
        const rows = result.subscriptions.map((s) => [
          s.subscriptionId,
          ...(withTenant ? [s.tenantId] : []),
          String(s.attempts),
          percent(s.successRate),
          formatMs(s.p50Ms),
          formatMs(s.p95Ms),
          String(s.dead),
          String(s.pending),
          String(s.blockedKeys),
          formatTime(s.lastSuccessAt),
          formatTime(s.lastFailureAt),
          s.circuit,
          s.active ? s.url : `${s.url} (disabled)`,
        ]);
        const headers = ['SUBSCRIPTION', ...(withTenant ? ['TENANT'] : []), 'ATTEMPTS', 'SUCCESS', 'P50', 'P95'];
        console.log(
          formatTable(
            [...headers, 'DEAD', 'PENDING', 'BLOCKED KEYS', 'LAST SUCCESS', 'LAST FAILURE', 'CIRCUIT', 'URL'],
            rows,
          ),
        );
      }
      console.log('');
      if (result.tenants.length === 0) return console.log('no events or deliveries in the window');
      const rows = result.tenants.map((t) => [
        t.tenantId,
        String(t.events),
        String(t.deliveries),
        String(t.succeeded),
        String(t.dead),
        String(t.pending),
        String(t.cancelled),
        String(t.attempts),
      ]);
      console.log(
        formatTable(['TENANT', 'EVENTS', 'DELIVERIES', 'SUCCEEDED', 'DEAD', 'PENDING', 'CANCELLED', 'ATTEMPTS'], rows),
      );
    });
}
