import { type Command, Option } from 'commander';
import pRetry from 'p-retry';
import pg from 'pg';
import { RELAY_DEFAULTS, RELAY_ENV, type RelayFlags, resolveRelayConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { startAdminServer } from '../metrics/admin-server.js';
import { createRelayMetrics } from '../metrics/metrics.js';
import { migrationStatus } from '../migrate.js';
import { startPeriodicCleanup } from '../relay/cleanup.js';
import { createRelay } from '../relay/relay.js';
import { VERSION } from '../version.js';

const env = (key: keyof typeof RELAY_ENV) => `[env: ${RELAY_ENV[key]}]`;

export function registerRelay(program: Command): void {
  program
    .command('relay')
    .description('run the relay daemon: fan out committed events, sign and deliver them, retry until done')
    .option('--database-url <url>', `PostgreSQL connection string ${env('databaseUrl')}`)
    .option(
      '--concurrency <n>',
      `HTTP requests in flight at most (default ${RELAY_DEFAULTS.concurrency}) ${env('concurrency')}`,
    )
    .option('--batch-size <n>', `events claimed per fan-out (default ${RELAY_DEFAULTS.batchSize}) ${env('batchSize')}`)
    .option(
      '--poll-interval <dur>',
      `poll period when no wake-up arrives (default ${RELAY_DEFAULTS.pollInterval}) ${env('pollInterval')}`,
    )
    .option(
      '--lease <dur>',
      `claim lease; must exceed --request-timeout (default ${RELAY_DEFAULTS.lease}) ${env('lease')}`,
    )
    .option(
      '--request-timeout <dur>',
      `total time per HTTP attempt (default ${RELAY_DEFAULTS.requestTimeout}) ${env('requestTimeout')}`,
    )
    .option(
      '--retry-schedule <list>',
      `delays after each failed attempt (default ${RELAY_DEFAULTS.retrySchedule}) ${env('retrySchedule')}`,
    )
    .option(
      '--max-attempts <n>',
      `attempts in all before a delivery is dead (default: schedule length + 1) ${env('maxAttempts')}`,
    )
    .option(
      '--retry-jitter <fraction>',
      `random spread of each delay, 0 to <1 (default ${RELAY_DEFAULTS.retryJitter}) ${env('retryJitter')}`,
    )
    .option(
      '--allow-private-network <cidr|host...>',
      `let deliveries reach these private/loopback CIDRs, IPs or hosts (space-separated or repeated; env: comma-separated) ${env('allowPrivateNetwork')}`,
    )
    .option('--require-https', `refuse plain http:// endpoints ${env('requireHttps')}`)
    .option('--exit-when-idle', `exit 0 once nothing is pending and every delivery is final ${env('exitWhenIdle')}`)
    .option(
      '--shutdown-grace <dur>',
      `wait for in-flight requests on SIGTERM (default ${RELAY_DEFAULTS.shutdownGrace}) ${env('shutdownGrace')}`,
    )
    .option(
      '--connections-per-origin <n>',
      `keep-alive connections and requests in flight per endpoint origin (default ${RELAY_DEFAULTS.connectionsPerOrigin}) ${env('connectionsPerOrigin')}`,
    )
    .option(
      '--max-response-bytes <n>',
      `response bytes kept in the delivery log (default ${RELAY_DEFAULTS.maxResponseBytes}) ${env('maxResponseBytes')}`,
    )
    .addOption(new Option('--log-level <level>', `log level (default ${RELAY_DEFAULTS.logLevel}) ${env('logLevel')}`))
    .option(
      '--metrics-port <port>',
      `serve /metrics, /healthz, /readyz on this port; "off" disables (default ${RELAY_DEFAULTS.metricsPort}) ${env('metricsPort')}`,
    )
    .option(
      '--metrics-host <host>',
      `interface the metrics port binds to (default ${RELAY_DEFAULTS.metricsHost}) ${env('metricsHost')}`,
    )
    .option(
      '--metrics-tenant-limit <n>',
      `tenants labelled on hookbox_tenant_deliveries_total, first seen first; the rest count as tenant="_other" (default ${RELAY_DEFAULTS.metricsTenantLimit}) ${env('metricsTenantLimit')}`,
    )
    .option(
      '--cleanup-older-than <dur>',
      `delete finished deliveries, their attempts and fanned-out events older than this, in small batches; "off" disables (default ${RELAY_DEFAULTS.cleanupOlderThan}; enable on one relay) ${env('cleanupOlderThan')}`,
    )
    .option(
      '--cleanup-interval <dur>',
      `time between cleanup runs (default ${RELAY_DEFAULTS.cleanupInterval}) ${env('cleanupInterval')}`,
    )
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
