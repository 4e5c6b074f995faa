/**
 * Where the time goes in the many-tenants latency phase (after the drain, one relay, 200
 * events/s), ordered (1,000 keys) or not: pg_stat_statements over the latency phase only,
 * and auto_explain plans of statements slower than --explain-ms. Not part of `pnpm bench`.
 *
 *   pnpm build && npx tsx bench/profile-latency.ts [--ordered] [--events 20000] [--seconds 15] [--explain-ms 5]
 */
import { createWriteStream } from 'node:fs';
import { parseArgs } from 'node:util';
import { startEmbeddedPostgres } from '@hookbox/devdb';
import { generateSecret } from '@hookbox/outbox';
import pg from 'pg';
import { Receiver, withDatabase } from './lib.js';
import { manyTenantsRun } from './many-tenants.js';

const { values: args } = parseArgs({
  options: {
    ordered: { type: 'boolean', default: false },
    events: { type: 'string', default: '20000' },
    seconds: { type: 'string', default: '15' },
    top: { type: 'string', default: '12' },
    'explain-ms': { type: 'string' },
    'explain-log': { type: 'string', default: 'profile-latency-explain.log' },
  },
});

const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))] ?? 0;

async function main() {
  const explain = args['explain-ms'];
  const log = explain ? createWriteStream(args['explain-log'] as string) : null;
  const server = await startEmbeddedPostgres({
    mode: 'durable',
    settings: {
      shared_preload_libraries: explain ? 'pg_stat_statements,auto_explain' : 'pg_stat_statements',
      'pg_stat_statements.track': 'all',
      ...(explain
        ? {
            'auto_explain.log_min_duration': explain,
            'auto_explain.log_analyze': 'on',
            'auto_explain.log_buffers': 'on',
            'auto_explain.log_timing': 'on',
            'auto_explain.log_nested_statements': 'on',
          }
        : {}),
    },
    ...(log ? { onLog: (line: string) => log.write(`${line}\n`) } : {}),
  });
  try {
    await withDatabase(server.url, async (url) => {
      const secret = generateSecret();
      const receiver = await Receiver.start(secret);
      try {
        const r = await manyTenantsRun(url, receiver, secret, {
          events: Number(args.events),
          rate: 200,
          seconds: Number(args.seconds),
          ordered: args.ordered,
          beforeLatency: async (pool) => {
            await pool.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
            await pool.query('SELECT pg_stat_statements_reset()');
          },
        });
        const db = new pg.Client({ connectionString: url });
        await db.connect();
        const { rows } = await db.query(
          `SELECT calls, round(total_exec_time)::int AS total_ms, round((total_exec_time / calls)::numeric, 3)::float8 AS ms_per_call,
                  round(max_exec_time::numeric, 1)::float8 AS max_ms, shared_blks_hit + shared_blks_read AS blks,
                  regexp_replace(left(query, 100), '\\s+', ' ', 'g') AS q
           FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           ORDER BY total_exec_time DESC LIMIT $1`,
          [Number(args.top)],
        );
        await db.end();
        for (const x of rows) {
          console.log(
            `${String(x.total_ms).padStart(6)} ms ${String(x.calls).padStart(6)} calls ${String(x.ms_per_call).padStart(7)} ms/call max ${String(x.max_ms).padStart(6)} blks/call ${(Number(x.blks) / x.calls).toFixed(0).padStart(5)}  ${x.q}`,
          );
        }
        console.log(
          `${args.ordered ? 'ordered' : 'unordered'}: drain ${r.drain.perSec.toFixed(0)}/s · latency p50 ${pct(r.latency, 50).toFixed(2)} ms p90 ${pct(r.latency, 90).toFixed(2)} p99 ${pct(r.latency, 99).toFixed(2)} ms`,
        );
      } finally {
        receiver.stop();
      }
    });
  } finally {
    await server.stop();
  }
}

main().catch((err) => {
  console.error(`profile-latency failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
