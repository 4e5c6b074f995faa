/**
 * @hookbox/relay as a library: run the relay inside your own process (tests, demos,
 * embedded deployments). The `hookbox` CLI is the usual way to run it.
 */

export { RELAY_DEFAULTS, resolveRelayConfig } from './config.js';
export { parseDuration } from './duration.js';
export type { Listener, ListenOptions, ReceivedRequest } from './listen/server.js';
export { startListener } from './listen/server.js';
export { createLogger } from './logger.js';
export { checkReadiness, startAdminServer } from './metrics/admin-server.js';
export { createRelayMetrics } from './metrics/metrics.js';
export { migrate, migrationStatus, migrationsFolder } from './migrate.js';
export { DEFAULT_RETRY_SCHEDULE_MS, defaultRetryPolicy } from './policy/retry.js';
export { startPeriodicCleanup } from './relay/cleanup.js';
export type { Relay, RelayDeps, RelayObserver, RelayOptions } from './relay/relay.js';
export { createRelay } from './relay/relay.js';
export { loadCatalogDir } from './serve/catalog.js';
export type { ServeHandle, ServeOptions } from './serve/server.js';
export { SERVE_DEFAULTS, startServe } from './serve/server.js';
