/**
 * Post-commit wake-up hints for the relay. A NOTIFY inside the enqueuing transaction would
 * make every committing transaction queue on one global lock (Postgres serialises commits
 * of notifying transactions), so hookbox sends it *after* commit, on its own pooled
 * connection, at most once per `debounceMs` per process. It is only a hint: the relay also
 * polls, so a lost or early notification costs latency, never events.
 */
import { HookboxError } from './errors.js';
import { type Executor, runQuery } from './executor.js';
import { checkInput, intInRange } from './input.js';

/** The channel the relay LISTENs on. */
export const NOTIFY_CHANNEL = 'hookbox_events';

/** The parts of a `pg` Pool the notifier uses. */
export interface NotifyPool {
  on(event: 'release', listener: (err: Error | undefined, client: unknown) => void): unknown;
  removeListener(event: 'release', listener: (err: Error | undefined, client: unknown) => void): unknown;
  connect(): Promise<{
    query(text: string, values?: unknown[]): Promise<unknown>;
    release(err?: boolean | Error): void;
  }>;
}

/**
 * What `attachNotifier` watches: a pg Pool, a drizzle node-postgres db (its `$client` is
 * the Pool) or an initialised TypeORM DataSource on the postgres driver (its pool).
 */
export type NotifierSource = NotifyPool | { readonly $client: NotifyPool } | { readonly driver: object };

const isPool = (x: unknown): x is NotifyPool =>
  typeof x === 'object' &&
  x !== null &&
  typeof (x as NotifyPool).on === 'function' &&
  typeof (x as NotifyPool).connect === 'function' &&
  typeof (x as NotifyPool).removeListener === 'function';

/** The pg Pool behind a notifier source; throws a HookboxError naming what was wrong. */
export function resolveNotifyPool(source: NotifierSource): NotifyPool {
  if (isPool(source)) return source;
  if (source && typeof source === 'object') {
    if ('$client' in source && isPool(source.$client)) return source.$client;
    if ('driver' in source) {
      const master = (source.driver as { master?: unknown } | undefined)?.master;
      if (isPool(master)) return master;
      throw new HookboxError(
        'HOOKBOX_INVALID_EXECUTOR',
        'attachNotifier: the TypeORM DataSource has no pg pool (initialise it first; only the postgres driver is supported)',
      );
    }
  }
  throw new HookboxError(
    'HOOKBOX_INVALID_EXECUTOR',
    'attachNotifier: expected a pg Pool, a drizzle node-postgres db or a TypeORM DataSource',
  );
}

/** Options of `attachNotifier`. Unknown keys and values out of range are rejected (ValidationError). */
export interface NotifierOptions {
  /**
   * At most one NOTIFY per this many ms; later releases fold into a trailing one. An integer
   * from 0 to 60000. Default 2.
   */
  debounceMs?: number;
  /**
   * A connection returned to the pool within this many ms of an enqueue may have committed
   * it, so it triggers a hint. Transactions open longer than this wait for the relay's poll.
   * An integer from 1 to 3600000. Default 1000.
   */
  windowMs?: number;
}

const NOTIFIER_KEYS = ['debounceMs', 'windowMs'] as const;

/** The options with their defaults; throws ValidationError naming the field and the rule. */
function resolveNotifierOptions(options: unknown): Required<NotifierOptions> {
  const input = checkInput(options, NOTIFIER_KEYS, 'notifier options');
  return {
    debounceMs: intInRange(input.debounceMs, 'debounceMs', 0, 60_000, { fallback: 2, suffix: ' milliseconds' }),
    windowMs: intInRange(input.windowMs, 'windowMs', 1, 3_600_000, { fallback: 1000, suffix: ' milliseconds' }),
  };
}

export interface Notifier {
  /** Stops listening to the pool. */
  detach(): void;
  /** Resolves once any scheduled or in-flight notification has been sent. */
  flush(): Promise<void>;
}

/** Sends one hint now, on the executor given (call it after your transaction commits). */
export async function notifyRelay(executor: Executor): Promise<void> {
  await runQuery(executor, 'SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, '']);
}

/**
 * Watches `pool` for connections being returned (which happens after COMMIT or ROLLBACK)
 * and, when an enqueue happened recently, sends a debounced NOTIFY on a pooled connection.
 * `lastEnqueueAt` tells it when this process last enqueued (performance.now() time).
 */
export function attachNotifier(
  source: NotifierSource,
  lastEnqueueAt: () => number,
  options: NotifierOptions = {},
): Notifier {
  const { debounceMs, windowMs } = resolveNotifierOptions(options);
  const pool = resolveNotifyPool(source);
  const own = new WeakSet<object>(); // clients checked out by the notifier itself
  let lastSentAt = Number.NEGATIVE_INFINITY;
  let timer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  let inFlight: Promise<void> | null = null;
  let again = false;

  const send = () => {
    timer = null;
    if (inFlight) {
      again = true;
      return;
    }
    lastSentAt = performance.now();
    inFlight = (async () => {
      try {
        const client = await pool.connect();
        own.add(client);
        try {
          await client.query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, '']);
        } finally {
          client.release();
        }
      } catch {
        // A hint that could not be sent: the relay's poll picks the event up.
      } finally {
        inFlight = null;
        if (again) {
          again = false;
          schedule();
        }
      }
    })();
  };

  const schedule = () => {
    if (timer) return;
    const wait = lastSentAt + debounceMs - performance.now();
    timer = wait <= 0 ? setImmediate(send) : setTimeout(send, wait);
  };

  const onRelease = (_err: Error | undefined, client: unknown) => {
    // Our own NOTIFY connection coming back. Forget it: the pool will lend the same client
    // object to the application next, and that release must count.
    if (typeof client === 'object' && client !== null && own.delete(client)) return;
    if (performance.now() - lastEnqueueAt() <= windowMs) schedule();
  };
  pool.on('release', onRelease);

  return {
    detach() {
      pool.removeListener('release', onRelease);
    },
    async flush() {
      while (timer || inFlight) {
        if (inFlight) await inFlight;
        else await new Promise((r) => setTimeout(r, debounceMs));
      }
    },
  };
}
