import type { Command } from 'commander';
import { databaseUrlOption, resolveDatabaseUrl } from '../config.js';
import { migrate } from '../migrate.js';

export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('apply hookbox database migrations (idempotent; safe to run from several processes at once)')
    .addOption(databaseUrlOption())
    .addHelpText(
      'after',
      '\nExamples:\n  $ hookbox migrate --database-url postgres://app@db/app\n  $ DATABASE_URL=postgres://app@db/app hookbox migrate',
    )
    .action(async (opts: { databaseUrl?: string }) => {
      const { applied, total } = await migrate(resolveDatabaseUrl(opts.databaseUrl));
      console.log(
        applied === 0
          ? `hookbox: database is up to date (${total} migrations)`
          : `hookbox: applied ${applied} migration(s); ${total} in total`,
      );
    });
}
