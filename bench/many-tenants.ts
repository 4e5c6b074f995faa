/**
 * The many-tenants shape: 64 tenants × 2 subscriptions each (128 subscriptions, all on the
 * one receiver origin), ~300-byte payloads, the backlog written by 8 producers. The same
 * shape is what bench/peers.ts gives graphile-worker and pg-boss.
 */
import type { ChildProcess } from 'node:child_process';
import { createOutbox, subscriptions } from '@hookbox/outbox';
import pg from 'pg';
import {
  type DrainCost,
  measureDrain,
  peakRssMiB,
  processCpuMs,
  type Receiver,
  startRelay,
  stopProcess,
  waitFor,
} from './lib.js';

export const TENANTS = 64;
export const PRODUCERS = 8;
/** Subscriptions per tenant: `/a` takes every type, `/b` takes `message.*`. */
export const ROUTES = [
  ['a', ['*']],
  ['b', ['message.*']],
] as const;

export const tenantId = (i: number) => `tenant-${String(i).padStart(2, '0')}`;

/** The ordering scenario's keys: 1,000 conversations, each owned by one tenant. */
export const ORDERING_KEYS = 1000;
/** Event `n`'s tenant and, when ordered, its ordering key (key k belongs to tenant k % TENANTS). */
export function eventOwner(n: number, ordered: boolean): { tenantId: string; orderingKey?: string } {
  if (!ordered) return { tenantId: tenantId(n % TENANTS) };
  const k = n % ORDERING_KEYS;
  return { tenantId: tenantId(k % TENANTS), orderingKey: `conversation:${k}` };
}
export const targetUrl = (port: number, tenant: number, route: string) =>
  `http://127.0.0.1:${port}/t${tenant}/${route}`;

/** A ~300-byte event payload (as JSON text). */
export function payload(n: number) {
  return {
    n,
    conversation: `conv-${(n * 7919) % 100_000}`,
    from: '+15550100',
    to: '+15550199',
    text: 'Hello from the many-tenants benchmark: a short chat message of the usual size.',
    channel: 'sms',
    segments: 1,
    tags: ['support', 'inbound'],
    sentAt: '2026-01-01T00:00:00.000Z',
  };
}

export async function createSubscriptions(pool: pg.Pool, port: number, secret: string): Promise<void> {
  for (let t = 0; t < TENANTS; t++) {
    for (const [route, eventTypes] of ROUTES) {
      await subscriptions.create(pool, {
        tenantId: tenantId(t),
        url: targetUrl(port, t, route),
        eventTypes: [...eventTypes],
        secret,
      });
    }
  }
}

/** Writes `events` events spread round-robin over the tenants (or keys), from PRODUCERS connections. */
export async function enqueueBacklog(pool: pg.Pool, events: number, ordered = false): Promise<void> {
  const outbox = createOutbox();
  let next = 0;
  await Promise.all(
    Array.from({ length: PRODUCERS }, async () => {
      while (next < events) {
        const from = next;
        next = Math.min(events, next + 250);
        const batch = Array.from({ length: next - from }, (_, j) => ({
          ...eventOwner(from + j, ordered),
          type: 'message.new',
          payload: payload(from + j),
        }));
        await outbox.enqueueMany(pool, batch);
      }
    }),
  );
}

/**
 * The relay's flags on this shape: the same worker concurrency as the peers get (32).
 * BENCH_MANY_RELAY_ARGS replaces them, for experiments.
 */
export const RELAY_ARGS = process.env.BENCH_MANY_RELAY_ARGS?.split(' ').filter(Boolean) ?? ['--concurrency', '32'];

export interface ManyTenantsResult {
  drain: DrainCost;
  latency: number[];
  rssMiB: number;
}

/** Drains a backlog of `events` events with `relays` relays; then, with one relay, latency at `rate`. */
export async function manyTenantsRun(
  url: string,
  receiver: Receiver,
  secret: string,
  opts: {
    events: number;
    rate: number;
    seconds: number;
    ordered?: boolean;
    /** Called between the drain and the latency phase (bench/profile-latency.ts resets its statistics). */
    beforeLatency?: (pool: pg.Pool) => Promise<void>;
  },
): Promise<ManyTenantsResult> {
  const ordered = opts.ordered === true;
  const pool = new pg.Pool({ connectionString: url, max: PRODUCERS + 2 });
  pool.on('error', (err) => console.error(`bench pool: ${err.message}`));
  let relay: ChildProcess | null = null;
  try {
    await createSubscriptions(pool, receiver.port, secret);
    await enqueueBacklog(pool, opts.events, ordered);
    await pool.query('VACUUM ANALYZE hookbox.events');
    await pool.query('CHECKPOINT');
    await receiver.reset();
    const expected = opts.events * ROUTES.length;
    const drain = await measureDrain(
      pool,
      () => (relay?.pid ? processCpuMs(relay.pid) : 0),
      async (done) => {
        relay = startRelay(url, RELAY_ARGS);
        return await drained(pool, receiver, expected, done);
      },
    );

    await opts.beforeLatency?.(pool);
    await receiver.reset();
    await receiver.record();
    const outbox = createOutbox();
    const notifier = outbox.attachNotifier(pool);
    const commits = new Map<string, number>();
    const total = opts.rate * opts.seconds;
    const start = performance.now();
    const inflight: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const wait = start + (i * 1000) / opts.rate - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const n = opts.events + i;
      inflight.push(
        (async () => {
          // In a transaction on a pooled client, as a service does: the notifier sends its
          // wake-up when the client goes back to the pool after the commit.
          const client = await pool.connect();
          try {
            await client.query('BEGIN');
            const { id } = await outbox.enqueue(client, {
              ...eventOwner(n, ordered),
              type: 'message.new',
              payload: payload(n),
            });
            await client.query('COMMIT');
            commits.set(id, performance.timeOrigin + performance.now());
          } finally {
            client.release();
          }
        })(),
      );
    }
    await Promise.all(inflight);
    await waitFor(async () => (await receiver.stats()).count >= total * ROUTES.length, 120_000, 'latency events');
    notifier.detach();
    const lat = await receiver.stats();
    if (lat.duplicates > 0 || lat.badSignatures > 0) {
      throw new Error(`many tenants latency: ${lat.duplicates} duplicates, ${lat.badSignatures} bad signatures`);
    }
    const latency: number[] = [];
    for (const [id, times] of lat.receipts ?? []) {
      const c = commits.get(id);
      if (c !== undefined) for (const t of times) latency.push(t - c);
    }
    latency.sort((a, b) => a - b);
    const rssMiB = peakRssMiB((relay as ChildProcess | null)?.pid as number);
    await assertAllSucceeded(pool, expected + total * ROUTES.length);
    return { drain, latency, rssMiB };
  } finally {
    await stopProcess(relay);
    await pool.end();
  }
}

/** Drains a backlog of `events` events with `relays` relays on one database. */
export async function scaleOutRun(
  url: string,
  receiver: Receiver,
  secret: string,
  opts: { events: number; relays: number },
): Promise<DrainCost> {
  const pool = new pg.Pool({ connectionString: url, max: PRODUCERS + 2 });
  pool.on('error', (err) => console.error(`bench pool: ${err.message}`));
  const relays: ChildProcess[] = [];
  try {
    await createSubscriptions(pool, receiver.port, secret);
    await enqueueBacklog(pool, opts.events);
    await pool.query('VACUUM ANALYZE hookbox.events');
    await pool.query('CHECKPOINT');
    await receiver.reset();
    const expected = opts.events * ROUTES.length;
    const drain = await measureDrain(
      pool,
      () => relays.reduce((sum, r) => sum + (r.pid ? processCpuMs(r.pid) : 0), 0),
      async (done) => {
        for (let i = 0; i < opts.relays; i++) relays.push(startRelay(url, RELAY_ARGS));
        return await drained(pool, receiver, expected, done);
      },
    );
    await assertAllSucceeded(pool, expected);
    return drain;
  } finally {
    for (const r of relays) await stopProcess(r);
    await pool.end();
  }
}

/** Waits for `expected` receipts and their recorded outcomes; deliveries and seconds of receipt. */
async function drained(pool: pg.Pool, receiver: Receiver, expected: number, done: () => void) {
  await waitFor(async () => (await receiver.stats()).count >= expected, 600_000, 'the backlog to drain');
  const s = await receiver.stats();
  if (s.badSignatures > 0) throw new Error(`${s.badSignatures} bad signatures`);
  await waitFor(
    async () =>
      (await pool.query("SELECT count(*)::int AS n FROM hookbox.deliveries WHERE status = 'succeeded'")).rows[0].n >=
      expected,
    60_000,
    'outcomes to be recorded',
  );
  done();
  return { deliveries: s.count, seconds: (s.last - s.first) / 1000 };
}

/** Nothing lost: every delivery succeeded, and there are as many as expected. */
async function assertAllSucceeded(pool: pg.Pool, expected: number): Promise<void> {
  const { rows } = await pool.query(
    "SELECT count(*) FILTER (WHERE status = 'succeeded')::int AS ok, count(*)::int AS n FROM hookbox.deliveries",
  );
  if (rows[0].ok !== expected || rows[0].n !== expected) {
    throw new Error(`expected ${expected} succeeded deliveries, found ${rows[0].ok} of ${rows[0].n}`);
  }
}
