/**
 * The relay's admin port: `GET /metrics` (Prometheus text format), `GET /healthz` (the
 * process answers) and `GET /readyz` (the database answers and its migrations are not behind
 * this relay's). Plain node:http, bound to 127.0.0.1 unless told otherwise: metrics name
 * tenants and subscriptions, so exposing them is the operator's explicit choice.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { type MigrationStatus, migrationStatus } from '../migrate.js';

export interface AdminServerDeps {
  /** Pool used by /readyz: one short checkout per check. */
  db: pg.Pool;
  registry: Registry;
  logger: Logger;
  /** Interface to bind. Default `127.0.0.1` (RELAY_DEFAULTS.metricsHost). */
  host?: string;
  /** TCP port; 0 picks a free one (see `AdminServer.port`). */
  port: number;
  /** Longest a readiness check may take before /readyz answers 503, in ms. Default 2,000. */
  readyTimeoutMs?: number;
}

export interface AdminServer {
  /** The port actually bound. */
  readonly port: number;
  /** Base URL, e.g. `http://127.0.0.1:9464`. */
  readonly url: string;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

export type Readiness =
  | { ready: true; migrations: MigrationStatus }
  | { ready: false; reason: string; migrations?: MigrationStatus };

/**
 * Whether the relay can work: a connection from its pool answers, and the database has at
 * least the migrations this relay ships. More is fine: a newer relay may have migrated first
 * during a rolling upgrade, and migrations only add.
 */
export async function checkReadiness(db: pg.Pool): Promise<Readiness> {
  let client: pg.PoolClient;
  try {
    client = await db.connect();
  } catch (err) {
    return { ready: false, reason: `database unreachable: ${(err as Error).message}` };
  }
  let failed = false;
  try {
    const migrations = await migrationStatus(client);
    if (migrations.applied < migrations.expected) {
      return {
        ready: false,
        reason: `migrations behind: ${migrations.applied} of ${migrations.expected} applied; run hookbox migrate`,
        migrations,
      };
    }
    return { ready: true, migrations };
  } catch (err) {
    failed = true;
    return { ready: false, reason: `database query failed: ${(err as Error).message}` };
  } finally {
    // A connection that just failed is discarded rather than handed to the relay.
    client.release(failed ? true : undefined);
  }
}

export async function startAdminServer({
  db,
  registry,
  logger,
  host = '127.0.0.1',
  port,
  readyTimeoutMs = 2_000,
}: AdminServerDeps): Promise<AdminServer> {
  let inflight: Promise<Readiness> | null = null;
  let wasReady: boolean | null = null;

  /** One check at a time however many probes arrive; each waits at most readyTimeoutMs. */
  async function readiness(): Promise<Readiness> {
    inflight ??= checkReadiness(db).finally(() => {
      inflight = null;
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<Readiness>((resolve) => {
      timer = setTimeout(
        () => resolve({ ready: false, reason: `database check timed out after ${readyTimeoutMs}ms` }),
        readyTimeoutMs,
      );
    });
    const result = await Promise.race([inflight, timeout]).finally(() => clearTimeout(timer));
    if (result.ready !== wasReady) {
      if (result.ready) logger.info({ migrations: result.migrations }, 'ready');
      else logger.warn({ reason: result.reason }, 'not ready');
      wasReady = result.ready;
    }
    return result;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz') {
      return send(res, req, 404, { status: 'not found', paths: ['/metrics', '/healthz', '/readyz'] });
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return send(res, req, 405, { status: 'method not allowed' });
    }
    if (path === '/healthz') return send(res, req, 200, { status: 'ok' });
    if (path === '/readyz') {
      const r = await readiness();
      return send(res, req, r.ready ? 200 : 503, r.ready ? { status: 'ready', ...r } : { status: 'unavailable', ...r });
    }
    const text = await registry.metrics();
    res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : text);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      logger.error({ err, path: req.url }, 'admin server: request failed');
      if (!res.headersSent) send(res, req, 500, { status: 'error', message: (err as Error).message });
      else res.destroy();
    });
  });
  // A probe or scraper that never sends its request must not hold a socket forever.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err) => {
    throw new Error(`admin server: cannot listen on ${host}:${port}: ${(err as Error).message}`, { cause: err });
  });
  server.on('error', (err) => logger.error({ err }, 'admin server error'));
  const bound = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  logger.info({ url }, 'admin server listening: /metrics /healthz /readyz');

  return {
    port: bound,
    url,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, req: IncomingMessage, status: number, body: object): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : `${JSON.stringify(body)}\n`);
}
