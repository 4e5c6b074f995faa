/**
 * What every bench scenario shares: the receiver process, the relay binary, a throwaway
 * database per run, Postgres CPU and WAL accounting, and small statistics helpers.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startEmbeddedPostgres } from '@hookbox/devdb';
import pg from 'pg';
import { migrate } from '../apps/relay/src/migrate.js';

export const root = fileURLToPath(new URL('..', import.meta.url));

export const now = () => performance.timeOrigin + performance.now();
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2
    ? (s[(s.length - 1) / 2] as number)
    : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};
export const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;

export interface ReceiverStats {
  count: number;
  badSignatures: number;
  duplicates: number;
  first: number;
  last: number;
  receipts: [string, number[]][] | null;
}

/** The webhook receiver (bench/receiver.ts) in its own process; every signature is checked. */
export class Receiver {
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
export function startRelay(url: string, extraArgs: string[] = []): ChildProcess {
  const bin = `${root}apps/relay/dist/cli.js`;
  const args = [
    'relay',
    '--database-url',
    url,
    '--allow-private-network',
    '127.0.0.0/8',
    '--log-level',
    process.env.BENCH_RELAY_LOG_LEVEL ?? 'warn',
    ...extraArgs,
  ];
  const nodeArgs = process.env.BENCH_RELAY_NODE_ARGS?.split(' ').filter(Boolean);
  return nodeArgs
    ? spawn(process.execPath, [...nodeArgs, bin, ...args], { stdio: ['ignore', 'inherit', 'inherit'] })
    : spawn(bin, args, { stdio: ['ignore', 'inherit', 'inherit'] });
}

export async function stopProcess(child: ChildProcess | null): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

export function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

export async function withDatabase<T>(adminUrl: string, fn: (url: string) => Promise<T>): Promise<T> {
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
    // Pools that `fn` ended may still be closing their connections. Terminating them (FORCE)
    // makes the server send each a FATAL that its pool, with no error listener left, throws
    // as an unhandled 'error' event: the run exited 1 after printing its figures. So wait
    // for them to go first, and force only what is still connected after 5 s.
    for (let i = 0; ; i++) {
      const { rows } = await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [name]);
      if (rows[0].n === 0 || i >= 50) break;
      await sleep(100);
    }
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

/**
 * `withDatabase` on DATABASE_URL's server when it is set, else on an embedded PostgreSQL
 * with durable settings started for the call (for the scripts that run on one database).
 */
export async function withScratchDatabase<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const given = process.env.DATABASE_URL;
  const server = given ? null : await startEmbeddedPostgres({ mode: 'durable' });
  try {
    return await withDatabase(given ?? (server?.url as string), fn);
  } finally {
    await server?.stop();
  }
}

export async function waitFor(cond: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const TICKS_PER_SECOND = 100;

function procCpuMs(pid: number, withChildren: boolean): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields after the comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    const ticks = Number(f[11]) + Number(f[12]) + (withChildren ? Number(f[13]) + Number(f[14]) : 0);
    return (ticks * 1000) / TICKS_PER_SECOND;
  } catch {
    return 0; // exited meanwhile: its time moved to the postmaster's children total
  }
}

/**
 * CPU used so far by one PostgreSQL server, ms: the postmaster with its reaped children
 * plus every live backend and auxiliary process (found by parent pid). Only meaningful
 * when the server runs on this machine (the embedded one).
 */
export class PostgresCpu {
  private constructor(private readonly postmaster: number) {}
  static async of(pool: pg.Pool): Promise<PostgresCpu | null> {
    const { rows } = await pool.query('SELECT pg_backend_pid() AS pid');
    try {
      const stat = readFileSync(`/proc/${rows[0].pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      return new PostgresCpu(ppid);
    } catch {
      return null; // not on this machine
    }
  }
  ms(): number {
    let total = procCpuMs(this.postmaster, true);
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === this.postmaster) total += procCpuMs(Number(name), false);
      } catch {}
    }
    return total;
  }
}

/** WAL position in bytes (pg_current_wal_lsn), to diff around a phase. */
export async function walBytes(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 AS b");
  return rows[0].b as number;
}

/** What a drain phase cost, per delivery. */
export interface DrainCost {
  perSec: number;
  pgCpuMsPerDelivery: number;
  /** CPU of the delivering process(es): the relays, or this process for the peers' workers. */
  workerCpuMsPerDelivery: number;
  walBytesPerDelivery: number;
  /** CPU of the whole box (every process: Postgres, workers, receiver, kernel), ms per delivery. */
  hostCpuMsPerDelivery: number;
  /** Share of the box's CPU time in use during the drain (1: every core busy throughout). */
  hostBusy: number;
}

/** CPU time of the whole box so far (/proc/stat, all cores), ms: in use, and in all (steal and idle included). */
export function hostCpuMs(): { busy: number; total: number } {
  try {
    const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '')
      .trim()
      .split(/\s+/)
      .slice(1, 9)
      .map(Number);
    // user nice system idle iowait irq softirq steal
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
    const busy = user + nice + system + irq + softirq;
    return {
      busy: (busy * 1000) / TICKS_PER_SECOND,
      total: ((busy + idle + iowait + steal) * 1000) / TICKS_PER_SECOND,
    };
  } catch {
    return { busy: Number.NaN, total: Number.NaN }; // not Linux
  }
}

/** CPU time of a process (user + system), ms; this process when `pid` is omitted. */
export function processCpuMs(pid?: number): number {
  if (pid === undefined) {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  }
  return procCpuMs(pid, false);
}

/**
 * Measures Postgres CPU, worker CPU and WAL around `drain`, which returns deliveries and
 * seconds. `workerCpuMs` reads the workers' CPU so far; it is read just before `drain`
 * returns, while the workers (child processes) still run.
 */
export async function measureDrain(
  pool: pg.Pool,
  workerCpuMs: () => number,
  drain: (workersDone: () => void) => Promise<{ deliveries: number; seconds: number }>,
): Promise<DrainCost> {
  const cpu = await PostgresCpu.of(pool);
  const cpu0 = cpu?.ms() ?? 0;
  const wal0 = await walBytes(pool);
  const w0 = workerCpuMs();
  const h0 = hostCpuMs();
  let w1 = Number.NaN;
  const { deliveries, seconds } = await drain(() => {
    w1 = workerCpuMs();
  });
  if (Number.isNaN(w1)) w1 = workerCpuMs();
  const h1 = hostCpuMs();
  const cpu1 = cpu?.ms() ?? 0;
  const wal1 = await walBytes(pool);
  return {
    perSec: deliveries / seconds,
    pgCpuMsPerDelivery: cpu ? (cpu1 - cpu0) / deliveries : Number.NaN,
    workerCpuMsPerDelivery: (w1 - w0) / deliveries,
    walBytesPerDelivery: (wal1 - wal0) / deliveries,
    hostCpuMsPerDelivery: (h1.busy - h0.busy) / deliveries,
    hostBusy: (h1.busy - h0.busy) / (h1.total - h0.total),
  };
}
