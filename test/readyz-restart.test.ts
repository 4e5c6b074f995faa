/**
 * /readyz across a real PostgreSQL outage: 200 while the database answers, 503 while the
 * server is stopped, 200 again once it is back — the probe an orchestrator acts on.
 */
import { request } from 'node:http';
import { startEmbeddedPostgres } from '@hookbox/devdb';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../apps/relay/src/logger.js';
import { startAdminServer } from '../apps/relay/src/metrics/admin-server.js';
import { createMetricsRegistry } from '../apps/relay/src/metrics/metrics.js';
import { migrate } from '../apps/relay/src/migrate.js';
import { waitFor } from './harness/relay.js';

function get(url: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request(`${url}${path}`, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

describe('/readyz through a Postgres stop and start', () => {
  it('answers 200, then 503 while the server is down, then 200 again', async () => {
    // Its own server: the shared test server must not be stopped.
    const server = await startEmbeddedPostgres();
    const pool = new pg.Pool({ connectionString: server.url, max: 2, connectionTimeoutMillis: 1_000 });
    pool.on('error', () => {}); // the outage reaches idle connections too
    const logger = createLogger('silent');
    let admin: Awaited<ReturnType<typeof startAdminServer>> | null = null;
    try {
      await migrate(server.url);
      const { registry } = createMetricsRegistry({ defaultMetrics: false });
      admin = await startAdminServer({ db: pool, registry, logger, port: 0, readyTimeoutMs: 1_500 });
      const url = admin.url;

      expect((await get(url, '/readyz')).status).toBe(200);

      await server.pause();
      const down = await get(url, '/readyz');
      expect(down.status).toBe(503);
      expect(down.body).toMatch(/database|connect|timed out/i);
      expect((await get(url, '/healthz')).status).toBe(200); // the process itself is fine

      await server.resume();
      await waitFor(async () => (await get(url, '/readyz')).status === 200, {
        timeoutMs: 15_000,
        what: '/readyz to recover after the restart',
      });
    } finally {
      await admin?.close();
      await pool.end();
      await server.stop();
    }
  });
});
