/**
 * The relay's configuration: defaults in one place, flag > environment > default, validated
 * once here. Only the app reads the environment; the library never does.
 */
import { ValidationError } from '@hookbox/outbox';
import { Option } from 'commander';
import { parseBindHost } from './bind-host.js';
import { checkAllowList } from './delivery/ssrf.js';
import { formatDuration, parseDuration, parseDurationList } from './duration.js';
import { parseBoolean, parseWholeNumber } from './option-text.js';
import { defaultRetryPolicy } from './policy/retry.js';
import type { RelayOptions } from './relay/relay.js';

export function databaseUrlOption(): Option {
  return new Option('--database-url <url>', 'PostgreSQL connection string').env('DATABASE_URL');
}

/** The database URL from the flag (or DATABASE_URL, which commander already applied). */
export function resolveDatabaseUrl(flag: string | undefined): string {
  const url = flag ?? process.env.DATABASE_URL;
  if (!url)
    throw new ValidationError('--database-url', 'required', 'no database: pass --database-url or set DATABASE_URL');
  try {
    const u = new URL(url);
    if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new Error('scheme');
  } catch {
    throw new ValidationError('--database-url', 'format', 'must be a postgres:// or postgresql:// URL');
  }
  return url;
}

/**
 * One declaration per relay setting: its flag, environment variable, default and help text.
 * RELAY_DEFAULTS, RELAY_ENV, RelayFlags and the `hookbox relay` options (commands/relay.ts)
 * are all generated from this table, so a setting is added in one place.
 */
interface SettingSpec {
  /** commander's flag syntax, e.g. `--concurrency <n>`; a bare flag is a boolean. */
  readonly flags: string;
  readonly env: string;
  /** The default, when there is a fixed one. */
  readonly default?: string | number;
  /** How the default reads in --help when it is not a fixed value. */
  readonly defaultText?: string;
  readonly help: string;
}

export const RELAY_SETTINGS = {
  databaseUrl: { flags: '--database-url <url>', env: 'DATABASE_URL', help: 'PostgreSQL connection string' },
  concurrency: {
    flags: '--concurrency <n>',
    env: 'HOOKBOX_CONCURRENCY',
    default: 64,
    help: 'HTTP requests in flight at most, shared fairly between tenants when contended',
  },
  batchSize: { flags: '--batch-size <n>', env: 'HOOKBOX_BATCH_SIZE', default: 200, help: 'events claimed per fan-out' },
  pollInterval: {
    flags: '--poll-interval <dur>',
    env: 'HOOKBOX_POLL_INTERVAL',
    default: '250ms',
    help: 'poll period when no wake-up arrives',
  },
  lease: {
    flags: '--lease <dur>',
    env: 'HOOKBOX_LEASE',
    default: '60s',
    help: 'claim lease; must exceed --request-timeout',
  },
  requestTimeout: {
    flags: '--request-timeout <dur>',
    env: 'HOOKBOX_REQUEST_TIMEOUT',
    default: '15s',
    help: 'total time per HTTP attempt',
  },
  retrySchedule: {
    flags: '--retry-schedule <list>',
    env: 'HOOKBOX_RETRY_SCHEDULE',
    default: '5s,5m,30m,2h,5h,10h,10h',
    help: 'delays after each failed attempt',
  },
  maxAttempts: {
    flags: '--max-attempts <n>',
    env: 'HOOKBOX_MAX_ATTEMPTS',
    defaultText: 'schedule length + 1',
    help: 'attempts in all before a delivery is dead',
  },
  retryJitter: {
    flags: '--retry-jitter <fraction>',
    env: 'HOOKBOX_RETRY_JITTER',
    default: 0.1,
    help: 'random spread of each delay, 0 to <1',
  },
  allowPrivateNetwork: {
    flags: '--allow-private-network <cidr|host...>',
    env: 'HOOKBOX_ALLOW_PRIVATE_NETWORK',
    help: 'let deliveries reach these private/loopback CIDRs, IPs or hosts (space-separated or repeated; env: comma-separated)',
  },
  requireHttps: { flags: '--require-https', env: 'HOOKBOX_REQUIRE_HTTPS', help: 'refuse plain http:// endpoints' },
  exitWhenIdle: {
    flags: '--exit-when-idle',
    env: 'HOOKBOX_EXIT_WHEN_IDLE',
    help: 'exit 0 once nothing is pending and every delivery is final',
  },
  shutdownGrace: {
    flags: '--shutdown-grace <dur>',
    env: 'HOOKBOX_SHUTDOWN_GRACE',
    default: '30s',
    help: 'wait for in-flight requests on SIGTERM',
  },
  connectionsPerOrigin: {
    flags: '--connections-per-origin <n>',
    env: 'HOOKBOX_CONNECTIONS_PER_ORIGIN',
    default: 32,
    help: 'keep-alive connections and requests in flight per endpoint origin at most (each origin adapts below this: starts at 4, grows by one per answer, halves on timeouts, errors, 429 and 5xx)',
  },
  slowAfter: {
    flags: '--slow-after <dur>',
    env: 'HOOKBOX_SLOW_AFTER',
    default: '1s',
    help: 'a request in flight this long marks its endpoint slow: it stops counting against --concurrency and the endpoint sends only from the --slow-concurrency budget until it answers fast again',
  },
  slowConcurrency: {
    flags: '--slow-concurrency <n>',
    env: 'HOOKBOX_SLOW_CONCURRENCY',
    defaultText: '--concurrency / 8, at least 1',
    help: 'requests that slow endpoints may start at once, all of them together',
  },
  breakerThreshold: {
    flags: '--breaker-threshold <n>',
    env: 'HOOKBOX_BREAKER_THRESHOLD',
    default: 5,
    help: "consecutive failed attempts (timeouts, connection errors, 429, 5xx) that open a subscription's circuit: its deliveries are held, no attempts spent, until a single probe succeeds (shared by every relay)",
  },
  breakerCooldown: {
    flags: '--breaker-cooldown <dur>',
    env: 'HOOKBOX_BREAKER_COOLDOWN',
    default: '30s',
    help: 'how long an open circuit waits before its probe; doubled after each failed probe',
  },
  breakerMaxCooldown: {
    flags: '--breaker-max-cooldown <dur>',
    env: 'HOOKBOX_BREAKER_MAX_COOLDOWN',
    default: '5m',
    help: 'the longest cooldown of an open circuit',
  },
  disableAfter: {
    flags: '--disable-after <dur>',
    env: 'HOOKBOX_DISABLE_AFTER',
    default: '5d',
    help: 'disable a subscription that has failed without a single success for this long (its pending deliveries are kept and resume on enable); "off" never does',
  },
  maxResponseBytes: {
    flags: '--max-response-bytes <n>',
    env: 'HOOKBOX_MAX_RESPONSE_BYTES',
    default: 4096,
    help: 'response bytes kept in the delivery log',
  },
  logLevel: { flags: '--log-level <level>', env: 'HOOKBOX_LOG_LEVEL', default: 'info', help: 'log level' },
  metricsPort: {
    flags: '--metrics-port <port>',
    env: 'HOOKBOX_METRICS_PORT',
    // The admin port (/metrics, /healthz, /readyz) is off unless a port is given.
    default: 'off',
    help: 'serve /metrics, /healthz, /readyz on this port; "off" disables',
  },
  metricsHost: {
    flags: '--metrics-host <host>',
    env: 'HOOKBOX_METRICS_HOST',
    default: '127.0.0.1',
    help: 'interface the metrics port binds to',
  },
  metricsTenantLimit: {
    flags: '--metrics-tenant-limit <n>',
    env: 'HOOKBOX_METRICS_TENANT_LIMIT',
    default: 100,
    help: 'tenants labelled on hookbox_tenant_deliveries_total, first seen first; the rest count as tenant="_other"',
  },
  cleanupOlderThan: {
    flags: '--cleanup-older-than <dur>',
    env: 'HOOKBOX_CLEANUP_OLDER_THAN',
    // Periodic retention cleanup inside the relay is off unless an age is given.
    default: 'off',
    defaultText: 'off; enable on one relay',
    help: 'delete finished deliveries, their attempts and fanned-out events older than this, in small batches; "off" disables',
  },
  cleanupInterval: {
    flags: '--cleanup-interval <dur>',
    env: 'HOOKBOX_CLEANUP_INTERVAL',
    default: '1h',
    help: 'time between cleanup runs',
  },
} as const satisfies Record<string, SettingSpec>;

type Settings = typeof RELAY_SETTINGS;
export type RelaySetting = keyof Settings;
type WithDefault = { [K in RelaySetting]: Settings[K] extends { default: string | number } ? K : never }[RelaySetting];

/** Every relay setting's fixed default (from RELAY_SETTINGS). */
export const RELAY_DEFAULTS = Object.fromEntries(
  Object.entries(RELAY_SETTINGS).flatMap(([k, v]) => ('default' in v ? [[k, v.default]] : [])),
) as { readonly [K in WithDefault]: Settings[K] extends { default: infer D } ? D : never };

/** Setting → environment variable. Flags win over the environment, which wins over defaults. */
export const RELAY_ENV = Object.fromEntries(Object.entries(RELAY_SETTINGS).map(([k, v]) => [k, v.env])) as {
  readonly [K in RelaySetting]: Settings[K]['env'];
};

/** What commander hands over: bare flags are booleans, variadic ones arrays, the rest text. */
export type RelayFlags = {
  [K in RelaySetting]?: Settings[K]['flags'] extends `${string}...>`
    ? string[]
    : Settings[K]['flags'] extends `${string}<${string}`
      ? string
      : boolean;
};

/** The `--help` line of a setting: its text, its default, its environment variable. */
export function settingHelp(key: RelaySetting): string {
  const s: SettingSpec = RELAY_SETTINGS[key];
  const def = s.defaultText ?? (s.default === undefined ? null : String(s.default));
  return `${s.help}${def === null ? '' : ` (default ${def})`} [env: ${s.env}]`;
}

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

/** The circuit breaker and auto-disable settings. */
function resolveBreaker(
  pick: (key: RelaySetting) => string | undefined,
  flag: (key: RelaySetting) => string,
): RelayOptions['breaker'] {
  const failAfter = parseWholeNumber(
    pick('breakerThreshold') ?? String(RELAY_DEFAULTS.breakerThreshold),
    '--breaker-threshold',
    1,
    1_000_000,
  );
  const cooldownMs = parseDuration(pick('breakerCooldown') ?? RELAY_DEFAULTS.breakerCooldown, flag('breakerCooldown'));
  const maxCooldownMs = parseDuration(
    pick('breakerMaxCooldown') ?? RELAY_DEFAULTS.breakerMaxCooldown,
    flag('breakerMaxCooldown'),
  );
  const DAY = 86_400_000;
  if (cooldownMs < 1 || cooldownMs > DAY)
    throw new ValidationError('--breaker-cooldown', 'range', 'must be from 1ms to 1d');
  if (maxCooldownMs < cooldownMs || maxCooldownMs > DAY) {
    throw new ValidationError('--breaker-max-cooldown', 'range', 'must be from --breaker-cooldown to 1d');
  }
  const disableText = pick('disableAfter') ?? RELAY_DEFAULTS.disableAfter;
  const disableAfterMs =
    disableText.trim().toLowerCase() === 'off' ? null : parseDuration(disableText, flag('disableAfter'));
  if (disableAfterMs !== null && disableAfterMs < 1_000)
    throw new ValidationError('--disable-after', 'range', 'must be at least 1s');
  return { failAfter, cooldownMs, maxCooldownMs, disableAfterMs };
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
  const dur = (key: 'pollInterval' | 'lease' | 'requestTimeout' | 'shutdownGrace' | 'slowAfter') =>
    parseDuration(pick(key) ?? RELAY_DEFAULTS[key], flag(key));

  const databaseUrl = resolveDatabaseUrl(flags.databaseUrl ?? env.DATABASE_URL);
  const pollIntervalMs = dur('pollInterval');
  if (pollIntervalMs < 1) throw new ValidationError('--poll-interval', 'range', 'must be at least 1ms');
  const leaseMs = dur('lease');
  const requestTimeoutMs = dur('requestTimeout');
  if (requestTimeoutMs < 1) throw new ValidationError('--request-timeout', 'range', 'must be at least 1ms');
  if (leaseMs <= requestTimeoutMs) {
    throw new ValidationError(
      '--lease',
      'range',
      `must be longer than --request-timeout (${formatDuration(leaseMs)} <= ${formatDuration(requestTimeoutMs)}), or a slow request would be delivered twice`,
    );
  }
  const scheduleMs = parseDurationList(pick('retrySchedule') ?? RELAY_DEFAULTS.retrySchedule, flag('retrySchedule'));
  const maxAttemptsText = pick('maxAttempts');
  const retryJitterText = pick('retryJitter');
  const retryJitter = retryJitterText === undefined ? RELAY_DEFAULTS.retryJitter : Number(retryJitterText);
  if (!Number.isFinite(retryJitter) || retryJitter < 0 || retryJitter >= 1) {
    throw new ValidationError(
      '--retry-jitter',
      'range',
      `must be a number from 0 to below 1 (got "${retryJitterText}")`,
    );
  }
  const retry = defaultRetryPolicy({
    scheduleMs,
    maxAttempts:
      maxAttemptsText === undefined
        ? scheduleMs.length + 1
        : parseWholeNumber(maxAttemptsText, '--max-attempts', 1, 1000),
    jitter: retryJitter,
  });
  const allowFromEnv = env[RELAY_ENV.allowPrivateNetwork];
  const allowPrivateNetwork =
    flags.allowPrivateNetwork && flags.allowPrivateNetwork.length > 0
      ? flags.allowPrivateNetwork.flatMap((a) => a.split(','))
      : allowFromEnv
        ? allowFromEnv.split(',')
        : [];
  checkAllowList(allowPrivateNetwork.map((a) => a.trim()).filter(Boolean));
  const logLevel = (pick('logLevel') ?? RELAY_DEFAULTS.logLevel) as RelayConfig['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ValidationError('--log-level', 'one_of', `must be one of ${LOG_LEVELS.join(', ')} (got "${logLevel}")`);
  }
  const concurrency = parseWholeNumber(
    pick('concurrency') ?? String(RELAY_DEFAULTS.concurrency),
    '--concurrency',
    1,
    10_000,
  );
  const slowAfterMs = dur('slowAfter');
  if (slowAfterMs < 1) throw new ValidationError('--slow-after', 'range', 'must be at least 1ms');
  const slowConcurrencyText = pick('slowConcurrency');
  const options: RelayOptions = {
    databaseUrl,
    concurrency,
    batchSize: parseWholeNumber(pick('batchSize') ?? String(RELAY_DEFAULTS.batchSize), '--batch-size', 1, 10_000),
    pollIntervalMs,
    leaseMs,
    requestTimeoutMs,
    retry,
    allowPrivateNetwork: allowPrivateNetwork.map((a) => a.trim()).filter(Boolean),
    requireHttps: flags.requireHttps ?? parseBoolean(env[RELAY_ENV.requireHttps] ?? '', RELAY_ENV.requireHttps),
    exitWhenIdle: flags.exitWhenIdle ?? parseBoolean(env[RELAY_ENV.exitWhenIdle] ?? '', RELAY_ENV.exitWhenIdle),
    shutdownGraceMs: dur('shutdownGrace'),
    maxResponseBytes: parseWholeNumber(
      pick('maxResponseBytes') ?? String(RELAY_DEFAULTS.maxResponseBytes),
      '--max-response-bytes',
      0,
      1_048_576,
    ),
    connectionsPerOrigin: parseWholeNumber(
      pick('connectionsPerOrigin') ?? String(RELAY_DEFAULTS.connectionsPerOrigin),
      '--connections-per-origin',
      1,
      1024,
    ),
    slowAfterMs,
    slowConcurrency:
      slowConcurrencyText === undefined
        ? Math.max(1, Math.floor(concurrency / 8))
        : parseWholeNumber(slowConcurrencyText, '--slow-concurrency', 1, 10_000),
    userAgent,
    breaker: resolveBreaker(pick, flag),
  };
  const metricsPortText = pick('metricsPort') ?? RELAY_DEFAULTS.metricsPort;
  const metricsHost = parseBindHost(pick('metricsHost') ?? RELAY_DEFAULTS.metricsHost, '--metrics-host');
  const metrics: MetricsConfig = {
    port:
      metricsPortText.trim().toLowerCase() === 'off'
        ? null
        : parseWholeNumber(metricsPortText, '--metrics-port', 0, 65_535),
    host: metricsHost,
    tenantLimit: parseWholeNumber(
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
    throw new ValidationError('--cleanup-older-than', 'range', 'must be at least 1m (it deletes the delivery log)');
  }
  if (cleanup.intervalMs < 1_000) throw new ValidationError('--cleanup-interval', 'range', 'must be at least 1s');
  return { options, logLevel, metrics, cleanup };
}
