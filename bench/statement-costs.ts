/**
 * What the relay's two hot statements cost Postgres per delivery on the many-tenants shape,
 * each run alone on one connection (set up as the relay's: synchronous_commit=off), with no
 * relay, receiver or HTTP sharing the box: fan-out (`fanOut`) of a backlog in batches of
 * `--batch` events (the relay's batch at concurrency 32 is 32), then the outcome write
 * (`recordOutcomes`) of those deliveries as first-attempt successes, in batches of as many
 * deliveries as one fan-out batch makes (2 per event). Prints, per phase, ms per call and, per delivery, wall time, the
 * server process's CPU (/proc, so the server must run on this machine) and WAL bytes.
 * Compare the CPU with `pnpm bench`'s Postgres CPU per delivery to see what running
 * concurrently beside the relay and the receiver adds. Not part of `pnpm bench`.
 *
 *   pnpm build && pnpm exec tsx bench/statement-costs.ts [--events 20000] [--batch 32] [--rounds 2]
 *
 * Uses DATABASE_URL when set (a scratch database is created and dropped), else an embedded
 * PostgreSQL with durable settings.
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { type ClaimedDelivery, fanOut, type Outcome, recordOutcomes } from '../apps/relay/src/relay/sql.js';
import { processCpuMs, walBytes, withScratchDatabase } from './lib.js';
import { createSubscriptions, enqueueBacklog } from './many-tenants.js';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '20000' },
    batch: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '2' },
  },
});
const EVENTS = Number(args.events);
const BATCH = Number(args.batch);

const success = (d: ClaimedDelivery): Outcome => ({
  deliveryId: d.deliveryId,
  attempt: d.attempt,
  subscriptionId: d.subscriptionId,
  status: 'succeeded',
  delayMs: 0,
  statusCode: 204,
  errorClass: null,
  errorMessage: null,
  startedAt: new Date(),
  durationMs: 2,
  excerpt: null,
  attempted: true,
});

async function round(pool: pg.Pool, one: pg.Pool): Promise<void> {
  await pool.query('TRUNCATE hookbox.events, hookbox.deliveries, hookbox.delivery_attempts');
  await enqueueBacklog(pool, EVENTS);
  await pool.query('VACUUM ANALYZE hookbox.events');
  await pool.query('CHECKPOINT');
  // The statements run on `one` connection, whose server process's CPU is read around each phase.
  const backend = (await one.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;

  const claimed: ClaimedDelivery[] = [];
  let calls = 0;
  let afterTenant = '';
  let wal0 = await walBytes(pool);
  let c0 = processCpuMs(backend);
  let t0 = performance.now();
  for (;;) {
    const r = await fanOut(one, BATCH, 60_000, { afterTenant });
    if (r.events === 0) break;
    calls++;
    afterTenant = r.lastTenant;
    claimed.push(...r.claimed);
  }
  const fanMs = performance.now() - t0;
  const fanCpu = processCpuMs(backend) - c0;
  const fanWal = (await walBytes(pool)) - wal0;

  await pool.query('CHECKPOINT');
  const per = BATCH * 2;
  wal0 = await walBytes(pool);
  c0 = processCpuMs(backend);
  t0 = performance.now();
  let recCalls = 0;
  for (let i = 0; i < claimed.length; i += per) {
    await recordOutcomes(one, claimed.slice(i, i + per).map(success));
    recCalls++;
  }
  const recMs = performance.now() - t0;
  const recCpu = processCpuMs(backend) - c0;
  const recWal = (await walBytes(pool)) - wal0;
  const n = claimed.length;
  const line = (what: string, ms: number, cpu: number, c: number, wal: number) =>
    `${what} ${(ms / c).toFixed(2)} ms/call; per delivery ${((1000 * ms) / n).toFixed(1)} µs wall, ` +
    `${((1000 * cpu) / n).toFixed(1)} µs server CPU, ${Math.round(wal / n)} B WAL`;
  console.log(
    `${n} deliveries · ${line('fan-out', fanMs, fanCpu, calls, fanWal)} · ` +
      line('record', recMs, recCpu, recCalls, recWal),
  );
}

async function main() {
  await withScratchDatabase(async (url) => {
    const pool = new pg.Pool({ connectionString: url, max: 8 });
    // As the relay connects (commands/relay.ts): commits do not wait for the WAL flush.
    const one = new pg.Pool({
      connectionString: url,
      max: 1,
      idleTimeoutMillis: 0,
      options: '-c synchronous_commit=off',
    });
    try {
      // The receiver is never called: the port only has to make valid target URLs.
      await createSubscriptions(pool, 9, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
      for (let r = 0; r < Number(args.rounds); r++) await round(pool, one);
    } finally {
      await one.end();
      await pool.end();
    }
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
