/**
 * The same signed fan-out through graphile-worker and pg-boss (`pnpm bench --peers`), on
 * the many-tenants shape: each event becomes one job per matching subscription (2 per
 * event), written by the producer; a worker with concurrency 32 signs each (Standard
 * Webhooks, `createSigner` of @hookbox/outbox) and POSTs it with undici (32 connections
 * to the origin, as the relay) to the same receiver, which checks every signature.
 * Each peer runs with the settings its documentation gives for throughput:
 *  - graphile-worker: local queue (size 500), batched completion and failure
 *    (completeJobBatchDelay / failJobBatchDelay 0), 32 concurrent jobs
 *    (worker.graphile.org/docs/performance);
 *  - pg-boss: batches of 16 fetched by 2 local workers (32 at a time), continuous fetching
 *    while batches come back full (burstWhenBatchFull), LISTEN/NOTIFY wake-up.
 */
import { createSigner, generateSecret, uuidv7 } from '@hookbox/outbox';
import { Logger, makeWorkerUtils, type Runner, run, type WorkerUtils } from 'graphile-worker';
import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { Agent } from 'undici';
import { type DrainCost, measureDrain, processCpuMs, Receiver, waitFor } from './lib.js';
import { PRODUCERS, payload, ROUTES, TENANTS } from './many-tenants.js';

export const PEER_CONCURRENCY = 32;

/** One delivery as a job: which subscription, and the event. */
export interface Job {
  /** Subscription index 0..127: tenant = sub >> 1, route = ROUTES[sub & 1]. */
  sub: number;
  id: string;
  type: string;
  ts: string;
  data: unknown;
}

/** The event `n` (of tenant n % TENANTS) as its two jobs. */
export function jobsOf(n: number): Job[] {
  const id = uuidv7();
  const ts = new Date().toISOString();
  const tenant = n % TENANTS;
  return ROUTES.map((_, r) => ({ sub: tenant * ROUTES.length + r, id, type: 'message.new', ts, data: payload(n) }));
}

/** Signs and POSTs one job the way the relay does; throws on a non-2xx (the job is retried). */
export class Sender {
  private readonly agent = new Agent({ connections: 32, keepAliveTimeout: 30_000 });
  private readonly sign: ReturnType<typeof createSigner>;
  private readonly origin: string;
  constructor(secret: string, port: number) {
    this.sign = createSigner([secret]);
    this.origin = `http://127.0.0.1:${port}`;
  }
  async send(job: Job): Promise<void> {
    const body = `{"id":"${job.id}","type":"${job.type}","timestamp":"${job.ts}","data":${JSON.stringify(job.data)}}`;
    const ts = Math.floor(Date.now() / 1000);
    const [route] = ROUTES[job.sub % ROUTES.length] as (typeof ROUTES)[number];
    const res = await this.agent.request({
      origin: this.origin,
      path: `/t${job.sub >> 1}/${route}`,
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'bench-peer',
        'webhook-id': job.id,
        'webhook-timestamp': String(ts),
        'webhook-signature': this.sign(job.id, ts, body),
      },
      body,
    });
    await res.body.dump();
    if (res.statusCode >= 300) throw new Error(`HTTP ${res.statusCode}`);
  }
  close() {
    return this.agent.close();
  }
}

/** Runs `fn` with the bench receiver and a `Sender` to it, and stops both after. */
export async function withSender<T>(
  fn: (receiver: Receiver, sender: Sender, secret: string) => Promise<T>,
): Promise<T> {
  const secret = generateSecret();
  const receiver = await Receiver.start(secret);
  const sender = new Sender(secret, receiver.port);
  try {
    return await fn(receiver, sender, secret);
  } finally {
    await sender.close();
    receiver.stop();
  }
}

/** What the bench needs from a job queue. */
interface Peer {
  /** Adds jobs in one call (one transaction). */
  add(jobs: Job[]): Promise<void>;
  startWorker(sender: Sender): Promise<void>;
  stop(): Promise<void>;
}

async function graphileWorker(url: string): Promise<Peer> {
  const preset = {
    worker: {
      connectionString: url,
      concurrentJobs: PEER_CONCURRENCY,
      maxPoolSize: PEER_CONCURRENCY + 2,
      localQueue: { size: 500 },
      completeJobBatchDelay: 0,
      failJobBatchDelay: 0,
    },
  };
  // Silent: its per-job log lines would cost it time the others do not spend.
  const logger = new Logger(() => () => {});
  const utils: WorkerUtils = await makeWorkerUtils({ connectionString: url, logger });
  await utils.migrate();
  let runner: Runner | null = null;
  return {
    add: async (jobs) => {
      await utils.addJobs(jobs.map((payload) => ({ identifier: 'deliver', payload })));
    },
    startWorker: async (sender) => {
      runner = await run({
        preset,
        noHandleSignals: true,
        logger,
        taskList: { deliver: async (payload) => sender.send(payload as Job) },
      });
    },
    stop: async () => {
      await runner?.stop();
      await utils.release();
    },
  };
}

async function pgBoss(url: string): Promise<Peer> {
  // No connect timeout: when it falls behind, the latency phase's adds queue for a connection.
  const boss = new PgBoss({
    connectionString: url,
    max: PEER_CONCURRENCY + 2,
    useListenNotify: true,
    connectionTimeoutMillis: 0,
  });
  boss.on('error', (err: Error) => console.error(`pg-boss: ${err.message}`));
  boss.on('warning', (w: unknown) => console.error(`pg-boss warning: ${JSON.stringify(w)}`));
  const stopped = new Promise<void>((resolve) => boss.once('stopped', () => resolve()));
  await boss.start();
  await boss.createQueue('deliver', { notify: true });
  return {
    add: async (jobs) => {
      await boss.insert(
        'deliver',
        jobs.map((data) => ({ data })),
      );
    },
    startWorker: async (sender) => {
      await boss.work<Job>(
        'deliver',
        { batchSize: 16, localConcurrency: 2, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5 },
        async (jobs) => {
          await Promise.all(jobs.map((j) => sender.send(j.data)));
        },
      );
    },
    stop: async () => {
      await boss.stop({ graceful: true, close: true });
      await stopped;
    },
  };
}

export const PEERS = { 'graphile-worker': graphileWorker, 'pg-boss': pgBoss } as const;
export type PeerName = keyof typeof PEERS;

export interface PeerResult {
  drain: DrainCost;
  latency: number[];
}

/**
 * One peer on a fresh database: a backlog of `events` events (2 jobs each) written by 8
 * producers, drained by one worker; then `rate` events/s for `seconds`, commit → receipt.
 */
export async function runPeer(
  name: PeerName,
  url: string,
  receiver: Receiver,
  secret: string,
  opts: { events: number; rate: number; seconds: number },
): Promise<PeerResult> {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', (err) => console.error(`bench pool: ${err.message}`));
  const peer = await PEERS[name](url);
  const sender = new Sender(secret, receiver.port);
  try {
    let next = 0;
    await Promise.all(
      Array.from({ length: PRODUCERS }, async () => {
        while (next < opts.events) {
          const from = next;
          next = Math.min(opts.events, next + 250);
          const jobs: Job[] = [];
          for (let n = from; n < next; n++) jobs.push(...jobsOf(n));
          await peer.add(jobs);
        }
      }),
    );
    await pool.query('CHECKPOINT');
    await receiver.reset();
    const expected = opts.events * ROUTES.length;
    const drain = await measureDrain(pool, processCpuMs, async () => {
      await peer.startWorker(sender);
      await waitFor(async () => (await receiver.stats()).count >= expected, 600_000, `${name} to drain`);
      const s = await receiver.stats();
      if (s.badSignatures > 0) throw new Error(`${name}: ${s.badSignatures} bad signatures`);
      return { deliveries: s.count, seconds: (s.last - s.first) / 1000 };
    });

    await receiver.reset();
    await receiver.record();
    const commits = new Map<string, number>();
    const total = opts.rate * opts.seconds;
    const start = performance.now();
    const inflight: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const wait = start + (i * 1000) / opts.rate - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      inflight.push(
        (async () => {
          const jobs = jobsOf(opts.events + i);
          await peer.add(jobs);
          commits.set((jobs[0] as Job).id, performance.timeOrigin + performance.now());
        })(),
      );
    }
    await Promise.all(inflight);
    await waitFor(async () => (await receiver.stats()).count >= total * ROUTES.length, 120_000, `${name} latency`);
    const lat = await receiver.stats();
    if (lat.badSignatures > 0) throw new Error(`${name}: ${lat.badSignatures} bad signatures`);
    const latency: number[] = [];
    for (const [id, times] of lat.receipts ?? []) {
      const c = commits.get(id);
      if (c !== undefined) for (const t of times) latency.push(t - c);
    }
    latency.sort((a, b) => a - b);
    return { drain, latency };
  } finally {
    await peer.stop();
    await sender.close();
    await pool.end();
  }
}
