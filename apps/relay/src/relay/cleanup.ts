/**
 * Periodic retention inside the relay: every `intervalMs`, runs the library's `cleanup` in
 * small batches, pausing after each one so that cleanup statements take at most
 * `busyFraction` of the wall time. The pause follows the batch's own duration: when the
 * database is busy with deliveries, batches get slower and cleanup backs off by itself.
 * Each batch borrows one pool connection for one short statement and takes no long lock.
 * Runs never overlap; stop() waits for the batch in progress, not for the whole run.
 */
import { ValidationError } from '@hookbox/outbox';
import { type CleanupProgress, type CleanupResult, cleanup } from '@hookbox/outbox/admin';
import type pg from 'pg';
import type { Logger } from 'pino';

export interface PeriodicCleanupOptions {
  /** The relay's pool; each batch borrows one connection for one short statement. */
  db: pg.Pool;
  logger: Logger;
  /** Retention in ms: finished deliveries and fanned-out events older than this are deleted. */
  olderThanMs: number;
  /** Time from the end of one run to the start of the next, in ms. The first run starts at once. */
  intervalMs: number;
  /** Rows each DELETE statement reads (and deletes at most), 1..10,000. Default 500. */
  batchSize?: number;
  /**
   * Largest share of wall time cleanup statements may take, above 0 and at most 1: after a
   * batch that took `t` ms it pauses `t × (1 / busyFraction − 1)` ms. Default 0.1.
   */
  busyFraction?: number;
  /** Shortest pause after a batch, in ms. Default 20. */
  pauseMs?: number;
  /** Called after each batch with the run's running totals (metrics, progress). Must not throw. */
  onBatch?: (progress: CleanupProgress) => void;
}

export interface PeriodicCleanup {
  /** Stops after the batch in progress (if any) and cancels future runs. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Defaults of startPeriodicCleanup. With them, bench/cleanup.ts (2 CPUs shared by PostgreSQL,
 * a saturated relay, its receiver and a producer) measured the figures in the report.
 */
export const PERIODIC_CLEANUP_DEFAULTS = { batchSize: 500, busyFraction: 0.1, pauseMs: 20 } as const;

/** A bad option: a ValidationError naming it, e.g. `batchSize: must be … (got 0)`. */
function check(ok: boolean, field: string, must: string, got: unknown): void {
  if (!ok) throw new ValidationError(field, 'range', `${must} (got ${got})`);
}

export function startPeriodicCleanup({
  db,
  logger,
  olderThanMs,
  intervalMs,
  batchSize = PERIODIC_CLEANUP_DEFAULTS.batchSize,
  busyFraction = PERIODIC_CLEANUP_DEFAULTS.busyFraction,
  pauseMs = PERIODIC_CLEANUP_DEFAULTS.pauseMs,
  onBatch,
}: PeriodicCleanupOptions): PeriodicCleanup {
  // Checked here, once: a bad value would otherwise fail every run, quietly, forever.
  check(
    Number.isSafeInteger(olderThanMs) && olderThanMs >= 0,
    'olderThanMs',
    'must be a whole number of ms >= 0',
    olderThanMs,
  );
  check(
    Number.isSafeInteger(intervalMs) && intervalMs >= 1,
    'intervalMs',
    'must be a whole number of ms >= 1',
    intervalMs,
  );
  check(
    Number.isSafeInteger(batchSize) && batchSize >= 1 && batchSize <= 10_000,
    'batchSize',
    'must be a whole number from 1 to 10000',
    batchSize,
  );
  check(busyFraction > 0 && busyFraction <= 1, 'busyFraction', 'must be above 0 and at most 1', busyFraction);
  check(Number.isSafeInteger(pauseMs) && pauseMs >= 0, 'pauseMs', 'must be a whole number of ms >= 0', pauseMs);
  const log = logger.child({ part: 'cleanup' });
  const abort = new AbortController();
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let wakePause: (() => void) | null = null;

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      t.unref();
      function done() {
        clearTimeout(t);
        wakePause = null;
        resolve();
      }
      wakePause = done;
    });

  async function runOnce(): Promise<void> {
    const started = performance.now();
    let batchStarted = started;
    let result: CleanupResult;
    try {
      result = await cleanup(db, {
        olderThanMs,
        batchSize,
        signal: abort.signal,
        onBatch: async (progress) => {
          const took = performance.now() - batchStarted;
          try {
            onBatch?.(progress);
          } catch (err) {
            log.warn({ err }, 'cleanup onBatch hook threw; ignored');
          }
          if (!abort.signal.aborted) {
            const ms = Math.max(pauseMs, took * (1 / busyFraction - 1));
            if (ms > 0) await pause(Math.round(ms));
          }
          batchStarted = performance.now();
        },
      });
    } catch (err) {
      log.warn({ err }, 'cleanup run failed; the next run will retry');
      return;
    }
    const fields = {
      deliveries: result.deliveries,
      attempts: result.attempts,
      events: result.events,
      batches: result.batches,
      cutoff: result.cutoff.toISOString(),
      complete: result.complete,
      durationMs: Math.round(performance.now() - started),
    };
    if (result.deliveries + result.events > 0) log.info(fields, 'cleanup deleted old rows');
    else log.debug(fields, 'cleanup: nothing to delete');
  }

  function schedule(delayMs: number): void {
    if (abort.signal.aborted) return;
    timer = setTimeout(() => {
      timer = null;
      running = runOnce().finally(() => {
        running = null;
        schedule(intervalMs);
      });
    }, delayMs);
    // Cleanup alone must not keep the process alive.
    timer.unref();
  }

  log.info({ olderThanMs, intervalMs, batchSize, busyFraction, pauseMs }, 'periodic cleanup started');
  schedule(0);

  let stopping: Promise<void> | null = null;
  return {
    stop() {
      stopping ??= (async () => {
        abort.abort();
        if (timer) clearTimeout(timer);
        timer = null;
        wakePause?.();
        await running;
      })();
      return stopping;
    },
  };
}
