/**
 * Metrics and health: a real relay delivers to real receivers (200, 500, 410) on 127.0.0.1,
 * its admin port is scraped over HTTP, and every counter, histogram and gauge must have moved
 * by exactly what happened. /readyz is checked against databases that stop accepting
 * connections and that miss a migration. Finally the CLI wiring: `hookbox relay --metrics-port`.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createOutbox, subscriptions, ValidationError } from '@hookbox/outbox';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RELAY_DEFAULTS, resolveRelayConfig } from '../apps/relay/src/config.js';
import { createLogger } from '../apps/relay/src/logger.js';
import { type AdminServer, startAdminServer } from '../apps/relay/src/metrics/admin-server.js';
import { createMetricsRegistry, createRelayMetrics, TenantLabels } from '../apps/relay/src/metrics/metrics.js';
import { boundedSampleInterval } from '../apps/relay/src/metrics/sampler.js';
import { migrationStatus } from '../apps/relay/src/migrate.js';
import { defaultRetryPolicy } from '../apps/relay/src/policy/retry.js';
import { createRelay, type RelayOptions } from '../apps/relay/src/relay/relay.js';
import { CLI } from './harness/cli.js';
import { createDatabase, dropDatabase, useTestDatabase } from './harness/db.js';
import { orderedChain } from './harness/ordered-chain.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const db = useTestDatabase();
const logger = createLogger('silent');

interface Receiver {
  url: string;
  hits: number;
  server: Server;
}

/** A real HTTP endpoint on 127.0.0.1 that answers every request with `status`. */
async function receiver(status: number): Promise<Receiver> {
  const r = { url: '', hits: 0, server: undefined as unknown as Server };
  r.server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      r.hits++;
      res.writeHead(status, { 'content-type': 'text/plain' }).end(`status ${status}`);
    });
  });
  await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(r.server.address() as AddressInfo).port}`;
  return r;
}

function closeServer(s: Server): Promise<void> {
  s.closeAllConnections();
  return new Promise((resolve) => s.close(() => resolve()));
}

async function get(base: string, path: string): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(base + path);
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

/**
 * The value of one series in Prometheus text format, or undefined when absent. `labels` must
 * be exactly the series' labels (order-insensitive).
 */
function series(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = (m[2] ? (m[2].match(/[a-zA-Z_]\w*="(?:[^"\\]|\\.)*"/g) ?? []) : []).sort().join(',');
    if (got === want) return Number(m[3]);
  }
  return undefined;
}

/** Every series of a metric name: labels → value. */
function allSeries(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

function relayOptions(databaseUrl: string): RelayOptions {
  return {
    databaseUrl,
    // One request at a time, one event per fan-out: the first delivery is the first event's.
    concurrency: 1,
    batchSize: 1,
    pollIntervalMs: 20,
    leaseMs: 30_000,
    requestTimeoutMs: 5_000,
    // Two attempts with no delay between them: the 500 endpoint retries once, then is dead.
    retry: defaultRetryPolicy({ scheduleMs: [0], maxAttempts: 2, jitter: 0 }),
    allowPrivateNetwork: ['127.0.0.0/8'],
    requireHttps: false,
    exitWhenIdle: true,
    shutdownGraceMs: 5_000,
    maxResponseBytes: 1024,
    connectionsPerOrigin: 2,
    slowAfterMs: 1_000,
    slowConcurrency: 1,
    userAgent: 'hookbox-test',
    breaker: { failAfter: 1_000_000, cooldownMs: 1_000, maxCooldownMs: 1_000, disableAfterMs: null },
  };
}

describe('a relay delivering to real receivers, scraped over HTTP', () => {
  let ok: Receiver;
  let failing: Receiver;
  let gone: Receiver;
  let relayPool: pg.Pool;
  let admin: AdminServer;
  let metrics: ReturnType<typeof createRelayMetrics>;
  let failingSubId: string;
  let okSubId: string;
  let firstEventId: string;
  let scrape: string;

  beforeAll(async () => {
    [ok, failing, gone] = await Promise.all([receiver(200), receiver(500), receiver(410)]);
    const pool = db.pool;
    const message = ['message.*'];
    okSubId = (await subscriptions.create(pool, { tenantId: 'acme', url: `${ok.url}/acme`, eventTypes: message })).id;
    failingSubId = (await subscriptions.create(pool, { tenantId: 'acme', url: failing.url, eventTypes: message })).id;
    // Only one event matches the 410 endpoint, so it is hit once however the relay batches.
    await subscriptions.create(pool, { tenantId: 'acme', url: gone.url, eventTypes: ['account.closed'] });
    await subscriptions.create(pool, { tenantId: 'globex', url: `${ok.url}/globex`, eventTypes: ['order.*'] });

    const outbox = createOutbox();
    firstEventId = (await outbox.enqueue(pool, { tenantId: 'acme', type: 'message.new', payload: { n: 1 } })).id;
    await outbox.enqueue(pool, { tenantId: 'acme', type: 'message.new', payload: { n: 2 } });
    await outbox.enqueue(pool, { tenantId: 'acme', type: 'account.closed', payload: {} });
    await outbox.enqueue(pool, { tenantId: 'acme', type: 'user.created', payload: {} }); // matches nothing
    const late = await outbox.enqueue(pool, { tenantId: 'globex', type: 'order.paid', payload: {} });
    await outbox.enqueue(pool, { tenantId: 'initech', type: 'message.new', payload: {} }); // no subscriptions
    // One event an hour old: its delivery's lag must land above the 1,800 s bucket.
    await pool.query(`UPDATE hookbox.events SET created_at = now() - interval '1 hour' WHERE id = $1`, [late.id]);

    relayPool = new pg.Pool({ connectionString: db.url, max: 4, application_name: 'hookbox-relay-test' });
    metrics = createRelayMetrics({ db: relayPool, logger, tenantLimit: 1, sampleIntervalMs: 60_000 });
    admin = await startAdminServer({ db: relayPool, registry: metrics.registry, logger, port: 0 });
    const relay = createRelay({ db: relayPool, logger, options: relayOptions(db.url), observer: metrics.observer });
    relay.start();
    await relay.done; // exitWhenIdle: every delivery is final
    await metrics.sample();
    const res = await get(admin.url, '/metrics');
    expect(res.status).toBe(200);
    expect(res.type).toContain('text/plain');
    scrape = res.body;
  });

  afterAll(async () => {
    await admin?.close();
    await metrics?.stop();
    await relayPool?.end();
    await Promise.all([ok, failing, gone].filter(Boolean).map((r) => closeServer(r.server)));
  });

  it('the receivers saw exactly the expected requests', () => {
    // 200: two acme events + the globex one; 500: two events x two attempts; 410: once, then disabled.
    expect([ok.hits, failing.hits, gone.hits]).toEqual([3, 4, 1]);
  });

  it('counts fanned-out events by matched / unmatched', () => {
    expect(series(scrape, 'hookbox_events_fanned_out_total', { result: 'matched' })).toBe(4);
    // 2 of the test's own, and hookbox's operational events, which no subscription here names
    // (`*` does not match them): 3 hookbox.delivery.dead (two dead, one 410 Gone) and 1
    // hookbox.subscription.disabled.
    expect(series(scrape, 'hookbox_events_fanned_out_total', { result: 'unmatched' })).toBe(2 + 4);
  });

  it('counts attempts by status class, agreeing with the delivery log', async () => {
    const attempts = (c: string) => series(scrape, 'hookbox_delivery_attempts_total', { status_class: c });
    expect(['2xx', '3xx', '4xx', '5xx', 'timeout', 'network'].map(attempts)).toEqual([3, 0, 1, 4, 0, 0]);
    const { rows } = await db.pool.query<{ c: string; n: number }>(
      `SELECT coalesce((status_code / 100)::text || 'xx', error_class) AS c, count(*)::int AS n
       FROM hookbox.delivery_attempts GROUP BY 1 ORDER BY 1`,
    );
    expect(rows).toEqual([
      { c: '2xx', n: 3 },
      { c: '4xx', n: 1 },
      { c: '5xx', n: 4 },
    ]);
  });

  it('counts delivery outcomes', () => {
    const outcome = (o: string) => series(scrape, 'hookbox_deliveries_total', { outcome: o });
    expect(['succeeded', 'retry', 'dead', 'disabled', 'cancelled'].map(outcome)).toEqual([3, 2, 2, 1, 0]);
  });

  it('observes one duration per attempt and one lag per successful delivery, from event creation', () => {
    expect(series(scrape, 'hookbox_delivery_duration_seconds_count')).toBe(8);
    expect(series(scrape, 'hookbox_delivery_duration_seconds_bucket', { le: '+Inf' })).toBe(8);
    expect(series(scrape, 'hookbox_delivery_lag_seconds_count')).toBe(3);
    // The globex event was created an hour before it was delivered; the two acme ones just now.
    expect(series(scrape, 'hookbox_delivery_lag_seconds_bucket', { le: '1800' })).toBe(2);
    expect(series(scrape, 'hookbox_delivery_lag_seconds_bucket', { le: '+Inf' })).toBe(3);
    expect(series(scrape, 'hookbox_delivery_lag_seconds_sum')).toBeGreaterThanOrEqual(3600);
  });

  it('labels the first tenant seen (limit 1) and counts the other under _other', () => {
    // acme: 2 succeeded + 2 retry + 2 dead + 1 disabled; globex: 1 succeeded. With one request
    // at a time and one event per fan-out the first outcome is acme's (the first event).
    expect(allSeries(scrape, 'hookbox_tenant_deliveries_total')).toHaveLength(2);
    expect(series(scrape, 'hookbox_tenant_deliveries_total', { tenant: 'acme' })).toBe(7);
    expect(series(scrape, 'hookbox_tenant_deliveries_total', { tenant: '_other' })).toBe(1);
    expect(series(scrape, 'hookbox_tenant_deliveries_total', { tenant: 'globex' })).toBeUndefined();
  });

  it('exports default process metrics too', () => {
    expect(series(scrape, 'process_start_time_seconds')).toBeGreaterThan(0);
  });

  it('samples the gauges from the database', async () => {
    expect(series(scrape, 'hookbox_pending_events')).toBe(0);
    expect(series(scrape, 'hookbox_oldest_pending_event_age_seconds')).toBe(0);
    expect(series(scrape, 'hookbox_due_deliveries')).toBe(0);
    expect(series(scrape, 'hookbox_scheduled_deliveries')).toBe(0);
    // Dead rows: the two 500 deliveries after their last attempt, and the 410 one (its
    // subscription is disabled; the delivery itself is final as dead).
    expect(series(scrape, 'hookbox_dead_deliveries')).toBe(3);
    expect(series(scrape, 'hookbox_disabled_subscriptions')).toBe(1);
    // Only the active failing endpoint: the 410 one is disabled, the 200 ones have no streak.
    expect(allSeries(scrape, 'hookbox_endpoint_failure_streak')).toHaveLength(1);
    expect(series(scrape, 'hookbox_endpoint_failure_streak', { subscription_id: failingSubId, tenant: 'acme' })).toBe(
      4,
    );
    expect(series(scrape, 'hookbox_metrics_last_sample_timestamp_seconds')).toBeGreaterThan(0);
    expect(series(scrape, 'hookbox_metrics_sample_errors_total')).toBe(0);

    // Change the database under the relay, sample again, and the gauges follow.
    const outbox = createOutbox();
    const e1 = await outbox.enqueue(db.pool, { tenantId: 'acme', type: 'message.new', payload: {} });
    await outbox.enqueue(db.pool, { tenantId: 'acme', type: 'message.new', payload: {} });
    await db.pool.query(`UPDATE hookbox.events SET created_at = now() - interval '1 hour' WHERE id = $1`, [e1.id]);
    await db.pool.query(
      `INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, next_attempt_at)
       VALUES ($1, $2, 'acme', now() - interval '10 minutes'), ($1, $2, 'acme', now() + interval '1 hour')`,
      [firstEventId, okSubId],
    );
    await db.pool.query('UPDATE hookbox.subscriptions SET failure_streak = 0 WHERE id = $1', [failingSubId]);
    await metrics.sample();
    const after = (await get(admin.url, '/metrics')).body;
    expect(series(after, 'hookbox_pending_events')).toBe(2);
    expect(series(after, 'hookbox_oldest_pending_event_age_seconds')).toBeGreaterThanOrEqual(3600);
    expect(series(after, 'hookbox_due_deliveries')).toBe(1);
    expect(series(after, 'hookbox_oldest_due_delivery_age_seconds')).toBeGreaterThanOrEqual(600);
    expect(series(after, 'hookbox_scheduled_deliveries')).toBe(1);
    // An endpoint whose streak ended drops out instead of keeping its last value.
    expect(allSeries(after, 'hookbox_endpoint_failure_streak')).toHaveLength(0);
    // Counters did not move: nothing was delivered in between.
    expect(series(after, 'hookbox_deliveries_total', { outcome: 'succeeded' })).toBe(3);
  });

  it('counts as held only the deliveries of disabled subscriptions, not ordered ones waiting their turn', async () => {
    await metrics.sample();
    const before = series((await get(admin.url, '/metrics')).body, 'hookbox_held_deliveries');
    const outbox = createOutbox();
    // An active endpoint's key: seq 1 delivered, seq 2 and 3 parked behind it ('infinity').
    const active = await subscriptions.create(db.pool, {
      tenantId: 'held',
      url: 'http://127.0.0.1:9/a',
      eventTypes: ['*'],
    });
    await orderedChain(db.pool, outbox, { tenantId: 'held', subscriptionId: active.id, key: 'k', head: 'succeeded' });
    // A disabled endpoint's delivery, held until enable.
    const off = await subscriptions.create(db.pool, {
      tenantId: 'held',
      url: 'http://127.0.0.1:9/b',
      eventTypes: ['*'],
    });
    await subscriptions.disable(db.pool, { tenantId: 'held', id: off.id });
    await db.pool.query(
      `INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, next_attempt_at) VALUES ($1, $2, 'held', 'infinity')`,
      [firstEventId, off.id],
    );
    await metrics.sample();
    expect(series((await get(admin.url, '/metrics')).body, 'hookbox_held_deliveries')).toBe((before ?? 0) + 1);
  });

  it('answers /healthz, /readyz and 404 on the admin port', async () => {
    const health = await get(admin.url, '/healthz');
    expect([health.status, JSON.parse(health.body)]).toEqual([200, { status: 'ok' }]);
    const ready = await get(admin.url, '/readyz');
    expect(ready.status).toBe(200);
    const { expected } = JSON.parse(ready.body).migrations;
    expect(JSON.parse(ready.body)).toMatchObject({ status: 'ready', migrations: { applied: expected } });
    expect((await get(admin.url, '/nope')).status).toBe(404);
    const post = await fetch(`${admin.url}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    await post.body?.cancel();
  });
});

describe('/readyz follows the database', () => {
  let admin: pg.Client;
  let created: { url: string; name: string };
  let pool: pg.Pool;
  let server: AdminServer;

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: inject('pgAdminUrl') });
    await admin.connect();
    created = await createDatabase();
    pool = new pg.Pool({ connectionString: created.url, max: 2, connectionTimeoutMillis: 5_000 });
    // Connections terminated by the test surface here; the pool replaces them.
    pool.on('error', () => {});
    const { registry } = createMetricsRegistry({ defaultMetrics: false });
    server = await startAdminServer({ db: pool, registry, logger, port: 0 });
  });

  afterAll(async () => {
    await server?.close();
    await pool?.end();
    if (created) {
      await admin.query(`ALTER DATABASE ${created.name} ALLOW_CONNECTIONS true`);
      await dropDatabase(created.name);
    }
    await admin?.end();
  });

  const readyz = async () => {
    const r = await get(server.url, '/readyz');
    return { status: r.status, body: JSON.parse(r.body) as { status: string; reason?: string } };
  };

  it('is 503 while Postgres refuses connections, and 200 again once it accepts them', async () => {
    expect((await readyz()).status).toBe(200);

    await admin.query(`ALTER DATABASE ${created.name} ALLOW_CONNECTIONS false`);
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [created.name]);
    const down = await readyz();
    expect(down.status).toBe(503);
    expect(down.body.status).toBe('unavailable');
    expect(down.body.reason).toMatch(/^database (unreachable|query failed): /);

    await admin.query(`ALTER DATABASE ${created.name} ALLOW_CONNECTIONS true`);
    expect((await readyz()).status).toBe(200);
  });

  it('is 503 when the database is missing a migration this relay ships', async () => {
    const before = await pool.connect().then(async (c) => {
      try {
        return await migrationStatus(c);
      } finally {
        c.release();
      }
    });
    await pool.query(
      'DELETE FROM hookbox.__drizzle_migrations WHERE id = (SELECT max(id) FROM hookbox.__drizzle_migrations)',
    );
    const behind = await readyz();
    expect(behind.status).toBe(503);
    expect(behind.body).toMatchObject({
      status: 'unavailable',
      migrations: { expected: before.expected, applied: before.expected - 1 },
    });
    expect(behind.body.reason).toMatch(/^migrations behind: /);
  });
});

describe('metrics configuration', () => {
  const resolve = (flags: object, env: Record<string, string> = {}) =>
    resolveRelayConfig(flags, { DATABASE_URL: 'postgres://localhost/x', ...env }, 'test').metrics;

  it('is off by default, on 127.0.0.1, with a tenant limit', () => {
    expect(resolve({})).toEqual({ port: null, host: '127.0.0.1', tenantLimit: RELAY_DEFAULTS.metricsTenantLimit });
  });

  it('takes flags over environment variables', () => {
    const env = { HOOKBOX_METRICS_PORT: '9464', HOOKBOX_METRICS_HOST: '0.0.0.0', HOOKBOX_METRICS_TENANT_LIMIT: '5' };
    expect(resolve({}, env)).toEqual({ port: 9464, host: '0.0.0.0', tenantLimit: 5 });
    expect(resolve({ metricsPort: '9000', metricsTenantLimit: '0' }, env)).toEqual({
      port: 9000,
      host: '0.0.0.0',
      tenantLimit: 0,
    });
    expect(resolve({ metricsPort: 'off' }, env).port).toBeNull();
  });

  it('refuses bad values, naming the flag', () => {
    expect(() => resolve({ metricsPort: '70000' })).toThrow(ValidationError);
    expect(() => resolve({ metricsPort: '70000' })).toThrow(/--metrics-port: must be a whole number from 0 to 65535/);
    expect(() => resolve({ metricsTenantLimit: '-1' })).toThrow(/--metrics-tenant-limit/);
    expect(() => resolve({ metricsHost: ' ' })).toThrow(/--metrics-host: must not be empty/);
  });

  it('bounds the tenant label set and the sample interval', () => {
    const labels = new TenantLabels(2);
    expect(['a', 'b', 'c', 'a', 'd', 'b'].map((t) => labels.label(t))).toEqual([
      'a',
      'b',
      '_other',
      'a',
      '_other',
      'b',
    ]);
    expect(new TenantLabels(0).label('a')).toBe('_other');
    expect([0, 10, 15_000, 10_000_000, Number.NaN].map(boundedSampleInterval)).toEqual([
      1_000, 1_000, 15_000, 300_000, 15_000,
    ]);
  });
});

describe('hookbox relay --metrics-port (the CLI)', () => {
  it('lists the metrics flags and their environment variables in --help', async () => {
    const { code, stdout } = await runCli(['relay', '--help']);
    expect(code).toBe(0);
    for (const text of [
      '--metrics-port <port>',
      'HOOKBOX_METRICS_PORT',
      '--metrics-host <host>',
      'HOOKBOX_METRICS_HOST',
      '--metrics-tenant-limit <n>',
      'HOOKBOX_METRICS_TENANT_LIMIT',
    ]) {
      expect(stdout).toContain(text);
    }
  });

  it('serves the admin port while the relay runs and closes it on SIGTERM', async () => {
    const child = spawn(process.execPath, [...CLI, 'relay', '--database-url', db.url, '--metrics-port', '0'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HOOKBOX_LOG_LEVEL: 'info' },
    });
    const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).on('line', (line) => {
          const log = JSON.parse(line) as { msg?: string; url?: string };
          if (log.msg?.startsWith('admin server listening') && log.url) resolve(log.url);
        });
        void exit.then(() => reject(new Error(`relay exited early: ${stderr}`)));
      });
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect((await get(url, '/readyz')).status).toBe(200);
      const text = (await get(url, '/metrics')).body;
      expect(series(text, 'hookbox_deliveries_total', { outcome: 'succeeded' })).toBe(0);
      child.kill('SIGTERM');
      expect(await exit).toBe(0);
      await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exit;
    }
  });
});

function runCli(args: string[]): Promise<{ code: number | null; stdout: string }> {
  const child = spawn(process.execPath, [...CLI, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout })));
}
