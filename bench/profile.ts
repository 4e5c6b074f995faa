/**
 * Where the time goes on the many-tenants drain: one relay drains a backlog on an embedded
 * PostgreSQL with pg_stat_statements (track = all, so statements run by triggers, such as
 * foreign-key checks, are counted too), then prints the drain rate, Postgres CPU and WAL
 * bytes per delivery, and the statements by total execution time. Not part of `pnpm bench`.
 *
 *   pnpm build && npx tsx bench/profile.ts [--events 20000] [--relays 1] [--top 12]
 *
 * BENCH_RELAY_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' adds the relay's CPU profile.
 */
import type { ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { parseArgs } from 'node:util';
import { startEmbeddedPostgres } from '@hookbox/devdb';
import { generateSecret } from '@hookbox/outbox';
import pg from 'pg';
import { measureDrain, processCpuMs, Receiver, startRelay, stopProcess, waitFor, withDatabase } from './lib.js';
import { createSubscriptions, enqueueBacklog, RELAY_ARGS, ROUTES } from './many-tenants.js';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '20000' },
    relays: { type: 'string', default: '1' },
    top: { type: 'string', default: '12' },
    /** Write auto_explain plans (ANALYZE, BUFFERS, WAL) of statements slower than this many ms to --explain-log. */
    'explain-ms': { type: 'string' },
    'explain-log': { type: 'string', default: 'profile-explain.log' },
  },
});
const EVENTS = Number(args.events);

async function main() {
  const explain = args['explain-ms'];
  const log = explain ? createWriteStream(args['explain-log'] as string) : null;
  const server = await startEmbeddedPostgres({
    mode: 'durable',
    settings: {
      shared_preload_libraries: explain ? 'pg_stat_statements,auto_explain' : 'pg_stat_statements',
      'pg_stat_statements.track': 'all',
      'pg_stat_statements.track_planning': 'on',
      ...(explain
        ? {
            'auto_explain.log_min_duration': explain,
            'auto_explain.log_analyze': 'on',
            'auto_explain.log_buffers': 'on',
            'auto_explain.log_wal': 'on',
            'auto_explain.log_timing': 'on',
          }
        : {}),
    },
    ...(log ? { onLog: (line: string) => log.write(`${line}\n`) } : {}),
  });
  try {
    await withDatabase(server.url, async (url) => {
      const pool = new pg.Pool({ connectionString: url, max: 10 });
      const secret = generateSecret();
      const receiver = await Receiver.start(secret);
      const relays: ChildProcess[] = [];
      try {
        await pool.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
        await createSubscriptions(pool, receiver.port, secret);
        await enqueueBacklog(pool, EVENTS);
        await pool.query('VACUUM ANALYZE hookbox.events');
        await pool.query('SELECT pg_stat_statements_reset()');
        await receiver.reset();
        const expected = EVENTS * ROUTES.length;
        const cost = await measureDrain(
          pool,
          () => relays.reduce((sum, r) => sum + (r.pid ? processCpuMs(r.pid) : 0), 0),
          async (done) => {
            for (let i = 0; i < Number(args.relays); i++) relays.push(startRelay(url, RELAY_ARGS));
            await waitFor(async () => (await receiver.stats()).count >= expected, 600_000, 'the backlog to drain');
            const s = await receiver.stats();
            await waitFor(
              async () =>
                (await pool.query("SELECT count(*)::int AS n FROM hookbox.deliveries WHERE status = 'succeeded'"))
                  .rows[0].n >= expected,
              60_000,
              'outcomes to be recorded',
            );
            if (s.badSignatures > 0) throw new Error(`${s.badSignatures} bad signatures`);
            done();
            return { deliveries: s.count, seconds: (s.last - s.first) / 1000 };
          },
        );
        console.log(
          `drain ${cost.perSec.toFixed(0)} deliveries/s · Postgres CPU ${cost.pgCpuMsPerDelivery.toFixed(3)} ms, relay CPU ${cost.workerCpuMsPerDelivery.toFixed(3)} ms per delivery · WAL ${cost.walBytesPerDelivery.toFixed(0)} B/delivery · whole box ${cost.hostCpuMsPerDelivery.toFixed(3)} ms CPU per delivery, ${(100 * cost.hostBusy).toFixed(0)} % busy`,
        );
        const { rows } = await pool.query(
          `SELECT calls, round(total_exec_time)::int AS total_ms, round((total_exec_time / nullif(calls, 0))::numeric, 3)::float8 AS ms_per_call,
                  rows, wal_bytes::float8 AS wal, plans, round(total_plan_time)::int AS plan_ms, shared_blks_hit + shared_blks_read AS blks,
                  regexp_replace(left(query, 110), '\\s+', ' ', 'g') AS q
           FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           ORDER BY total_exec_time + total_plan_time DESC LIMIT $1`,
          [Number(args.top)],
        );
        for (const r of rows) {
          console.log(
            `${String(r.total_ms).padStart(7)} ms ${String(r.calls).padStart(7)} calls ${String(r.ms_per_call).padStart(8)} ms/call ` +
              `wal ${(r.wal / expected).toFixed(0).padStart(5)} B/dlv  plans ${String(r.plans).padStart(5)} (${r.plan_ms} ms)  ${r.q}`,
          );
        }
      } finally {
        for (const r of relays) await stopProcess(r);
        receiver.stop();
        await pool.end();
      }
    });
  } finally {
    await server.stop();
  }
}

main().catch((err) => {
  console.error(`profile failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
