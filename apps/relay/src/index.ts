/**
 * @hookbox/relay as a library: run the relay inside your own process (tests, demos,
 * embedded deployments). The `hookbox` CLI is the usual way to run it.
 */

export { RELAY_DEFAULTS, resolveRelayConfig } from './config.js';
export { parseDuration } from './duration.js';
export { createLogger } from './logger.js';
export { migrate, migrationStatus, migrationsFolder } from './migrate.js';
export { DEFAULT_RETRY_SCHEDULE_MS, defaultRetryPolicy } from './policy/retry.js';
export type { Relay, RelayDeps, RelayObserver, RelayOptions } from './relay/relay.js';
export { createRelay } from './relay/relay.js';
