/**
 * `hookbox serve`: the REST API, its OpenAPI document and the web console (operator view
 * and embeddable tenant portal) on one port. Commander parses; serve/server.ts does the work.
 */
import { type Command, Option } from 'commander';
import pg from 'pg';
import { parseBindHost } from '../bind-host.js';
import { databaseUrlOption, LOG_LEVELS, resolveDatabaseUrl } from '../config.js';
import { UsageError } from '../errors.js';
import { createLogger } from '../logger.js';
import { parseWholeNumber } from '../option-text.js';
import { loadCatalogDir } from '../serve/catalog.js';
import { SERVE_DEFAULTS, startServe } from '../serve/server.js';
import { collect, untilSignal } from './flags.js';
import { withFlagNames } from './output.js';

interface ServeFlags {
  databaseUrl?: string;
  port: string;
  host: string;
  catalog?: string;
  rateLimit: string;
  frameAncestors: string[];
  logLevel: string;
}

export function registerServe(program: Command): Command {
  return program
    .command('serve')
    .description('serve the REST API, /openapi.json and the web console (operators and tenant portal)')
    .addOption(databaseUrlOption())
    .addOption(
      new Option('--port <port>', 'port to listen on (0 picks a free one)')
        .env('HOOKBOX_SERVE_PORT')
        .default(String(SERVE_DEFAULTS.port)),
    )
    .addOption(new Option('--host <host>', 'interface to bind').env('HOOKBOX_SERVE_HOST').default(SERVE_DEFAULTS.host))
    .addOption(
      new Option(
        '--catalog <dir>',
        'event catalog: a directory of <type>.json files ({ type, description, schema, example })',
      ).env('HOOKBOX_CATALOG'),
    )
    .addOption(
      new Option('--rate-limit <n>', 'requests a minute per API key or tenant (bursts of a sixth of it)')
        .env('HOOKBOX_RATE_LIMIT')
        .default(String(SERVE_DEFAULTS.rateLimitPerMinute)),
    )
    .option(
      '--frame-ancestors <origin>',
      'an origin allowed to embed the portal in an iframe (repeatable; default: this origin only)',
      collect,
      [],
    )
    .addOption(
      new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).env('HOOKBOX_LOG_LEVEL').default('info'),
    )
    .addHelpText(
      'after',
      `
Credentials go in the Authorization header: an operator API key (hookbox api-keys create)
sees every tenant; a portal token (hookbox portal-token, or createPortalToken in your app)
sees one tenant. Open the console at /console and a tenant's portal at
/portal#token=<portal token> (the token stays in the URL fragment: never sent, never logged).

Examples:
  $ hookbox serve --database-url postgres://app@db/app
  $ hookbox serve --port 8080 --catalog apps/example-crm/catalog
  $ hookbox serve --frame-ancestors https://app.example.com   # embed the portal in your app`,
    )
    .action(async (flags: ServeFlags) => {
      const databaseUrl = resolveDatabaseUrl(flags.databaseUrl);
      const port = parseWholeNumber(flags.port, '--port', 0, 65_535);
      const host = parseBindHost(flags.host, '--host');
      const rateLimit = parseWholeNumber(flags.rateLimit, '--rate-limit', 1, 1_000_000);
      for (const origin of flags.frameAncestors) {
        if (!/^https?:\/\/[^\s/;,]+$/.test(origin)) {
          throw new UsageError(
            `--frame-ancestors: must be an origin like https://app.example.com (got ${JSON.stringify(origin)})`,
          );
        }
      }
      const catalogDir = flags.catalog;
      const catalog = catalogDir
        ? await withFlagNames({ catalog: '--catalog' }, async () => loadCatalogDir(catalogDir))
        : [];
      const logger = createLogger(flags.logLevel, process.stderr);
      const db = new pg.Pool({ connectionString: databaseUrl, max: 10, application_name: 'hookbox-serve' });
      db.on('error', (err) => logger.warn({ err }, 'idle database connection failed'));
      const serve = await startServe({
        db,
        logger,
        port,
        host,
        catalog,
        rateLimitPerMinute: rateLimit,
        frameAncestors: flags.frameAncestors,
      }).catch(async (err) => {
        await db.end();
        throw err;
      });
      process.stdout.write(
        `hookbox serve: ${serve.url}  console ${serve.url}/console  API ${serve.url}/v1  OpenAPI ${serve.url}/openapi.json\n`,
      );
      await untilSignal();
      await serve.close();
      await db.end();
    });
}
