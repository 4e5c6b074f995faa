/**
 * `hookbox cleanup`: retention in bounded batches. Commander parses; `@hookbox/outbox`'s
 * `cleanup` does the work.
 */
import { cleanup } from '@hookbox/outbox/admin';
import type { Command } from 'commander';
import { databaseUrlOption } from '../config.js';
import { formatDuration, parseDuration } from '../duration.js';
import { parseWholeNumber } from '../option-text.js';
import { examples, run } from './flags.js';
import { formatCount as n, printJson, progress } from './output.js';

const FLAGS: Record<string, string> = {
  olderThanMs: '--older-than',
  batchSize: '--batch-size',
  maxBatches: '--max-batches',
};

interface CleanupFlags {
  olderThan: string;
  batchSize: string;
  maxBatches?: string;
  dryRun?: boolean;
  json?: boolean;
  databaseUrl?: string;
}

export function registerCleanup(program: Command): void {
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
      const batchSize = parseWholeNumber(opts.batchSize, '--batch-size', 1, 10_000);
      const maxBatches =
        opts.maxBatches === undefined ? undefined : parseWholeNumber(opts.maxBatches, '--max-batches', 1, 100_000_000);
      const bar = progress();
      const started = Date.now();
      const result = await run(FLAGS, opts.databaseUrl, (c) =>
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
