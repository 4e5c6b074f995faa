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
 * Postgres, producer (this process), receiver and relay (child processes) share the box.
 * Uses DATABASE_URL when set, else an embedded PostgreSQL with durable (default) settings.
 *
 *   pnpm bench [--runs 3] [--events 20000] [--seconds 5] [--latency-seconds 15] [--noisy-seconds 10]
 */
import { type ChildProcess, fork, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startEmbeddedPostgres } from '@hookbox/devdb';
import { createOutbox, generateSecret, subscriptions } from '@hookbox/outbox';
import pg from 'pg';
import { migrate } from '../apps/relay/src/migrate.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    events: { type: 'string', default: '20000' },
    seconds: { type: 'string', default: '5' },
    'latency-seconds': { type: 'string', default: '15' },
    rate: { type: 'string', default: '200' },
    'noisy-seconds': { type: 'string', default: '10' },
  },
});
const RUNS = Number(args.runs);
const EVENTS = Number(args.events);
const SECONDS = Number(args.seconds);
const LAT_SECONDS = Number(args['latency-seconds']);
const RATE = Number(args.rate);
const NOISY_SECONDS = Number(args['noisy-seconds']);
const WORKERS = 8;

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2
    ? (s[(s.length - 1) / 2] as number)
    : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};
const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;

interface ReceiverStats {
  count: number;
  badSignatures: number;
  duplicates: number;
  first: number;
  last: number;
  receipts: [string, number[]][] | null;
}

class Receiver {
  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {}
  static async start(secret: string): Promise<Receiver> {
    const child = fork(`${root}bench/receiver.ts`, [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, BENCH_SECRET: secret },
    });
    const port = await new Promise<number>((resolve) =>
      child.once('message', (m: { type: string; port: number }) => resolve(m.port)),
    );
    return new Receiver(child, port);
  }
  private ask<T>(type: string): Promise<T> {
    return new Promise((resolve) => {
      this.child.once('message', (m) => resolve(m as T));
      this.child.send({ type });
    });
  }
  reset = () => this.ask('reset');
  record = () => this.ask('record');
  stats = () => this.ask<ReceiverStats>('stats');
  stop() {
    this.child.send({ type: 'exit' });
  }
}

/**
 * The relay as shipped: the compiled `hookbox` binary, executed through its shebang (which
 * sets the Node flags users get). BENCH_RELAY_NODE_ARGS runs it with other Node flags
 * instead, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof' to profile it.
 */
function startRelay(url: string): ChildProcess {
  const bin = `${root}apps/relay/dist/cli.js`;
  const args = [
    'relay',
    '--database-url',
    url,
    '--allow-private-network',
    '127.0.0.0/8',
    '--log-level',
    process.env.BENCH_RELAY_LOG_LEVEL ?? 'warn',
  ];
  const nodeArgs = process.env.BENCH_RELAY_NODE_ARGS?.split(' ').filter(Boolean);
  return nodeArgs
    ? spawn(process.execPath, [...nodeArgs, bin, ...args], { stdio: ['ignore', 'inherit', 'inherit'] })
    : spawn(bin, args, { stdio: ['ignore', 'inherit', 'inherit'] });
}

function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

async function withDatabase<T>(adminUrl: string, fn: (url: string) => Promise<T>): Promise<T> {
  const name = `hookbox_bench_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  try {
    await migrate(u.toString());
    return await fn(u.toString());
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

/**
 * Transactions/s of 8 workers doing BEGIN; INSERT order; [enqueue]; COMMIT for SECONDS;
 * with `notify`, the post-commit wake-up notifier is attached as a low-latency setup would.
 */
async function writeThroughput(
  pool: pg.Pool,
  withOutbox: boolean,
  notify: false | 'after-commit' | 'in-transaction',
  seconds: number,
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

async function waitFor(cond: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
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

/** 4. Noisy neighbours: the healthy tenant alone, then next to 8 hanging and 2 failing endpoints. */
async function noisyNeighbours(pool: pg.Pool, secret: string, receiver: Receiver) {
  await subscriptions.create(pool, {
    tenantId: 'healthy',
    url: `http://127.0.0.1:${receiver.port}/healthy`,
    eventTypes: ['*'],
    secret,
  });
  const quiet = await steadyTenantLatency(pool, receiver, 'healthy', null);
  const noisy = await startNoisyServers(8, 2);
  try {
    for (const port of noisy.ports) {
      await subscriptions.create(pool, { tenantId: 'noisy', url: `http://127.0.0.1:${port}/hook`, eventTypes: ['*'] });
    }
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
    if (relay) {
      relay.kill('SIGTERM');
      await new Promise((r) => relay?.once('exit', r));
    }
    receiver.stop();
    await pool.end();
  }
}

async function main() {
  const build = spawnSync('pnpm', ['build'], { cwd: root, stdio: 'inherit' });
  if (build.status !== 0) throw new Error('pnpm build failed');
  const external = process.env.DATABASE_URL;
  const server = external ? null : await startEmbeddedPostgres({ mode: 'durable' });
  const adminUrl = external ?? (server?.url as string);
  console.log(
    `hookbox bench: ${RUNS} runs; ${EVENTS} events × 2 subscriptions; ${WORKERS} writers for ${SECONDS}s; ${RATE} events/s for ${LAT_SECONDS}s; ` +
      `PostgreSQL: ${external ? 'DATABASE_URL' : 'embedded (durable settings)'}`,
  );
  const results: RunResult[] = [];
  try {
    for (let r = 1; r <= RUNS; r++) {
      const res = await withDatabase(adminUrl, oneRun);
      results.push(res);
      console.log(
        `run ${r}: enqueue ratio ${res.ratio.toFixed(2)} (${res.baseTps.toFixed(0)} → ${res.outboxTps.toFixed(0)} tx/s; ${res.ratioNoNotify.toFixed(2)} without the notifier, ${res.ratioNotifyInTx.toFixed(2)} with NOTIFY inside the transaction) · ` +
          `drain ${res.drainPerSec.toFixed(0)} deliveries/s · latency p50 ${res.p50.toFixed(2)} ms p95 ${res.p95.toFixed(2)} ms p99 ${res.p99.toFixed(2)} ms · relay peak RSS ${res.rssMiB.toFixed(0)} MiB · ` +
          `noisy neighbours: healthy p99 ${res.quietP99.toFixed(2)} ms alone → ${res.noisyP99.toFixed(2)} ms with them (p50 ${res.noisyP50.toFixed(2)} ms, ×${(res.noisyP99 / res.quietP99).toFixed(2)})`,
      );
    }
  } finally {
    await server?.stop();
  }
  const m = (k: keyof RunResult) => median(results.map((r) => r[k]));
  console.log(
    `\nmedian of ${RUNS}: enqueue ratio ${m('ratio').toFixed(2)} (${m('ratioNoNotify').toFixed(2)} without the notifier, ${m('ratioNotifyInTx').toFixed(2)} with NOTIFY inside the transaction) · drain ${m('drainPerSec').toFixed(0)} deliveries/s · ` +
      `latency p50 ${m('p50').toFixed(2)} ms · p95 ${m('p95').toFixed(2)} ms · p99 ${m('p99').toFixed(2)} ms · relay peak RSS ${m('rssMiB').toFixed(0)} MiB · ` +
      `noisy neighbours: healthy p99 ${m('quietP99').toFixed(2)} ms alone, ${m('noisyP99').toFixed(2)} ms with them (median ratio ×${median(results.map((r) => r.noisyP99 / r.quietP99)).toFixed(2)})`,
  );
  console.log(
    'bar: ratio ≥ 0.70 · drain ≥ 12000/s · p50 ≤ 2 ms · p99 ≤ 6 ms · RSS ≤ 150 MiB · noisy p99 ≤ 2 × alone (same run)',
  );
}

main().catch((err) => {
  console.error(`bench failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
