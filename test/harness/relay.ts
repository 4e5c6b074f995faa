/**
 * Relays for tests: an in-process relay with test-friendly options (millisecond retry
 * schedules, short leases and timeouts, 127.0.0.0/8 allowed, logs kept in a buffer), the
 * real `hookbox relay` CLI as a child process, and the few queries tests make about
 * deliveries. Every relay, pool and process started here must be stopped by the test.
 */
import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { Writable } from 'node:stream';
import { createOutbox } from '@hookbox/outbox';
import pg from 'pg';
import { createLogger } from '../../apps/relay/src/logger.js';
import { defaultRetryPolicy, type RetryPolicy } from '../../apps/relay/src/policy/retry.js';
import { createRelay, type Relay, type RelayObserver, type RelayOptions } from '../../apps/relay/src/relay/relay.js';
import type { Outcome } from '../../apps/relay/src/relay/sql.js';
import { VERSION } from '../../apps/relay/src/version.js';
import { envWithout, spawnCli } from './cli.js';

/**
 * Polls `check` until it returns something other than undefined/false; bounded. The
 * default bound is generous: it only ends a wait that would never succeed, and a loaded
 * two-core CI machine can take many seconds for what takes milliseconds here.
 */
export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  {
    timeoutMs = 30_000,
    intervalMs = 20,
    what = 'a condition',
  }: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** JSON log lines kept in memory. */
export class LogBuffer extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      try {
        this.lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        this.lines.push({ msg: line });
      }
    }
    cb();
  }
  /** Lines whose message contains `text`. */
  find(text: string): Record<string, unknown>[] {
    return this.lines.filter((l) => typeof l.msg === 'string' && l.msg.includes(text));
  }
}

export type TestRelayOptions = Partial<Omit<RelayOptions, 'retry' | 'databaseUrl'>> & { retry?: Partial<RetryPolicy> };

/** Options a test relay starts from: fast everything, loopback allowed. */
export function testRelayOptions(databaseUrl: string, overrides: TestRelayOptions = {}): RelayOptions {
  const { retry, ...rest } = overrides;
  return {
    databaseUrl,
    concurrency: 16,
    batchSize: 50,
    pollIntervalMs: 20,
    // Long enough that a loaded two-core CI machine does not time out requests to healthy
    // in-process receivers (a retry would then deliver twice); tests of timeouts and lease
    // expiry set their own, shorter values.
    leaseMs: 10_000,
    requestTimeoutMs: 5_000,
    retry: defaultRetryPolicy({ scheduleMs: [10, 20], jitter: 0, ...retry }),
    allowPrivateNetwork: ['127.0.0.0/8'],
    requireHttps: false,
    exitWhenIdle: false,
    shutdownGraceMs: 5_000,
    maxResponseBytes: 4_096,
    connectionsPerOrigin: 8,
    // As long as the request timeout: only a request about to time out counts as slow, so a
    // loaded test machine does not mark healthy receivers slow.
    slowAfterMs: 5_000,
    slowConcurrency: 2,
    userAgent: `hookbox/${VERSION}`,
    // Off unless a test asks for it: retry tests count attempts to endpoints that fail on
    // purpose, and a breaker opening after 5 failures would hold those for its cooldown.
    breaker: { failAfter: 1_000_000, cooldownMs: 1_000, maxCooldownMs: 1_000, disableAfterMs: null },
    ...rest,
  };
}

export interface TestRelay {
  relay: Relay;
  /** The relay's own pool (application_name `hookbox-relay-test`). */
  pool: pg.Pool;
  options: RelayOptions;
  logs: LogBuffer;
  /** Stops the relay (graceful) and closes its pool. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts a relay in this process on its own pool. As a library user would, the pool gets
 * no 'error' listener here: the relay must cope with dropped connections by itself.
 */
export function startRelay(
  databaseUrl: string,
  overrides: TestRelayOptions = {},
  { logLevel = 'info', observer }: { logLevel?: string; observer?: RelayObserver } = {},
): TestRelay {
  const options = testRelayOptions(databaseUrl, overrides);
  const logs = new LogBuffer();
  const logger = createLogger(logLevel, logs);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 4, application_name: 'hookbox-relay-test' });
  const relay = createRelay({ db: pool, logger, options, ...(observer ? { observer } : {}) });
  relay.start();
  let stopped: Promise<void> | null = null;
  return {
    relay,
    pool,
    options,
    logs,
    stop() {
      stopped ??= (async () => {
        await relay.stop();
        // The relay's listener is gone now; pg-pool's end() resolves before its clients'
        // sockets close, so a server going away right after must not be an uncaught error.
        pool.on('error', () => {});
        await pool.end();
      })();
      return stopped;
    },
  };
}

export interface CliRelay {
  child: ChildProcessByStdio<null, Readable, Readable>;
  /** Parsed JSON log lines from stdout so far. */
  logs(): Record<string, unknown>[];
  stdout(): string;
  stderr(): string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends a signal to the relay process itself. */
  signal(signal: NodeJS.Signals): void;
  /** SIGKILLs the process group (no-op once exited) and waits for the exit. */
  kill(): Promise<void>;
}

const spawned = new Set<CliRelay>();

/** Flags for `hookbox relay`, camelCase; `true` for a bare flag, arrays repeat it. */
export type CliFlags = Record<string, string | number | boolean | string[] | undefined>;

const CLI_DEFAULTS: CliFlags = {
  allowPrivateNetwork: ['127.0.0.0/8'],
  retrySchedule: '10ms,20ms',
  retryJitter: '0',
  lease: '2s',
  requestTimeout: '1s',
  pollInterval: '20ms',
  logLevel: 'info',
  // As in testRelayOptions: the breaker is off unless a test turns it on.
  breakerThreshold: '1000000',
  disableAfter: 'off',
};

/** Runs `hookbox relay` as a real process (spawnCli), without DATABASE_URL or HOOKBOX_* from this environment. */
export function spawnRelayCli(databaseUrl: string, flags: CliFlags = {}): CliRelay {
  const args = ['relay', '--database-url', databaseUrl];
  for (const [key, value] of Object.entries({ ...CLI_DEFAULTS, ...flags })) {
    if (value === undefined || value === false) continue;
    const flag = `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    if (value === true) args.push(flag);
    else if (Array.isArray(value)) for (const v of value) args.push(flag, v);
    else args.push(flag, String(value));
  }
  const { child, stdout, stderr, exit } = spawnCli(args, { env: envWithout(['DATABASE_URL'], { hookbox: true }) });
  const cli: CliRelay = {
    child,
    stdout,
    stderr,
    logs: () =>
      stdout()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => {
          try {
            return JSON.parse(l) as Record<string, unknown>;
          } catch {
            return { msg: l };
          }
        }),
    exit,
    signal(signal) {
      child.kill(signal);
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-(child.pid as number), 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      await exit;
    },
  };
  spawned.add(cli);
  void exit.then(() => spawned.delete(cli));
  return cli;
}

/** SIGKILLs every CLI relay still running (for afterEach/afterAll). */
export async function killCliRelays(): Promise<void> {
  await Promise.all([...spawned].map((c) => c.kill()));
}

// ---- fixtures and queries -------------------------------------------------------------

const outbox = createOutbox();

export interface EventSpec {
  tenantId: string;
  type: string;
  payload: Record<string, unknown>;
}

/** Enqueues events in one business transaction and commits (or rolls back); returns their ids. */
export async function enqueueEvents(
  pool: pg.Pool,
  events: readonly EventSpec[],
  end: 'commit' | 'rollback' = 'commit',
): Promise<string[]> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const ids: string[] = [];
    for (const e of events) ids.push((await outbox.enqueue(client, e)).id);
    await client.query(end === 'commit' ? 'COMMIT' : 'ROLLBACK');
    return ids;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

export interface DeliveryRow {
  id: number;
  eventId: string;
  subscriptionId: string;
  status: 'pending' | 'succeeded' | 'dead' | 'cancelled';
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  nextAttemptAt: Date;
  lastAttemptAt: Date | null;
  lockedUntil: Date | null;
}

export async function deliveries(pool: pg.Pool, where = 'true', params: unknown[] = []): Promise<DeliveryRow[]> {
  const { rows } = await pool.query(
    `SELECT id, event_id, subscription_id, status, attempts, last_status, last_error, next_attempt_at,
            last_attempt_at, locked_until
     FROM hookbox.deliveries WHERE ${where} ORDER BY id`,
    params,
  );
  return rows.map((r) => ({
    id: Number(r.id),
    eventId: r.event_id,
    subscriptionId: r.subscription_id,
    status: r.status,
    attempts: r.attempts,
    lastStatus: r.last_status,
    lastError: r.last_error,
    nextAttemptAt: r.next_attempt_at,
    lastAttemptAt: r.last_attempt_at,
    lockedUntil: r.locked_until,
  }));
}

export interface AttemptRow {
  deliveryId: number;
  attempt: number;
  startedAt: Date;
  statusCode: number | null;
  errorClass: string | null;
  errorMessage: string | null;
  responseExcerpt: string | null;
}

export async function attempts(pool: pg.Pool, deliveryId?: number): Promise<AttemptRow[]> {
  const { rows } = await pool.query(
    `SELECT delivery_id, attempt, started_at, status_code, error_class, error_message, response_excerpt
     FROM hookbox.delivery_attempts WHERE $1::bigint IS NULL OR delivery_id = $1 ORDER BY delivery_id, attempt, id`,
    [deliveryId ?? null],
  );
  return rows.map((r) => ({
    deliveryId: Number(r.delivery_id),
    attempt: r.attempt,
    startedAt: r.started_at,
    statusCode: r.status_code,
    errorClass: r.error_class,
    errorMessage: r.error_message,
    responseExcerpt: r.response_excerpt,
  }));
}

/**
 * Waits until no event is pending and every delivery (at least `atLeast` of them) is final,
 * for the given tenants (default: the whole database); returns those deliveries.
 */
export async function waitForAllFinal(
  pool: pg.Pool,
  {
    atLeast = 1,
    tenants,
    timeoutMs = 45_000,
  }: { atLeast?: number; tenants?: readonly string[]; timeoutMs?: number } = {},
): Promise<DeliveryRow[]> {
  const scope = tenants ? [...tenants] : null;
  return waitFor(
    async () => {
      const { rows } = await pool.query(
        `SELECT (SELECT count(*) FROM hookbox.events
                 WHERE fanned_out_at IS NULL AND ($1::text[] IS NULL OR tenant_id = ANY($1)))::int AS events,
                (SELECT count(*) FILTER (WHERE status = 'pending') FROM hookbox.deliveries
                 WHERE $1::text[] IS NULL OR tenant_id = ANY($1))::int AS pending,
                (SELECT count(*) FROM hookbox.deliveries WHERE $1::text[] IS NULL OR tenant_id = ANY($1))::int AS total`,
        [scope],
      );
      const r = rows[0] as { events: number; pending: number; total: number };
      if (r.events > 0 || r.pending > 0 || r.total < atLeast) return undefined;
      return deliveries(pool, '$1::text[] IS NULL OR tenant_id = ANY($1)', [scope]);
    },
    { timeoutMs, intervalMs: 25, what: `every delivery (at least ${atLeast}) to reach a final state` },
  );
}

/**
 * Call at the top of a test file: returns `defer(fn)`; deferred functions run after each
 * test, last first, even when the test failed (stop relays, close receivers).
 */
export function useCleanup(afterEach: (fn: () => Promise<void>) => void): (fn: () => unknown) => void {
  const stack: (() => unknown)[] = [];
  afterEach(async () => {
    const errors: unknown[] = [];
    for (let fn = stack.pop(); fn; fn = stack.pop()) {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw errors[0];
  });
  return (fn) => {
    stack.push(fn);
  };
}

/**
 * An outcome of one attempt as the relay records it: a 200 on attempt 1 that took 3 ms,
 * changed by `overrides` (for tests that write outcomes without sending anything).
 */
export function attemptOutcome(deliveryId: number, subscriptionId: string, overrides: Partial<Outcome> = {}): Outcome {
  return {
    deliveryId,
    attempt: 1,
    subscriptionId,
    status: 'succeeded',
    delayMs: 0,
    statusCode: 200,
    errorClass: null,
    errorMessage: null,
    startedAt: new Date(),
    durationMs: 3,
    excerpt: null,
    attempted: true,
    ...overrides,
  };
}

/**
 * Opens a transaction on its own connection and runs `sql` in it (a LOCK TABLE, a SELECT …
 * FOR UPDATE): what it locks stays locked until the returned client rolls back, or until the
 * test's cleanup (`defer`) does it.
 */
export async function holdInTransaction(
  pool: pg.Pool,
  defer: (fn: () => unknown) => void,
  sql: string,
  params: unknown[] = [],
): Promise<pg.PoolClient> {
  const client = await pool.connect();
  defer(async () => {
    await client.query('ROLLBACK').catch(() => {});
    client.release();
  });
  await client.query('BEGIN');
  await client.query(sql, params);
  return client;
}
