/**
 * Does retention stall delivery? Seeds ~1,000,000 old finished deliveries (with their
 * events and attempts), keeps a relay busy with a steady stream of fresh events to a local
 * receiver (the relay runs at its capacity), and measures its deliveries/s in alternating
 * windows: without cleanup, with the relay's periodic cleanup at its defaults, without, …
 * Each "with" window is compared with the mean of the "without" windows on either side, so
 * the slow drift of a long run (tables growing, autovacuum) cancels out. Then the cleanup
 * runs flat out (busyFraction 1, no pause) until every old row is gone, measured the same
 * way. Reports the rate difference, how fast each setting deletes, and how long it took.
 *
 *   npx tsx bench/cleanup.ts [--rows 1000000] [--pairs 16] [--window 5]
 *
 * Processes: this one (PostgreSQL setup, producer, report), a relay child (the relay plus
 * startPeriodicCleanup on the relay's own pool, as `hookbox relay` would run them) and a
 * receiver child. Only 127.0.0.1 traffic. Uses DATABASE_URL when set (it writes ~3M rows
 * there: use a scratch database), else an embedded PostgreSQL with durable settings.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startEmbeddedPostgres } from '@hookbox/devdb';
import { createOutbox, subscriptions } from '@hookbox/outbox';
import pg from 'pg';
import { resolveRelayConfig } from '../apps/relay/src/config.js';
import { createLogger } from '../apps/relay/src/logger.js';
import { migrate } from '../apps/relay/src/migrate.js';
import { startPeriodicCleanup } from '../apps/relay/src/relay/cleanup.js';
import { createRelay } from '../apps/relay/src/relay/relay.js';

const self = fileURLToPath(import.meta.url);
const { values: args } = parseArgs({
  options: {
    role: { type: 'string', default: 'main' },
    rows: { type: 'string', default: '1000000' },
    pairs: { type: 'string', default: '16' },
    window: { type: 'string', default: '5' },
    'max-cleanup': { type: 'string', default: '300' },
  },
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const DAY = 24 * 60 * 60 * 1000;

type Msg = { type: string; [k: string]: unknown };

function nextMessage(child: ChildProcess, type: string, timeoutMs = 60_000): Promise<Msg> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${type}" from child within ${timeoutMs} ms`)), timeoutMs);
    const on = (m: Msg) => {
      if (m.type !== type) return;
      clearTimeout(timer);
      child.off('message', on);
      resolve(m);
    };
    child.on('message', on);
  });
}

// ---- receiver child: answers 204, counts -------------------------------------------------

function receiverMain(): void {
  let count = 0;
  const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume();
    req.on('end', () => {
      count++;
      res.writeHead(204).end();
    });
  });
  server.listen(0, '127.0.0.1', () => process.send?.({ type: 'ready', port: (server.address() as AddressInfo).port }));
  process.on('message', (m: Msg) => {
    if (m.type === 'count') process.send?.({ type: 'count', count, at: performance.timeOrigin + performance.now() });
    if (m.type === 'exit') server.close(() => process.exit(0));
  });
}

// ---- relay child: the relay, and on request the periodic cleanup ---------------------------

function relayMain(): void {
  const url = process.env.BENCH_URL as string;
  const { options } = resolveRelayConfig(
    { databaseUrl: url, allowPrivateNetwork: ['127.0.0.0/8'], logLevel: 'warn' },
    {},
    'hookbox-bench',
  );
  // Cleanup's summary line comes back to the parent; everything else at warn goes to stderr.
  const sink = new (class extends Writable {
    override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        const rec = JSON.parse(line) as Record<string, unknown>;
        if (rec.part === 'cleanup') process.send?.({ type: 'cleanup-log', rec });
        else if (Number(rec.level) >= 40) process.stderr.write(`${line}\n`);
      }
      cb();
    }
  })();
  const logger = createLogger('info', sink);
  // As `hookbox relay` builds its pool (apps/relay/src/commands/relay.ts).
  const db = new pg.Pool({
    connectionString: url,
    max: 4,
    application_name: 'hookbox-relay',
    options: '-c synchronous_commit=off',
  });
  const relay = createRelay({ db, logger: logger.child({ part: 'relay' }), options });
  relay.start();
  let periodic: { stop(): Promise<void> } | null = null;
  process.on('message', async (m: Msg) => {
    if (m.type === 'start-cleanup') {
      periodic = startPeriodicCleanup({
        db,
        logger,
        olderThanMs: 30 * DAY,
        intervalMs: 3_600_000,
        ...(m.settings as object),
        onBatch: (p) => process.send?.({ type: 'cleanup-progress', p }),
      });
    }
    if (m.type === 'stop-cleanup') {
      await periodic?.stop();
      periodic = null;
      process.send?.({ type: 'cleanup-stopped' });
    }
    if (m.type === 'exit') {
      await periodic?.stop();
      await relay.stop();
      await db.end();
      process.exit(0);
    }
  });
  process.send?.({ type: 'ready' });
}

// ---- main ------------------------------------------------------------------------------

// UUIDv7 of a given time (the format of hookbox.uuid_v7()), so old events sort as old.
const UUID_V7_AT = (ts: string) => `encode(set_bit(set_bit(
  overlay(uuid_send(gen_random_uuid())
          PLACING substring(int8send((extract(epoch FROM ${ts}) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
  52, 1), 53, 1), 'hex')::uuid`;

async function seedOld(pool: pg.Pool, rows: number, subscriptionId: string): Promise<number> {
  const started = performance.now();
  // One event per delivery, 40–70 days old; 90% succeeded with one attempt, 10% dead with three.
  await pool.query(
    `INSERT INTO hookbox.events (id, tenant_id, type, payload, created_at, fanned_out_at)
     SELECT ${UUID_V7_AT('ts')}, 'bench-old', 'message.new', '{"n":1,"text":"an old message"}', ts, ts + interval '1 second'
     FROM (SELECT now() - interval '70 days' + g * (interval '30 days' / $1::int) AS ts
           FROM generate_series(1, $1::int) g) s`,
    [rows],
  );
  await pool.query(
    `INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, status, attempts, next_attempt_at,
                                     last_status, last_attempt_at, created_at, completed_at)
     SELECT e.id, $1, e.tenant_id, CASE WHEN random() < 0.1 THEN 'dead' ELSE 'succeeded' END, 1, e.created_at,
            200, e.created_at, e.created_at, e.created_at + interval '2 seconds'
     FROM hookbox.events e WHERE e.tenant_id = 'bench-old' ORDER BY e.id`,
    [subscriptionId],
  );
  await pool.query(`UPDATE hookbox.deliveries SET attempts = 3, last_status = 500 WHERE status = 'dead'`);
  await pool.query(
    `INSERT INTO hookbox.delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error_class)
     SELECT d.id, a, d.created_at, 12, CASE WHEN d.status = 'dead' THEN 500 ELSE 200 END,
            CASE WHEN d.status = 'dead' THEN 'http_status' END
     FROM hookbox.deliveries d, generate_series(1, d.attempts) a`,
  );
  await pool.query('VACUUM ANALYZE hookbox.events, hookbox.deliveries, hookbox.delivery_attempts');
  await pool.query('CHECKPOINT');
  return (performance.now() - started) / 1000;
}

/** Keeps 2,000–6,000 fresh events waiting, so the relay always has work: a steady stream at its capacity. */
function startProducer(pool: pg.Pool): { stop(): Promise<void>; produced(): number } {
  const outbox = createOutbox();
  let stopped = false;
  let produced = 0;
  const loop = (async () => {
    while (!stopped) {
      const { rows } = await pool.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM hookbox.events WHERE fanned_out_at IS NULL',
      );
      const backlog = rows[0]?.n ?? 0;
      if (backlog < 2_000) {
        const events = Array.from({ length: 4_000 }, (_, i) => ({
          tenantId: 'bench',
          type: 'message.new',
          payload: { n: produced + i, text: 'hello from the cleanup benchmark', from: '+15550100' },
        }));
        for (let i = 0; i < events.length; i += 500) await outbox.enqueueMany(pool, events.slice(i, i + 500));
        produced += events.length;
      }
      await sleep(100);
    }
  })();
  return {
    produced: () => produced,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

async function main(): Promise<void> {
  const rows = Number(args.rows);
  const windowS = Number(args.window);
  const pairs = Number(args.pairs);
  const maxCleanupS = Number(args['max-cleanup']);
  const embedded = process.env.DATABASE_URL ? null : await startEmbeddedPostgres({ mode: 'durable' });
  const url = process.env.DATABASE_URL ?? (embedded as { url: string }).url;
  const children: ChildProcess[] = [];
  const pool = new pg.Pool({ connectionString: url, max: 4, application_name: 'hookbox-bench' });
  try {
    console.log(
      `bench/cleanup: PostgreSQL ${embedded ? 'embedded (durable settings)' : 'from DATABASE_URL'}, ${cpus().length} CPUs shared by PostgreSQL, relay, receiver and producer`,
    );
    await migrate(url);

    const receiver = fork(self, ['--role', 'receiver'], { execArgv: ['--import', 'tsx'] });
    children.push(receiver);
    const { port } = (await nextMessage(receiver, 'ready')) as unknown as { port: number };
    await subscriptions.create(pool, { tenantId: 'bench', url: `http://127.0.0.1:${port}/hook`, eventTypes: ['*'] });
    const oldSub = await subscriptions.create(pool, {
      tenantId: 'bench-old',
      url: `http://127.0.0.1:${port}/old`,
      eventTypes: ['*'],
    });
    const seedS = await seedOld(pool, rows, oldSub.id);
    const { rows: sizes } = await pool.query(
      `SELECT (SELECT count(*) FROM hookbox.deliveries)::int AS d, (SELECT count(*) FROM hookbox.delivery_attempts)::int AS a,
              (SELECT count(*) FROM hookbox.events)::int AS e,
              pg_size_pretty(pg_total_relation_size('hookbox.deliveries') + pg_total_relation_size('hookbox.delivery_attempts')
                             + pg_total_relation_size('hookbox.events')) AS size`,
    );
    console.log(
      `seeded ${fmt(sizes[0].d)} old finished deliveries, ${fmt(sizes[0].a)} attempts, ${fmt(sizes[0].e)} events (${sizes[0].size}) in ${seedS.toFixed(1)} s`,
    );

    const producer = startProducer(pool);
    const relay = fork(self, ['--role', 'relay'], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, BENCH_URL: url },
    });
    children.push(relay);
    await nextMessage(relay, 'ready');
    let progress = { deliveries: 0, attempts: 0, events: 0, batches: 0 };
    let finished: Record<string, unknown> | null = null;
    relay.on('message', (m: Msg) => {
      if (m.type === 'cleanup-progress') progress = m.p as typeof progress;
      const rec = m.rec as Record<string, unknown> | undefined;
      if (m.type === 'cleanup-log' && rec?.msg === 'cleanup deleted old rows' && rec.complete === true) finished = rec;
    });
    const count = async () => {
      const p = nextMessage(receiver, 'count');
      receiver.send({ type: 'count' });
      return (await p) as unknown as { count: number; at: number };
    };
    /** Deliveries/s for `seconds` (or until `until()`), and the slowest 1-second slice. */
    const measure = async (seconds: number, until?: () => boolean) => {
      const start = await count();
      let prev = start;
      let slowest = Number.POSITIVE_INFINITY;
      for (let i = 0; until ? !until() : i < seconds; i++) {
        await sleep(1000);
        const now = await count();
        slowest = Math.min(slowest, ((now.count - prev.count) / (now.at - prev.at)) * 1000);
        prev = now;
      }
      return {
        perS: ((prev.count - start.count) / (prev.at - start.at)) * 1000,
        slowest,
        seconds: (prev.at - start.at) / 1000,
      };
    };
    const show = (label: string, m: { perS: number; slowest: number; seconds: number }) =>
      console.log(
        `${label.padEnd(34)} ${fmt(m.perS).padStart(6)} deliveries/s (slowest second ${fmt(m.slowest)}) over ${m.seconds.toFixed(0)} s`,
      );
    const startCleanup = async (settings: Record<string, number>) => {
      progress = { deliveries: 0, attempts: 0, events: 0, batches: 0 };
      relay.send({ type: 'start-cleanup', settings });
    };
    const stopCleanup = async () => {
      const stopped = nextMessage(relay, 'cleanup-stopped');
      relay.send({ type: 'stop-cleanup' });
      await stopped;
    };

    await sleep(5_000); // warm-up: connections, JIT, a steady backlog
    type Window = Awaited<ReturnType<typeof measure>>;
    const ratios: number[] = [];
    let gentle = { deliveries: 0, attempts: 0, events: 0, batches: 0, seconds: 0 };
    let off: Window = await measure(windowS);
    show('no cleanup', off);
    for (let i = 0; i < pairs; i++) {
      await startCleanup({});
      const t0 = performance.now();
      const on = await measure(windowS);
      const seconds = (performance.now() - t0) / 1000;
      await stopCleanup();
      gentle = {
        deliveries: gentle.deliveries + progress.deliveries,
        attempts: gentle.attempts + progress.attempts,
        events: gentle.events + progress.events,
        batches: gentle.batches + progress.batches,
        seconds: gentle.seconds + seconds,
      };
      show('cleanup at relay defaults', on);
      const next = await measure(windowS);
      show('no cleanup', next);
      ratios.push(on.perS / ((off.perS + next.perS) / 2));
      off = next;
    }

    await startCleanup({ busyFraction: 1, pauseMs: 0 });
    const fastStart = performance.now();
    const d = await measure(0, () => finished !== null || performance.now() - fastStart > maxCleanupS * 1000);
    const done = finished as Record<string, unknown> | null;
    if (!done) throw new Error(`cleanup did not finish within --max-cleanup ${maxCleanupS} s`);
    show('cleanup flat out, to the end', d);
    const e = await measure(windowS);
    show('no cleanup', e);
    const fastS = Number(done.durationMs) / 1000;
    const fastRatio = d.perS / ((off.perS + e.perS) / 2);

    // Mean of the paired differences with a 95% confidence interval (Student's t).
    const diffs = ratios.map((r) => (1 - r) * 100);
    const mean = diffs.reduce((x, y) => x + y, 0) / diffs.length;
    const sd = Math.sqrt(diffs.reduce((x, y) => x + (y - mean) ** 2, 0) / Math.max(1, diffs.length - 1));
    const T95 = [12.71, 4.3, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23, 2.2, 2.18, 2.16, 2.14, 2.13, 2.12];
    const half = (T95[diffs.length - 2] ?? 2.0) * (sd / Math.sqrt(diffs.length));
    console.log(
      `\nrelay defaults (batch 500, busyFraction 0.1): delivery rate ${mean.toFixed(1)}% lower on average (95% CI ${(mean - half).toFixed(1)}% to ${(mean + half).toFixed(1)}%) over ${diffs.length} windows; each window vs its neighbours: ${diffs.map((d) => `${d.toFixed(0)}%`).join(' ')}`,
    );
    const pace = gentle.deliveries / gentle.seconds;
    console.log(
      `   deleted ${fmt(gentle.deliveries)} deliveries + ${fmt(gentle.attempts)} attempts in ${fmt(gentle.batches)} batches over ${gentle.seconds.toFixed(0)} s: ${fmt(pace)} old deliveries/s; all ${fmt(rows)} (and their events) would take about ${((2 * rows) / pace / 60).toFixed(0)} min at this pace`,
    );
    console.log(
      `flat out (busyFraction 1, no pause): delivery rate ${((1 - fastRatio) * 100).toFixed(1)}% lower; the remaining ${fmt(Number(done.deliveries))} deliveries, ${fmt(Number(done.attempts))} attempts and ${fmt(Number(done.events))} events took ${fastS.toFixed(1)} s (${fmt(Number(done.batches))} batches)`,
    );
    console.log(
      `cleanup of the ${fmt(rows)} old deliveries took ${(gentle.seconds + fastS).toFixed(0)} s of cleanup time in all`,
    );

    await producer.stop();
    relay.send({ type: 'exit' });
    await new Promise((r) => relay.once('exit', r));
    const { rows: left } = await pool.query(
      `SELECT (SELECT count(*) FROM hookbox.deliveries WHERE tenant_id = 'bench-old')::int AS d,
              (SELECT count(*) FROM hookbox.events WHERE tenant_id = 'bench-old')::int AS e,
              (SELECT count(*) FROM hookbox.deliveries WHERE tenant_id = 'bench')::int AS fresh`,
    );
    console.log(
      `old rows left: ${left[0].d} deliveries, ${left[0].e} events; fresh deliveries kept: ${fmt(left[0].fresh)}`,
    );
    receiver.send({ type: 'exit' });
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await pool.end();
    await embedded?.stop();
  }
}

if (args.role === 'receiver') receiverMain();
else if (args.role === 'relay') relayMain();
else {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
