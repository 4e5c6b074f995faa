/**
 * The floor under the many-tenants latency figure (commit → receipt at 200 events/s): its
 * steps, timed one event at a time with nothing else running, each by its median and p99.
 *  - wake-up: the client's COMMIT returns → a LISTEN connection hears the hint. hookbox's
 *    post-commit notifier sends it after the commit, on a pooled connection; a NOTIFY
 *    inside the transaction (graphile-worker's trigger) is heard at the commit itself, so
 *    that hop can even come before the client sees its COMMIT return.
 *  - fan-out: the relay's fan-out statement (`fanOut`) taking that one event, one round trip.
 *  - POST: one signed POST of the event to the bench receiver (the peers' `Sender`).
 * Not part of `pnpm bench`.
 *
 *   pnpm build && pnpm exec tsx bench/wake-floor.ts [--events 1000] [--rate 200]
 *
 * Uses DATABASE_URL when set (a scratch database is created and dropped), else an embedded
 * PostgreSQL with durable settings.
 */
import { parseArgs } from 'node:util';
import { createOutbox, NOTIFY_CHANNEL, notifyRelay } from '@hookbox/outbox';
import pg from 'pg';
import { fanOut } from '../apps/relay/src/relay/sql.js';
import { withScratchDatabase } from './lib.js';
import { createSubscriptions, eventOwner, payload } from './many-tenants.js';
import { jobsOf, withSender } from './peers.js';

const { values: args } = parseArgs({
  options: { events: { type: 'string', default: '1000' }, rate: { type: 'string', default: '200' } },
});
const EVENTS = Number(args.events);
const RATE = Number(args.rate);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))] ?? 0;
};
const line = (what: string, xs: number[]) =>
  console.log(`${what.padEnd(46)} p50 ${pct(xs, 50).toFixed(2)} ms · p99 ${pct(xs, 99).toFixed(2)} ms`);

async function main() {
  await withSender(async (receiver, sender, secret) => {
    await withScratchDatabase(async (url) => {
      const pool = new pg.Pool({ connectionString: url, max: 4 });
      // Set up as the relay's connections are.
      const relayDb = new pg.Pool({ connectionString: url, max: 1, options: '-c synchronous_commit=off' });
      const listener = new pg.Client({ connectionString: url });
      try {
        await createSubscriptions(pool, receiver.port, secret);
        await listener.connect();
        await listener.query(`LISTEN ${NOTIFY_CHANNEL}`);
        let heard: (() => void) | null = null;
        listener.on('notification', () => heard?.());
        const outbox = createOutbox();

        /** One event committed (hint after the commit, or inside the transaction); ms from COMMIT's return to the hint. */
        async function commitAndHear(n: number, inside: boolean): Promise<number> {
          let heardAt = 0;
          const hint = new Promise<void>((resolve) => {
            heard = () => {
              heardAt = performance.now();
              heard = null;
              resolve();
            };
          });
          const client = await pool.connect();
          let committed: number;
          try {
            await client.query('BEGIN');
            await outbox.enqueue(client, { ...eventOwner(n, false), type: 'message.new', payload: payload(n) });
            if (inside) await client.query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, '']);
            await client.query('COMMIT');
            committed = performance.now();
          } finally {
            client.release();
          }
          if (!inside) await notifyRelay(pool);
          await hint;
          return heardAt - committed;
        }

        const wake: Record<'after' | 'inside', number[]> = { after: [], inside: [] };
        const fan: number[] = [];
        const post: number[] = [];
        const start = performance.now();
        for (let i = 0; i < EVENTS; i++) {
          const wait = start + (i * 1000) / RATE - performance.now();
          if (wait > 0) await sleep(wait);
          const inside = i % 2 === 1;
          wake[inside ? 'inside' : 'after'].push(await commitAndHear(i, inside));
          const t0 = performance.now();
          const { claimed } = await fanOut(relayDb, 32, 60_000);
          fan.push(performance.now() - t0);
          if (claimed.length !== 2) throw new Error(`fan-out took ${claimed.length} deliveries, expected 2`);
          const [job] = jobsOf(i);
          const t1 = performance.now();
          await sender.send(job as ReturnType<typeof jobsOf>[number]);
          post.push(performance.now() - t1);
        }
        console.log(`${EVENTS} events at ${RATE}/s, one at a time (the two wake-ups alternate):`);
        line('wake-up, hint after the commit (hookbox)', wake.after);
        line('wake-up, NOTIFY inside the transaction', wake.inside);
        line('fan-out of the event (2 deliveries)', fan);
        line('signed POST, answered', post);
      } finally {
        await listener.end().catch(() => {});
        await relayDb.end();
        await pool.end();
      }
    });
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
