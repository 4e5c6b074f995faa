import { type Command, Option } from 'commander';
import pRetry from 'p-retry';
import pg from 'pg';
import { RELAY_SETTINGS, type RelayFlags, type RelaySetting, resolveRelayConfig, settingHelp } from '../config.js';
import { createLogger } from '../logger.js';
import { startAdminServer } from '../metrics/admin-server.js';
import { createRelayMetrics } from '../metrics/metrics.js';
import { migrationStatus } from '../migrate.js';
import { startPeriodicCleanup } from '../relay/cleanup.js';
import { createRelay } from '../relay/relay.js';
import { VERSION } from '../version.js';

export function registerRelay(program: Command): void {
  const command = program
    .command('relay')
    .description('run the relay daemon: fan out committed events, sign and deliver them, retry until done');
  // Every option comes from the one settings table (config.ts).
  for (const key of Object.keys(RELAY_SETTINGS) as RelaySetting[]) {
    command.addOption(new Option(RELAY_SETTINGS[key].flags, settingHelp(key)));
  }
  command
    .addHelpText(
      'after',
      `
Durations take units: 250ms, 5s, 5m, 2h, 1d.

Examples:
  $ hookbox relay --database-url postgres://app@db/app
  $ hookbox relay --concurrency 128 --retry-schedule 5s,5m,30m --require-https
  $ hookbox relay --metrics-port 9464        # Prometheus: http://127.0.0.1:9464/metrics
  $ hookbox relay --cleanup-older-than 30d   # retention: keep 30 days of delivery log
  $ hookbox relay --allow-private-network 127.0.0.0/8 --exit-when-idle   # local testing`,
    )
    .action(async (flags: RelayFlags) => {
      await runRelay(flags);
    });
}

/** Refuses to start against a database that is unreachable or not migrated to this version. */
async function checkSchema(db: pg.Pool): Promise<void> {
  const client = await pRetry(() => db.connect(), { retries: 3, minTimeout: 200 }).catch((err: Error) => {
    throw new Error(`cannot reach the database: ${err.message}`);
  });
  try {
    const { expected, applied } = await migrationStatus(client);
    if (applied < expected) {
      throw new Error(`the database has ${applied} of ${expected} hookbox migrations: run \`hookbox migrate\` first`);
    }
  } finally {
    client.release();
  }
}

export async function runRelay(flags: RelayFlags): Promise<void> {
  const {
    options,
    logLevel,
    metrics: metricsConfig,
    cleanup,
  } = resolveRelayConfig(flags, process.env, `hookbox/${VERSION}`);
  const logger = createLogger(logLevel);
  const db = new pg.Pool({
    connectionString: options.databaseUrl,
    max: 4,
    application_name: 'hookbox-relay',
    // Losing the last few ms of relay writes on a crash can only cause a redelivery (the
    // lease expires), never a loss; in exchange commits do not wait for the WAL flush.
    options: '-c synchronous_commit=off -c statement_timeout=60000',
    // A database that stops answering must surface as errors the relay retries and logs,
    // not as calls that hang for as long as TCP takes to give up.
    connectionTimeoutMillis: 10_000,
  });
  // The relay logs dropped idle connections itself once started; this covers the time before.
  const onEarlyError = (err: Error) => logger.warn({ err }, 'idle database connection failed; it will be replaced');
  db.on('error', onEarlyError);
  await checkSchema(db).catch(async (err) => {
    await db.end();
    throw err;
  });
  const metrics =
    metricsConfig.port === null
      ? null
      : createRelayMetrics({ db, logger: logger.child({ part: 'metrics' }), tenantLimit: metricsConfig.tenantLimit });
  // Started before the relay, so a port already in use fails the command at once.
  const admin = metrics
    ? await startAdminServer({
        db,
        registry: metrics.registry,
        logger: logger.child({ part: 'admin' }),
        host: metricsConfig.host,
        port: metricsConfig.port ?? 0,
      }).catch(async (err) => {
        await db.end();
        throw err;
      })
    : null;
  metrics?.start();
  const relay = createRelay({ db, logger, options, observer: metrics?.observer });

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    logger.info({ signal }, 'stopping: finishing in-flight deliveries');
    void relay.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  relay.start();
  db.off('error', onEarlyError); // the relay logs them itself from here on
  const periodicCleanup =
    cleanup.olderThanMs === null
      ? null
      : startPeriodicCleanup({
          db,
          logger: logger.child({ part: 'cleanup' }),
          olderThanMs: cleanup.olderThanMs,
          intervalMs: cleanup.intervalMs,
        });
  await relay.done;
  await periodicCleanup?.stop();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  await admin?.close();
  await metrics?.stop();
  await db.end();
}
