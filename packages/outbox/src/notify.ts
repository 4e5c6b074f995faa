/**
 * Post-commit wake-up hints for the relay. A NOTIFY inside the enqueuing transaction would
 * make every committing transaction queue on one global lock (Postgres serialises commits
 * of notifying transactions), so hookbox sends it *after* commit, on its own pooled
 * connection, at most once per `debounceMs` per process. It is only a hint: the relay also
 * polls, so a lost or early notification costs latency, never events.
 */
import { type Executor, runQuery } from './executor.js';

/** The channel the relay LISTENs on. */
export const NOTIFY_CHANNEL = 'hookbox_events';

/** The parts of a `pg` Pool the notifier uses (drizzle's `db.$client`, TypeORM's `driver.master`). */
export interface NotifyPool {
  on(event: 'release', listener: (err: Error | undefined, client: unknown) => void): unknown;
  removeListener(event: 'release', listener: (err: Error | undefined, client: unknown) => void): unknown;
  connect(): Promise<{
    query(text: string, values?: unknown[]): Promise<unknown>;
    release(err?: boolean | Error): void;
  }>;
}

export interface NotifierOptions {
  /** At most one NOTIFY per this many ms; later releases fold into a trailing one. Default 2. */
  debounceMs?: number;
  /**
   * A connection returned to the pool within this many ms of an enqueue may have committed
   * it, so it triggers a hint. Transactions open longer than this wait for the relay's poll.
   * Default 1000.
   */
  windowMs?: number;
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
export function attachNotifier(pool: NotifyPool, lastEnqueueAt: () => number, options: NotifierOptions = {}): Notifier {
  const debounceMs = options.debounceMs ?? 2;
  const windowMs = options.windowMs ?? 1000;
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
