/**
 * `pnpm bench`: hookbox's performance figures on this machine, medians of several runs.
 *
 *  - enqueue ratio: business transactions/s with the outbox write (and the post-commit
 *    notifier) over the same transactions without it, 8 concurrent connections;
 *  - drain: deliveries/s while a relay empties a backlog of N events × 2 subscriptions;
 *  - latency: enqueue-commit → receipt at the receiver, at a steady 200 events/s;
 *  - relay peak RSS (VmHWM of the relay process);
 *  - noisy neighbours: a healthy tenant's latency at RATE events/s, alone and then while
 *    another tenant has 8 endpoints that accept and never answer and 2 that answer 500,
 *    each receiving RATE events/s (same run, same relay).
 *
 * and, on the many-tenants shape (bench/many-tenants.ts: 64 tenants × 2 subscriptions on
 * one receiver origin, ~300-byte payloads, relay concurrency 32), drain with Postgres CPU and
 * WAL bytes per delivery, and latency at the same rate. `--peers` runs graphile-worker and
 * pg-boss on that shape in the same run (bench/peers.ts); `--scale-out` drains it with 1, 2
 * and 4 relays on one database. Each scenario gets a fresh database.
 *
 * Postgres, producer (this process), receiver and relay (child processes) share the box.
 * Uses DATABASE_URL when set, else an embedded PostgreSQL with durable (default) settings.
 *
 * `--ordering` adds the ordering scenario (issue #16) to each run: the enqueue ratio with
 * ordering keys (1,000 keys), and the many-tenants drain and latency with every event on one
 * of 1,000 keys, next to the same shape unordered; `--ordering-only` runs just that.
 *
 *   pnpm bench [--runs 3] [--events 20000] [--seconds 5] [--latency-seconds 15] [--noisy-seconds 10] [--peers] [--scale-out] [--ordering | --ordering-only]
 *   pnpm bench --only noisy [--runs 3] [--noisy-seconds 10]   (the noisy-neighbours phase alone)
 *   pnpm bench --only many [--peers] [--runs 3]   (the many-tenants shape alone, with the peers in the same run)
 */
import { type ChildProcess, spawnSync } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { startEmbeddedPostgres } from '@hookbox/devdb';
import { createOutbox, generateSecret, subscriptions } from '@hookbox/outbox';
import pg from 'pg';
import {
  type DrainCost,
  median,
  now,
  pct,
  peakRssMiB,
  Receiver,
  root,
  sleep,
  startRelay,
  stopProcess,
  waitFor,
  withDatabase,
} from './lib.js';
import { type ManyTenantsResult, manyTenantsRun, ORDERING_KEYS, scaleOutRun } from './many-tenants.js';
import { PEERS, type PeerName, type PeerResult, runPeer } from './peers.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    events: { type: 'string', default: '20000' },
    seconds: { type: 'string', default: '5' },
    'latency-seconds': { type: 'string', default: '15' },
    rate: { type: 'string', default: '200' },
    'noisy-seconds': { type: 'string', default: '10' },
    peers: { type: 'boolean', default: false },
    'scale-out': { type: 'boolean', default: false },
    ordering: { type: 'boolean', default: false },
    'ordering-only': { type: 'boolean', default: false },
    /** Run one part only: `noisy` (the noisy-neighbours phase on its own relay and database) or `many` (the many-tenants shape, with `--peers` the peers too). */
    only: { type: 'string' },
  },
});
if (args.only !== undefined && args.only !== 'noisy' && args.only !== 'many') {
  throw new Error(`--only: expected "noisy" or "many" (got "${args.only}")`);
}
const RUNS = Number(args.runs);
const EVENTS = Number(args.events);
const SECONDS = Number(args.seconds);
const LAT_SECONDS = Number(args['latency-seconds']);
const RATE = Number(args.rate);
const NOISY_SECONDS = Number(args['noisy-seconds']);
const WORKERS = 8;

/**
 * Transactions/s of 8 workers doing BEGIN; INSERT order; [enqueue]; COMMIT for SECONDS;
 * with `notify`, the post-commit wake-up notifier is attached as a low-latency setup would.
 */
async function writeThroughput(
  pool: pg.Pool,
  withOutbox: boolean,
  notify: false | 'after-commit' | 'in-transaction',
  seconds: number,
  ordered = false,
): Promise<number> {
  const outbox = createOutbox();
  const notifier = notify === 'after-commit' ? outbox.attachNotifier(pool) : null;
  const deadline = now() + seconds * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: WORKERS }, async (_, w) => {
      const client = await pool.connect();
      try {
        while (now() < deadline) {
          await client.query('BEGIN');
          const payload = { customer: `c${w}`, total: 4200, items: [{ sku: 'A-1', qty: 2 }], note: 'bench order' };
          const { rows } = await client.query('INSERT INTO orders (tenant_id, body) VALUES ($1, $2) RETURNING id', [
            'bench',
            payload,
          ]);
          if (withOutbox) {
            await outbox.enqueue(client, {
              tenantId: 'ratio',
              type: 'order.created',
              payload: { id: rows[0].id, ...payload },
              // The ordering scenario: 1,000 keys, each writer on its own walk through them.
              ...(ordered ? { orderingKey: `conversation:${(w * 7919 + done * 13) % ORDERING_KEYS}` } : {}),
            });
            // The design hookbox avoids, measured for comparison: commits that NOTIFY queue on one lock.
            if (notify === 'in-transaction') await client.query("SELECT pg_notify('hookbox_events', '')");
          }
          await client.query('COMMIT');
          done++;
        }
      } finally {
        client.release();
      }
    }),
  );
  await notifier?.flush();
  notifier?.detach();
  return done;
}

interface RunResult {
  ratio: number;
  ratioNoNotify: number;
  ratioNotifyInTx: number;
  baseTps: number;
  outboxTps: number;
  drainPerSec: number;
  p50: number;
  p95: number;
  p99: number;
  rssMiB: number;
  /** The healthy tenant's p99 alone, and next to the noisy tenant. */
  quietP99: number;
  noisyP99: number;
  noisyP50: number;
}

/** Servers the noisy tenant owns: `hang` accept and read, and never answer; the others answer 500. */
async function startNoisyServers(hang: number, failing: number): Promise<{ ports: number[]; close(): void }> {
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  const ports: number[] = [];
  for (let i = 0; i < hang + failing; i++) {
    const server =
      i < hang
        ? createNetServer((s) => s.on('data', () => {}))
        : createHttpServer((req, res) => {
            req.resume();
            req.on('end', () => res.writeHead(500).end('no'));
          });
    server.on('connection', (s: Socket) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    ports.push((server.address() as AddressInfo).port);
    servers.push(server);
  }
  return {
    ports,
    close() {
      for (const s of sockets) s.destroy();
      for (const s of servers) s.close();
    },
  };
}

/**
 * `tenantId` enqueues RATE events/s for NOISY_SECONDS (one transaction each, as in the
 * latency phase); with `noise`, the noisy tenant enqueues RATE events/s alongside. Returns
 * the healthy tenant's commit → receipt percentiles.
 */
async function steadyTenantLatency(
  pool: pg.Pool,
  receiver: Receiver,
  tenantId: string,
  noise: string | null,
): Promise<{ p50: number; p99: number }> {
  const outbox = createOutbox();
  await receiver.reset();
  await receiver.record();
  const notifier = outbox.attachNotifier(pool);
  const commits = new Map<string, number>();
  const total = RATE * NOISY_SECONDS;
  const start = now();
  let noiseDone = false;
  const noiseLoop = noise
    ? (async () => {
        // The noisy tenant's events, in batches of RATE/20 every 50 ms.
        for (let tick = 0; !noiseDone; tick++) {
          const wait = start + tick * 50 - now();
          if (wait > 0) await sleep(wait);
          const batch = Array.from({ length: Math.max(1, Math.round(RATE / 20)) }, (_, j) => ({
            tenantId: noise,
            type: 'noise.made',
            payload: { tick, j },
          }));
          await outbox.enqueueMany(pool, batch);
        }
      })()
    : Promise.resolve();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const wait = start + (i * 1000) / RATE - now();
    if (wait > 0) await sleep(wait);
    inflight.push(
      (async () => {
        const { id } = await outbox.enqueue(pool, { tenantId, type: 'order.paid', payload: { i } });
        commits.set(id, now());
      })(),
    );
  }
  await Promise.all(inflight);
  noiseDone = true;
  await noiseLoop;
  await waitFor(async () => (await receiver.stats()).count >= total, 120_000, `${tenantId}'s events`);
  const got = await receiver.stats();
  notifier.detach();
  if (got.duplicates > 0 || got.badSignatures > 0 || got.count !== total) {
    throw new Error(
      `noisy phase: ${got.count}/${total} received, ${got.duplicates} duplicates, ${got.badSignatures} bad signatures`,
    );
  }
  const samples: number[] = [];
  for (const [id, times] of got.receipts ?? []) {
    const c = commits.get(id);
    if (c !== undefined) for (const t of times) samples.push(t - c);
  }
  samples.sort((a, b) => a - b);
  return { p50: pct(samples, 50), p99: pct(samples, 99) };
}

/** Vacuums the hot tables and checkpoints, so the next measurement starts from a clean state. */
async function settle(pool: pg.Pool): Promise<void> {
  await pool.query('VACUUM ANALYZE hookbox.events, hookbox.deliveries, hookbox.delivery_attempts');
  await pool.query('CHECKPOINT');
}

/** 4. Noisy neighbours: the healthy tenant alone, then next to 8 hanging and 2 failing endpoints. */
async function noisyNeighbours(pool: pg.Pool, secret: string, receiver: Receiver) {
  await subscriptions.create(pool, {
    tenantId: 'healthy',
    url: `http://127.0.0.1:${receiver.port}/healthy`,
    eventTypes: ['*'],
    secret,
  });
  // Warm up: one event through, so the quiet figure does not include the relay's start.
  await receiver.reset();
  await createOutbox().enqueue(pool, { tenantId: 'healthy', type: 'order.paid', payload: { warmup: true } });
  await waitFor(async () => (await receiver.stats()).count >= 1, 60_000, 'the warm-up event');
  // Both halves start from the same state: inside the full run the earlier phases leave
  // dead rows and dirty pages behind, and a checkpoint or an autovacuum falling in one half
  // only would be measured as (or hide) the noisy tenant's cost.
  await settle(pool);
  const quiet = await steadyTenantLatency(pool, receiver, 'healthy', null);
  const noisy = await startNoisyServers(8, 2);
  try {
    for (const port of noisy.ports) {
      await subscriptions.create(pool, { tenantId: 'noisy', url: `http://127.0.0.1:${port}/hook`, eventTypes: ['*'] });
    }
    await settle(pool);
    const loud = await steadyTenantLatency(pool, receiver, 'healthy', 'noisy');
    return { quiet, noisy: loud };
  } finally {
    // Hanging requests end now, so the relay's shutdown does not wait out its grace period.
    noisy.close();
  }
}

async function oneRun(url: string): Promise<RunResult> {
  const pool = new pg.Pool({ connectionString: url, max: WORKERS + 2 });
  pool.on('error', (err) => console.error(`bench pool: ${err.message}`));
  const secret = generateSecret();
  const receiver = await Receiver.start(secret);
  let relay: ChildProcess | null = null;
  try {
    await pool.query(
      'CREATE TABLE orders (id bigserial PRIMARY KEY, tenant_id text NOT NULL, body jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())',
    );
    await pool.query('CREATE INDEX ON orders (tenant_id, created_at)');

    // 1. Write path.
    // The variants take turns in 1-second slices, so drift over the run (table growth,
    // checkpoints, the neighbours on the box) falls on all of them alike.
    const variants = [
      [false, false],
      [true, false],
      [true, 'after-commit'],
      [true, 'in-transaction'],
    ] as const;
    const totals = [0, 0, 0, 0];
    for (let slice = 0; slice < SECONDS; slice++) {
      for (const [i, [withOutbox, notify]] of variants.entries()) {
        totals[i] = (totals[i] as number) + (await writeThroughput(pool, withOutbox, notify, 1));
      }
    }
    const [baseTps, plainTps, outboxTps, inTxTps] = totals.map((n) => n / SECONDS) as [number, number, number, number];
    await pool.query("DELETE FROM hookbox.events WHERE tenant_id = 'ratio'");

    // 2. Drain a backlog: EVENTS events × 2 subscriptions.
    for (const [path, eventTypes] of [
      ['/a', ['*']],
      ['/b', ['message.*']],
    ] as const) {
      await subscriptions.create(pool, {
        tenantId: 'bench',
        url: `http://127.0.0.1:${receiver.port}${path}`,
        eventTypes: [...eventTypes],
        secret,
      });
    }
    const outbox = createOutbox();
    for (let i = 0; i < EVENTS; i += 1000) {
      const batch = Array.from({ length: Math.min(1000, EVENTS - i) }, (_, j) => ({
        tenantId: 'bench',
        type: 'message.new',
        payload: { n: i + j, text: 'hello from the benchmark', from: '+15550100' },
      }));
      await outbox.enqueueMany(pool, batch);
    }
    await pool.query('VACUUM ANALYZE hookbox.events');
    await receiver.reset();
    relay = startRelay(url);
    const expected = EVENTS * 2;
    await waitFor(async () => (await receiver.stats()).count >= expected, 300_000, 'the backlog to drain');
    const drained = await receiver.stats();
    const drainPerSec = (drained.count / (drained.last - drained.first)) * 1000;
    if (drained.badSignatures > 0) throw new Error(`${drained.badSignatures} bad signatures`);
    await waitFor(
      async () =>
        (await pool.query("SELECT count(*)::int AS n FROM hookbox.deliveries WHERE status = 'succeeded'")).rows[0].n >=
        expected,
      60_000,
      'outcomes to be recorded',
    );

    // 3. Latency at a steady RATE events/s.
    await receiver.reset();
    await receiver.record();
    const notifier = outbox.attachNotifier(pool);
    const commits = new Map<string, number>();
    const total = RATE * LAT_SECONDS;
    const start = now();
    const inflight: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / RATE;
      const wait = due - now();
      if (wait > 0) await sleep(wait);
      inflight.push(
        (async () => {
          const client = await pool.connect();
          try {
            await client.query('BEGIN');
            await client.query('INSERT INTO orders (tenant_id, body) VALUES ($1, $2)', ['bench', { i }]);
            const { id } = await outbox.enqueue(client, { tenantId: 'bench', type: 'message.new', payload: { i } });
            await client.query('COMMIT');
            commits.set(id, now());
          } finally {
            client.release();
          }
        })(),
      );
    }
    await Promise.all(inflight);
    await waitFor(async () => (await receiver.stats()).count >= total * 2, 60_000, 'latency events');
    const lat = await receiver.stats();
    notifier.detach();
    const samples: number[] = [];
    for (const [id, times] of lat.receipts ?? []) {
      const c = commits.get(id);
      if (c !== undefined) for (const t of times) samples.push(t - c);
    }
    samples.sort((a, b) => a - b);
    if (lat.duplicates > 0 || lat.badSignatures > 0) {
      throw new Error(`latency phase: ${lat.duplicates} duplicates, ${lat.badSignatures} bad signatures`);
    }
    const rssMiB = peakRssMiB(relay.pid as number);
    const noisy = await noisyNeighbours(pool, secret, receiver);
    if (process.env.BENCH_NOISY_BREAKDOWN) await noisyBreakdown(pool);
    return {
      ratio: outboxTps / baseTps,
      ratioNoNotify: plainTps / baseTps,
      ratioNotifyInTx: inTxTps / baseTps,
      baseTps,
      outboxTps,
      drainPerSec,
      p50: pct(samples, 50),
      p95: pct(samples, 95),
      p99: pct(samples, 99),
      rssMiB,
      quietP99: noisy.quiet.p99,
      noisyP99: noisy.noisy.p99,
      noisyP50: noisy.noisy.p50,
    };
  } finally {
    await stopProcess(relay);
    receiver.stop();
    await pool.end();
  }
}

/**
 * The ordering scenario (--ordering): enqueue ratio with ordering keys (1,000 keys) next to
 * the plain outbox write, in alternating one-second slices like the one-tenant ratio.
 */
async function orderingRatio(url: string): Promise<{ ratio: number; plainRatio: number }> {
  const pool = new pg.Pool({ connectionString: url, max: WORKERS + 2 });
  pool.on('error', (err) => console.error(`bench pool: ${err.message}`));
  try {
    await pool.query(
      'CREATE TABLE orders (id bigserial PRIMARY KEY, tenant_id text NOT NULL, body jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())',
    );
    const totals = [0, 0, 0];
    for (let slice = 0; slice < SECONDS; slice++) {
      totals[0] = (totals[0] as number) + (await writeThroughput(pool, false, false, 1));
      totals[1] = (totals[1] as number) + (await writeThroughput(pool, true, 'after-commit', 1));
      totals[2] = (totals[2] as number) + (await writeThroughput(pool, true, 'after-commit', 1, true));
    }
    const [base, plain, ordered] = totals as [number, number, number];
    return { ratio: ordered / base, plainRatio: plain / base };
  } finally {
    await pool.end();
  }
}

interface OrderingRun {
  ratio: number;
  plainRatio: number;
  /** The many-tenants shape with 1,000 ordering keys, and without (same run). */
  ordered: ManyTenantsResult;
  unordered: ManyTenantsResult;
}

async function orderingRun(adminUrl: string, r: number, many?: ManyTenantsResult): Promise<OrderingRun> {
  const { ratio, plainRatio } = await withDatabase(adminUrl, orderingRatio);
  const opts = { events: EVENTS, rate: RATE, seconds: LAT_SECONDS };
  const unordered =
    many ?? (await scenario(adminUrl, (url, receiver, secret) => manyTenantsRun(url, receiver, secret, opts)));
  const ordered = await scenario(adminUrl, (url, receiver, secret) =>
    manyTenantsRun(url, receiver, secret, { ...opts, ordered: true }),
  );
  console.log(
    `run ${r} ordering (${ORDERING_KEYS} keys): enqueue ratio ${f2(ratio)} (${f2(plainRatio)} without keys) · ` +
      `drain ${f0(ordered.drain.perSec)} deliveries/s vs ${f0(unordered.drain.perSec)} unordered (×${f2(ordered.drain.perSec / unordered.drain.perSec)}) · ` +
      `latency ${lat(ordered.latency)} vs ${lat(unordered.latency)} unordered (p99 ×${f2(pct(ordered.latency, 99) / pct(unordered.latency, 99))})`,
  );
  return { ratio, plainRatio, ordered, unordered };
}

function reportOrdering(runs: OrderingRun[]): void {
  const med = (f: (x: OrderingRun) => number) => median(runs.map(f));
  console.log(
    `median of ${runs.length}, ordering (${ORDERING_KEYS} keys): enqueue ratio ${f2(med((x) => x.ratio))} (${f2(med((x) => x.plainRatio))} without keys) · ` +
      `drain ${f0(med((x) => x.ordered.drain.perSec))} deliveries/s, same-run ratio to unordered ×${f2(med((x) => x.ordered.drain.perSec / x.unordered.drain.perSec))} · ` +
      `latency p50 ${f2(med((x) => pct(x.ordered.latency, 50)))} ms p99 ${f2(med((x) => pct(x.ordered.latency, 99)))} ms, same-run p99 ratio ×${f2(med((x) => pct(x.ordered.latency, 99) / pct(x.unordered.latency, 99)))}`,
  );
  console.log('ordering bar: enqueue ratio ≥ 0.65 · drain ≥ 0.70 × unordered · p99 ≤ 2 × unordered (same run)');
}

/** Everything one run measures: the one-tenant figures, the many-tenants shape, and the optional parts. */
interface FullRun {
  /** null with `--only many`. */
  one: RunResult | null;
  many: ManyTenantsResult;
  peers: Partial<Record<PeerName, PeerResult>>;
  scaleOut: { relays: number; perSec: number; pgCpuMsPerDelivery: number }[];
}

const f0 = (x: number) => x.toFixed(0);
const f2 = (x: number) => x.toFixed(2);
/** The whole box during a drain: CPU per delivery and how busy it was (is the drain CPU-bound?). */
const host = (d: DrainCost) =>
  `whole box ${f2(d.hostCpuMsPerDelivery)} ms CPU per delivery, ${f0(100 * d.hostBusy)} % busy`;
const lat = (xs: number[]) => `p50 ${f2(pct(xs, 50))} ms p99 ${f2(pct(xs, 99))} ms`;

/** A fresh database and receiver for one scenario. */
async function scenario<T>(adminUrl: string, fn: (url: string, receiver: Receiver, secret: string) => Promise<T>) {
  return await withDatabase(adminUrl, async (url) => {
    const secret = generateSecret();
    const receiver = await Receiver.start(secret);
    try {
      return await fn(url, receiver, secret);
    } finally {
      receiver.stop();
    }
  });
}

/** BENCH_NOISY_BREAKDOWN: where the healthy tenant's time went in the noisy-neighbours phase. */
async function noisyBreakdown(pool: pg.Pool): Promise<void> {
  // Where the healthy tenant's time went: commit → fan-out, fan-out → last attempt start.
  const { rows } = await pool.query(
    `SELECT e.created_at >= (SELECT min(created_at) FROM hookbox.subscriptions WHERE tenant_id = 'noisy') AS noisy,
              percentile_disc(ARRAY[0.5, 0.99, 1]) WITHIN GROUP (ORDER BY round(extract(epoch FROM e.fanned_out_at - e.created_at) * 1000)) AS fan,
              percentile_disc(ARRAY[0.5, 0.99, 1]) WITHIN GROUP (ORDER BY round(extract(epoch FROM d.last_attempt_at - e.fanned_out_at) * 1000)) AS send,
              percentile_disc(ARRAY[0.5, 0.99, 1]) WITHIN GROUP (ORDER BY round(extract(epoch FROM d.completed_at - d.last_attempt_at) * 1000)) AS record,
              max(d.attempts) AS max_attempts, count(*) AS n, min(e.created_at) AS first, max(e.created_at) AS last, (SELECT min(created_at) FROM hookbox.subscriptions WHERE tenant_id = 'noisy') AS noisy_at
       FROM hookbox.deliveries d JOIN hookbox.events e ON e.id = d.event_id WHERE d.tenant_id = 'healthy' GROUP BY 1`,
  );
  for (const r of rows) console.log('healthy breakdown (ms, p50/p99/max):', JSON.stringify(r));
  // The same per 250 ms since the noisy tenant's first subscription: where in time the tail is.
  const { rows: slices } = await pool.query(
    `WITH h AS (
         SELECT floor(extract(epoch FROM e.created_at - (SELECT min(created_at) FROM hookbox.subscriptions WHERE tenant_id = 'noisy')) * 4) / 4 AS s,
                extract(epoch FROM e.fanned_out_at - e.created_at) * 1000 AS fan,
                extract(epoch FROM d.last_attempt_at - e.fanned_out_at) * 1000 AS send
         FROM hookbox.deliveries d JOIN hookbox.events e ON e.id = d.event_id WHERE d.tenant_id = 'healthy')
       SELECT s, count(*) AS n, round(max(fan)) AS max_fan, round(max(send)) AS max_send,
              round(percentile_disc(0.5) WITHIN GROUP (ORDER BY fan + send)) AS p50
       FROM h WHERE s >= -1 GROUP BY s HAVING max(fan) + max(send) > 20 OR s < 2 ORDER BY s`,
  );
  for (const r of slices) console.log('healthy by time since noise (s, ms):', JSON.stringify(r));
  const { rows: mix } = await pool.query(
    `WITH h AS (SELECT d.created_at, extract(epoch FROM d.last_attempt_at - e.created_at) * 1000 AS lat
                  FROM hookbox.deliveries d JOIN hookbox.events e ON e.id = d.event_id
                  WHERE d.tenant_id = 'healthy' AND e.created_at >= (SELECT min(created_at) FROM hookbox.subscriptions WHERE tenant_id = 'noisy')),
            n AS (SELECT created_at, count(*) AS c FROM hookbox.deliveries WHERE tenant_id = 'noisy' GROUP BY 1)
       SELECT CASE WHEN coalesce(n.c,0) = 0 THEN '0' WHEN n.c <= 50 THEN '1-50' WHEN n.c <= 150 THEN '51-150' ELSE '>150' END AS noisy_in_batch,
              count(*) AS n, round(percentile_disc(0.5) WITHIN GROUP (ORDER BY lat)) AS p50, round(percentile_disc(0.99) WITHIN GROUP (ORDER BY lat)) AS p99,
              sum((lat > 12)::int) AS over12
       FROM h LEFT JOIN n ON n.created_at = h.created_at GROUP BY 1 ORDER BY 1`,
  );
  for (const r of mix) console.log('healthy by noisy deliveries in the same fan-out:', JSON.stringify(r));
}

/** `--only noisy`: the noisy-neighbours phase on a fresh database and relay. */
async function noisyOnlyRun(
  url: string,
): Promise<{ quiet: { p50: number; p99: number }; noisy: { p50: number; p99: number } }> {
  const pool = new pg.Pool({ connectionString: url, max: WORKERS + 2 });
  pool.on('error', (err) => console.error(`bench pool: ${err.message}`));
  const secret = generateSecret();
  const receiver = await Receiver.start(secret);
  const relay = startRelay(url);
  try {
    const result = await noisyNeighbours(pool, secret, receiver);
    if (process.env.BENCH_NOISY_BREAKDOWN) await noisyBreakdown(pool);
    return result;
  } finally {
    await stopProcess(relay);
    receiver.stop();
    await pool.end();
  }
}

async function noisyOnly(adminUrl: string): Promise<void> {
  const ratios: number[] = [];
  const alone: number[] = [];
  const withThem: number[] = [];
  for (let r = 1; r <= RUNS; r++) {
    const load = loadavg()[0] as number;
    const x = await withDatabase(adminUrl, noisyOnlyRun);
    ratios.push(x.noisy.p99 / x.quiet.p99);
    alone.push(x.quiet.p99);
    withThem.push(x.noisy.p99);
    console.log(
      `run ${r} noisy neighbours: healthy p99 ${f2(x.quiet.p99)} ms alone (p50 ${f2(x.quiet.p50)} ms) → ${f2(x.noisy.p99)} ms with them (p50 ${f2(x.noisy.p50)} ms, ×${f2(x.noisy.p99 / x.quiet.p99)}) · load average ${f2(load)} → ${f2(loadavg()[0] as number)}`,
    );
  }
  console.log(
    `\nmedian of ${RUNS}, noisy neighbours: healthy p99 ${f2(median(alone))} ms alone, ${f2(median(withThem))} ms with them (median ratio ×${f2(median(ratios))})`,
  );
  console.log('bar: noisy p99 ≤ 2 × alone (same run)');
}

/** The many-tenants shape, hookbox and (with --peers) graphile-worker and pg-boss, in one run. */
async function manyRun(adminUrl: string, r: number): Promise<Pick<FullRun, 'many' | 'peers'>> {
  const opts = { events: EVENTS, rate: RATE, seconds: LAT_SECONDS };
  const many = await scenario(adminUrl, (url, receiver, secret) => manyTenantsRun(url, receiver, secret, opts));
  console.log(
    `run ${r} many tenants, hookbox: drain ${f0(many.drain.perSec)} deliveries/s (Postgres CPU ${f2(many.drain.pgCpuMsPerDelivery)} ms, relay CPU ${f2(many.drain.workerCpuMsPerDelivery)} ms, WAL ${f0(many.drain.walBytesPerDelivery)} B per delivery; ${host(many.drain)}) · ` +
      `latency ${lat(many.latency)} · relay peak RSS ${f0(many.rssMiB)} MiB`,
  );
  const peers: FullRun['peers'] = {};
  if (args.peers) {
    // BENCH_PEERS=graphile-worker runs only the peers named (comma-separated), for quicker A/Bs.
    const only = process.env.BENCH_PEERS?.split(',');
    for (const name of Object.keys(PEERS) as PeerName[]) {
      if (only && !only.includes(name)) continue;
      const p = await scenario(adminUrl, (url, receiver, secret) => runPeer(name, url, receiver, secret, opts));
      peers[name] = p;
      console.log(
        `run ${r} many tenants, ${name}: drain ${f0(p.drain.perSec)} deliveries/s (Postgres CPU ${f2(p.drain.pgCpuMsPerDelivery)} ms, worker CPU ${f2(p.drain.workerCpuMsPerDelivery)} ms, WAL ${f0(p.drain.walBytesPerDelivery)} B per delivery; ${host(p.drain)}) · latency ${lat(p.latency)}`,
      );
    }
  }
  return { many, peers };
}

async function fullRun(adminUrl: string, r: number): Promise<FullRun> {
  const one = await withDatabase(adminUrl, oneRun);
  console.log(
    `run ${r} one tenant: enqueue ratio ${f2(one.ratio)} (${f0(one.baseTps)} → ${f0(one.outboxTps)} tx/s; ${f2(one.ratioNoNotify)} without the notifier, ${f2(one.ratioNotifyInTx)} with NOTIFY inside the transaction) · ` +
      `drain ${f0(one.drainPerSec)} deliveries/s · latency p50 ${f2(one.p50)} ms p95 ${f2(one.p95)} ms p99 ${f2(one.p99)} ms · relay peak RSS ${f0(one.rssMiB)} MiB · ` +
      `noisy neighbours: healthy p99 ${f2(one.quietP99)} ms alone → ${f2(one.noisyP99)} ms with them (p50 ${f2(one.noisyP50)} ms, ×${f2(one.noisyP99 / one.quietP99)})`,
  );
  const { many, peers } = await manyRun(adminUrl, r);
  const scaleOut: FullRun['scaleOut'] = [];
  if (args['scale-out']) {
    for (const relays of [1, 2, 4]) {
      const d = await scenario(adminUrl, (url, receiver, secret) =>
        scaleOutRun(url, receiver, secret, { events: EVENTS, relays }),
      );
      scaleOut.push({ relays, perSec: d.perSec, pgCpuMsPerDelivery: d.pgCpuMsPerDelivery });
      console.log(
        `run ${r} scale-out, ${relays} relay(s): drain ${f0(d.perSec)} deliveries/s · Postgres CPU ${f2(d.pgCpuMsPerDelivery)} ms per delivery`,
      );
    }
  }
  return { one, many, peers, scaleOut };
}

async function main() {
  const build = spawnSync('pnpm', ['build'], { cwd: root, stdio: 'inherit' });
  if (build.status !== 0) throw new Error('pnpm build failed');
  const external = process.env.DATABASE_URL;
  const server = external ? null : await startEmbeddedPostgres({ mode: 'durable' });
  const adminUrl = external ?? (server?.url as string);
  console.log(
    `hookbox bench: ${RUNS} runs; ${EVENTS} events × 2 subscriptions (one tenant, and 64 tenants × 2); ${WORKERS} writers for ${SECONDS}s; ${RATE} events/s for ${LAT_SECONDS}s` +
      `${args.peers ? '; peers: graphile-worker, pg-boss' : ''}${args['scale-out'] ? '; scale-out: 1, 2, 4 relays' : ''}; ` +
      `PostgreSQL: ${external ? 'DATABASE_URL' : 'embedded (durable settings)'}`,
  );
  if (args.only === 'noisy') {
    try {
      await noisyOnly(adminUrl);
    } finally {
      await server?.stop();
    }
    return;
  }
  const runs: FullRun[] = [];
  const orderingRuns: OrderingRun[] = [];
  try {
    for (let r = 1; r <= RUNS; r++) {
      if (args['ordering-only']) {
        orderingRuns.push(await orderingRun(adminUrl, r));
        continue;
      }
      if (args.only === 'many') {
        runs.push({ one: null, ...(await manyRun(adminUrl, r)), scaleOut: [] });
        continue;
      }
      const full = await fullRun(adminUrl, r);
      runs.push(full);
      if (args.ordering) orderingRuns.push(await orderingRun(adminUrl, r, full.many));
    }
  } finally {
    await server?.stop();
  }
  if (orderingRuns.length > 0) reportOrdering(orderingRuns);
  if (runs.length === 0) return;
  const med = (f: (x: FullRun) => number) => median(runs.map(f));
  const one = (x: FullRun) => x.one as RunResult;
  if (runs[0]?.one) {
    console.log(
      `\nmedian of ${RUNS}, one tenant: enqueue ratio ${f2(med((x) => one(x).ratio))} (${f2(med((x) => one(x).ratioNoNotify))} without the notifier, ${f2(med((x) => one(x).ratioNotifyInTx))} with NOTIFY inside the transaction) · drain ${f0(med((x) => one(x).drainPerSec))} deliveries/s · ` +
        `latency p50 ${f2(med((x) => one(x).p50))} ms · p95 ${f2(med((x) => one(x).p95))} ms · p99 ${f2(med((x) => one(x).p99))} ms · relay peak RSS ${f0(med((x) => one(x).rssMiB))} MiB · ` +
        `noisy neighbours: healthy p99 ${f2(med((x) => one(x).quietP99))} ms alone, ${f2(med((x) => one(x).noisyP99))} ms with them (median ratio ×${f2(med((x) => one(x).noisyP99 / one(x).quietP99))})`,
    );
  }
  const systems: [string, (x: FullRun) => { drain: DrainCost; latency: number[] } | undefined][] = [
    ['hookbox', (x) => x.many],
    ...(Object.keys(PEERS) as PeerName[]).map(
      (n) => [n, (x: FullRun) => x.peers[n]] as [string, (x: FullRun) => PeerResult | undefined],
    ),
  ];
  for (const [name, get] of systems) {
    if (!get(runs[0] as FullRun)) continue;
    const g = (x: FullRun) => get(x) as NonNullable<ReturnType<typeof get>>;
    console.log(
      `median of ${RUNS}, many tenants, ${name}: drain ${f0(med((x) => g(x).drain.perSec))} deliveries/s · Postgres CPU ${f2(med((x) => g(x).drain.pgCpuMsPerDelivery))} ms, worker CPU ${f2(med((x) => g(x).drain.workerCpuMsPerDelivery))} ms, WAL ${f0(med((x) => g(x).drain.walBytesPerDelivery))} B per delivery · ` +
        `whole box ${f2(med((x) => g(x).drain.hostCpuMsPerDelivery))} ms CPU per delivery, ${f0(100 * med((x) => g(x).drain.hostBusy))} % busy · ` +
        `latency p50 ${f2(med((x) => pct(g(x).latency, 50)))} ms p99 ${f2(med((x) => pct(g(x).latency, 99)))} ms`,
    );
  }
  // Ratios within each run (the box is shared: absolute figures drift between runs), then their median.
  console.log(
    `median of ${RUNS} same-run ratios:` +
      (runs[0]?.one
        ? ` many-tenants drain / one-tenant drain ${f2(med((x) => x.many.drain.perSec / one(x).drainPerSec))} ·`
        : '') +
      (runs[0]?.peers['graphile-worker']
        ? ` hookbox / graphile-worker drain ${f2(med((x) => x.many.drain.perSec / (x.peers['graphile-worker'] as PeerResult).drain.perSec))}` +
          ` · p50 ${f2(med((x) => pct(x.many.latency, 50) / pct((x.peers['graphile-worker'] as PeerResult).latency, 50)))}` +
          ` · p99 ${f2(med((x) => pct(x.many.latency, 99) / pct((x.peers['graphile-worker'] as PeerResult).latency, 99)))}`
        : '') +
      (runs[0]?.peers['pg-boss']
        ? ` · hookbox / pg-boss drain ${f2(med((x) => x.many.drain.perSec / (x.peers['pg-boss'] as PeerResult).drain.perSec))}`
        : '') +
      ` · many-tenants relay peak RSS ${f0(med((x) => x.many.rssMiB))} MiB`,
  );
  if (runs[0]?.scaleOut.length) {
    for (const [i, { relays }] of runs[0].scaleOut.entries()) {
      console.log(
        `median of ${RUNS}, scale-out ${relays} relay(s): drain ${f0(med((x) => (x.scaleOut[i] as FullRun['scaleOut'][number]).perSec))} deliveries/s · Postgres CPU ${f2(med((x) => (x.scaleOut[i] as FullRun['scaleOut'][number]).pgCpuMsPerDelivery))} ms per delivery`,
      );
    }
  }
  console.log(
    'bar: ratio ≥ 0.70 · one-tenant drain ≥ 12000/s · p50 ≤ 2 ms · p99 ≤ 6 ms · RSS ≤ 150 MiB · noisy p99 ≤ 2 × alone (same run) · many tenants ≥ 1.5× graphile-worker and within 15 % of one tenant',
  );
}

main().catch((err) => {
  console.error(`bench failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
