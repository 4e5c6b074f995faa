/**
 * The relay's configuration: defaults in one place, flag > environment > default, validated
 * once here. Only the app reads the environment; the library never does.
 */
import { Option } from 'commander';
import { checkAllowList } from './delivery/ssrf.js';
import { formatDuration, parseDuration, parseDurationList } from './duration.js';
import { UsageError } from './errors.js';
import { defaultRetryPolicy } from './policy/retry.js';
import type { RelayOptions } from './relay/relay.js';

export function databaseUrlOption(): Option {
  return new Option('--database-url <url>', 'PostgreSQL connection string').env('DATABASE_URL');
}

/** The database URL from the flag (or DATABASE_URL, which commander already applied). */
export function resolveDatabaseUrl(flag: string | undefined): string {
  const url = flag ?? process.env.DATABASE_URL;
  if (!url) throw new UsageError('no database: pass --database-url or set DATABASE_URL');
  try {
    const u = new URL(url);
    if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new Error('scheme');
  } catch {
    throw new UsageError('--database-url: must be a postgres:// or postgresql:// URL');
  }
  return url;
}

/** Every relay setting's default, in one place. */
export const RELAY_DEFAULTS = {
  concurrency: 64,
  batchSize: 200,
  pollInterval: '250ms',
  lease: '60s',
  requestTimeout: '15s',
  retrySchedule: '5s,5m,30m,2h,5h,10h,10h',
  retryJitter: 0.1,
  shutdownGrace: '30s',
  connectionsPerOrigin: 32,
  maxResponseBytes: 4096,
  logLevel: 'info',
  /** The admin port (/metrics, /healthz, /readyz) is off unless a port is given. */
  metricsPort: 'off',
  metricsHost: '127.0.0.1',
  metricsTenantLimit: 100,
  /** Periodic retention cleanup inside the relay is off unless an age is given. */
  cleanupOlderThan: 'off',
  cleanupInterval: '1h',
} as const;

/** Flag name → environment variable. Flags win over the environment, which wins over defaults. */
export const RELAY_ENV = {
  databaseUrl: 'DATABASE_URL',
  concurrency: 'HOOKBOX_CONCURRENCY',
  batchSize: 'HOOKBOX_BATCH_SIZE',
  pollInterval: 'HOOKBOX_POLL_INTERVAL',
  lease: 'HOOKBOX_LEASE',
  requestTimeout: 'HOOKBOX_REQUEST_TIMEOUT',
  retrySchedule: 'HOOKBOX_RETRY_SCHEDULE',
  maxAttempts: 'HOOKBOX_MAX_ATTEMPTS',
  retryJitter: 'HOOKBOX_RETRY_JITTER',
  allowPrivateNetwork: 'HOOKBOX_ALLOW_PRIVATE_NETWORK',
  requireHttps: 'HOOKBOX_REQUIRE_HTTPS',
  exitWhenIdle: 'HOOKBOX_EXIT_WHEN_IDLE',
  shutdownGrace: 'HOOKBOX_SHUTDOWN_GRACE',
  connectionsPerOrigin: 'HOOKBOX_CONNECTIONS_PER_ORIGIN',
  maxResponseBytes: 'HOOKBOX_MAX_RESPONSE_BYTES',
  logLevel: 'HOOKBOX_LOG_LEVEL',
  metricsPort: 'HOOKBOX_METRICS_PORT',
  metricsHost: 'HOOKBOX_METRICS_HOST',
  metricsTenantLimit: 'HOOKBOX_METRICS_TENANT_LIMIT',
  cleanupOlderThan: 'HOOKBOX_CLEANUP_OLDER_THAN',
  cleanupInterval: 'HOOKBOX_CLEANUP_INTERVAL',
} as const;

export type RelayFlags = Partial<{
  databaseUrl: string;
  concurrency: string;
  batchSize: string;
  pollInterval: string;
  lease: string;
  requestTimeout: string;
  retrySchedule: string;
  maxAttempts: string;
  retryJitter: string;
  allowPrivateNetwork: string[];
  requireHttps: boolean;
  exitWhenIdle: boolean;
  shutdownGrace: string;
  connectionsPerOrigin: string;
  maxResponseBytes: string;
  logLevel: string;
  metricsPort: string;
  metricsHost: string;
  metricsTenantLimit: string;
  cleanupOlderThan: string;
  cleanupInterval: string;
}>;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** The admin server and metrics (apps/relay/src/metrics/). */
export interface MetricsConfig {
  /** Port of /metrics, /healthz, /readyz; null when off (the default); 0 picks a free port. */
  port: number | null;
  /** Interface to bind. Default 127.0.0.1. */
  host: string;
  /** Tenants with their own label on hookbox_tenant_deliveries_total; later ones count as "_other". Default 100. */
  tenantLimit: number;
}

export interface RelayConfig {
  options: RelayOptions;
  logLevel: (typeof LOG_LEVELS)[number];
  metrics: MetricsConfig;
  cleanup: CleanupConfig;
}

/** Periodic retention cleanup (apps/relay/src/relay/cleanup.ts). */
export interface CleanupConfig {
  /** Delete finished deliveries and fanned-out events older than this; null when off (the default). */
  olderThanMs: number | null;
  /** Time between cleanup runs. */
  intervalMs: number;
}

function intIn(text: string, field: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${field}: must be a whole number from ${min} to ${max} (got "${text}")`);
  }
  return n;
}

function bool(text: string, field: string): boolean {
  const t = text.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(t)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(t)) return false;
  throw new UsageError(`${field}: must be true or false (got "${text}")`);
}

/**
 * Resolves the relay's configuration: flag > environment > default, validated once here.
 * Every message names the flag and the rule.
 */
export function resolveRelayConfig(
  flags: RelayFlags,
  env: Record<string, string | undefined>,
  userAgent: string,
): RelayConfig {
  const pick = (key: keyof typeof RELAY_ENV): string | undefined => {
    const f = flags[key];
    if (typeof f === 'string') return f;
    const e = env[RELAY_ENV[key]];
    return e === undefined || e === '' ? undefined : e;
  };
  const flag = (key: keyof typeof RELAY_ENV) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  const dur = (key: 'pollInterval' | 'lease' | 'requestTimeout' | 'shutdownGrace') =>
    parseDuration(pick(key) ?? RELAY_DEFAULTS[key], flag(key));

  const databaseUrl = resolveDatabaseUrl(flags.databaseUrl ?? env.DATABASE_URL);
  const pollIntervalMs = dur('pollInterval');
  if (pollIntervalMs < 1) throw new UsageError('--poll-interval: must be at least 1ms');
  const leaseMs = dur('lease');
  const requestTimeoutMs = dur('requestTimeout');
  if (requestTimeoutMs < 1) throw new UsageError('--request-timeout: must be at least 1ms');
  if (leaseMs <= requestTimeoutMs) {
    throw new UsageError(
      `--lease: must be longer than --request-timeout (${formatDuration(leaseMs)} <= ${formatDuration(requestTimeoutMs)}), or a slow request would be delivered twice`,
    );
  }
  const scheduleMs = parseDurationList(pick('retrySchedule') ?? RELAY_DEFAULTS.retrySchedule, flag('retrySchedule'));
  const maxAttemptsText = pick('maxAttempts');
  const retryJitterText = pick('retryJitter');
  const retryJitter = retryJitterText === undefined ? RELAY_DEFAULTS.retryJitter : Number(retryJitterText);
  if (!Number.isFinite(retryJitter) || retryJitter < 0 || retryJitter >= 1) {
    throw new UsageError(`--retry-jitter: must be a number from 0 to below 1 (got "${retryJitterText}")`);
  }
  const retry = defaultRetryPolicy({
    scheduleMs,
    maxAttempts:
      maxAttemptsText === undefined ? scheduleMs.length + 1 : intIn(maxAttemptsText, '--max-attempts', 1, 1000),
    jitter: retryJitter,
  });
  const allowFromEnv = env[RELAY_ENV.allowPrivateNetwork];
  const allowPrivateNetwork =
    flags.allowPrivateNetwork && flags.allowPrivateNetwork.length > 0
      ? flags.allowPrivateNetwork.flatMap((a) => a.split(','))
      : allowFromEnv
        ? allowFromEnv.split(',')
        : [];
  try {
    checkAllowList(allowPrivateNetwork.map((a) => a.trim()).filter(Boolean));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const logLevel = (pick('logLevel') ?? RELAY_DEFAULTS.logLevel) as RelayConfig['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new UsageError(`--log-level: must be one of ${LOG_LEVELS.join(', ')} (got "${logLevel}")`);
  }
  const options: RelayOptions = {
    databaseUrl,
    concurrency: intIn(pick('concurrency') ?? String(RELAY_DEFAULTS.concurrency), '--concurrency', 1, 10_000),
    batchSize: intIn(pick('batchSize') ?? String(RELAY_DEFAULTS.batchSize), '--batch-size', 1, 10_000),
    pollIntervalMs,
    leaseMs,
    requestTimeoutMs,
    retry,
    allowPrivateNetwork: allowPrivateNetwork.map((a) => a.trim()).filter(Boolean),
    requireHttps: flags.requireHttps ?? bool(env[RELAY_ENV.requireHttps] ?? '', RELAY_ENV.requireHttps),
    exitWhenIdle: flags.exitWhenIdle ?? bool(env[RELAY_ENV.exitWhenIdle] ?? '', RELAY_ENV.exitWhenIdle),
    shutdownGraceMs: dur('shutdownGrace'),
    maxResponseBytes: intIn(
      pick('maxResponseBytes') ?? String(RELAY_DEFAULTS.maxResponseBytes),
      '--max-response-bytes',
      0,
      1_048_576,
    ),
    connectionsPerOrigin: intIn(
      pick('connectionsPerOrigin') ?? String(RELAY_DEFAULTS.connectionsPerOrigin),
      '--connections-per-origin',
      1,
      1024,
    ),
    userAgent,
  };
  const metricsPortText = pick('metricsPort') ?? RELAY_DEFAULTS.metricsPort;
  const metricsHost = (pick('metricsHost') ?? RELAY_DEFAULTS.metricsHost).trim();
  if (metricsHost === '') throw new UsageError('--metrics-host: must not be empty');
  const metrics: MetricsConfig = {
    port: metricsPortText.trim().toLowerCase() === 'off' ? null : intIn(metricsPortText, '--metrics-port', 0, 65_535),
    host: metricsHost,
    tenantLimit: intIn(
      pick('metricsTenantLimit') ?? String(RELAY_DEFAULTS.metricsTenantLimit),
      '--metrics-tenant-limit',
      0,
      100_000,
    ),
  };
  const cleanupText = pick('cleanupOlderThan') ?? RELAY_DEFAULTS.cleanupOlderThan;
  const cleanup: CleanupConfig = {
    olderThanMs: cleanupText.trim().toLowerCase() === 'off' ? null : parseDuration(cleanupText, '--cleanup-older-than'),
    intervalMs: parseDuration(pick('cleanupInterval') ?? RELAY_DEFAULTS.cleanupInterval, '--cleanup-interval'),
  };
  if (cleanup.olderThanMs !== null && cleanup.olderThanMs < 60_000) {
    throw new UsageError('--cleanup-older-than: must be at least 1m (it deletes the delivery log)');
  }
  if (cleanup.intervalMs < 1_000) throw new UsageError('--cleanup-interval: must be at least 1s');
  return { options, logLevel, metrics, cleanup };
}
