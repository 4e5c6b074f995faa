/**
 * Periodic retention inside the relay: every `intervalMs`, runs the library's `cleanup` in
 * small batches with a pause after each, so deleting a large backlog of old rows takes one
 * pool connection a small fraction of the time and never a long lock; delivery work keeps
 * the rest. Runs never overlap; stop() waits for the current batch, not the whole run.
 */
import { type CleanupResult, cleanup } from '@hookbox/outbox';
import type pg from 'pg';
import type { Logger } from 'pino';

export interface PeriodicCleanupOptions {
  /** The relay's pool; each batch borrows one connection for one short statement. */
  db: pg.Pool;
  logger: Logger;
  /** Retention: finished deliveries and fanned-out events older than this are deleted, in ms. */
  olderThanMs: number;
  /** Time from the end of one run to the start of the next, in ms. The first run starts at once. */
  intervalMs: number;
  /** Rows per DELETE statement. Default 500 (see PERIODIC_CLEANUP_DEFAULTS). */
  batchSize?: number;
  /** Pause after each batch, in ms, leaving the database to delivery work. Default 50. */
  pauseMs?: number;
}

export interface PeriodicCleanup {
  /** Stops after the batch in progress (if any) and cancels future runs. Idempotent. */
  stop(): Promise<void>;
}

/** Defaults of startPeriodicCleanup, chosen with bench/cleanup.ts. */
export const PERIODIC_CLEANUP_DEFAULTS = { batchSize: 500, pauseMs: 50 } as const;

export function startPeriodicCleanup({
  db,
  logger,
  olderThanMs,
  intervalMs,
  batchSize = PERIODIC_CLEANUP_DEFAULTS.batchSize,
  pauseMs = PERIODIC_CLEANUP_DEFAULTS.pauseMs,
}: PeriodicCleanupOptions): PeriodicCleanup {
  // Checked here, once: a bad value would otherwise fail every run, quietly, forever.
  if (!Number.isSafeInteger(olderThanMs) || olderThanMs < 0) {
    throw new RangeError(`olderThanMs: must be a whole number of ms >= 0 (got ${olderThanMs})`);
  }
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
    throw new RangeError(`batchSize: must be a whole number from 1 to 10000 (got ${batchSize})`);
  }
  if (!Number.isSafeInteger(intervalMs) || intervalMs < 1) {
    throw new RangeError(`intervalMs: must be a whole number of ms >= 1 (got ${intervalMs})`);
  }
  if (!Number.isSafeInteger(pauseMs) || pauseMs < 0) {
    throw new RangeError(`pauseMs: must be a whole number of ms >= 0 (got ${pauseMs})`);
  }
  const log = logger.child({ part: 'cleanup' });
  const abort = new AbortController();
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let wakePause: (() => void) | null = null;

  const pause = () =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, pauseMs);
      t.unref();
      function done() {
        clearTimeout(t);
        wakePause = null;
        resolve();
      }
      wakePause = done;
    });

  async function runOnce(): Promise<void> {
    const started = Date.now();
    let result: CleanupResult;
    try {
      result = await cleanup(db, {
        olderThanMs,
        batchSize,
        signal: abort.signal,
        onBatch: () => (abort.signal.aborted || pauseMs === 0 ? undefined : pause()),
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
      durationMs: Date.now() - started,
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

  log.info({ olderThanMs, intervalMs, batchSize, pauseMs }, 'periodic cleanup started');
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
