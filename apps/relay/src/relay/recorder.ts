/**
 * Batches outcomes into one write per flush. Outcomes wait in memory for at most
 * `flushMs`; a write that fails for a passing reason (connection lost, Postgres restarting)
 * is retried (p-retry) until it lands, so a restarted Postgres delays the log but loses
 * nothing the relay has already learned. A write that fails for a reason that retrying
 * cannot fix (bad data, a constraint: SQLSTATE classes 22 and 23) is split, so that one
 * bad outcome cannot hold up every other one: the rest are written one by one and only
 * the offender is dropped (logged; its delivery is retried once its lease runs out).
 */
import pRetry from 'p-retry';
import type pg from 'pg';
import type { Logger } from 'pino';
import { type BreakerSettings, DEFAULT_BREAKER, type Outcome, recordOutcomes, type SubscriptionChange } from './sql.js';

/** Errors that retrying the same statement cannot fix. */
export function isPermanentDbError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && /^(22|23)/.test(code);
}

export class Recorder {
  private buffer: Outcome[] = [];
  /** Deliveries whose outcome is known here but not yet written. */
  private readonly unwritten = new Set<number>();
  /** False while writes are failing: the relay then claims no retries (see relay.ts). */
  healthy = true;
  private closed = false;
  private flushing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private idleWaiters: (() => void)[] = [];
  /**
   * Called after each batch is written, before the next one is (the relay asks for the
   * successors of finished ordered deliveries to be promoted, in the background). A
   * failure is logged, never thrown.
   */
  afterWrite: ((batch: readonly Outcome[]) => Promise<void>) | null = null;

  constructor(
    private readonly db: pg.Pool,
    private readonly logger: Logger,
    private readonly flushMs = 10,
    private readonly maxBatch = 500,
    private readonly breaker: BreakerSettings = DEFAULT_BREAKER,
    /** Called with the breaker transitions and auto-disables each write made; must not throw. */
    private readonly onChanges: (changes: SubscriptionChange[]) => void = () => {},
  ) {}

  get pending(): number {
    return this.buffer.length + (this.flushing ? 1 : 0);
  }

  /** How many outcomes are known here and not yet written (buffered or being written). */
  get backlog(): number {
    return this.unwritten.size;
  }

  /** Ids of deliveries whose outcome waits to be written (they must not be claimed again). */
  unwrittenIds(): number[] {
    return [...this.unwritten];
  }

  add(outcome: Outcome): void {
    this.unwritten.add(outcome.deliveryId);
    this.buffer.push(outcome);
    if (this.buffer.length >= this.maxBatch) this.kick();
    else if (!this.timer) this.timer = setTimeout(() => this.kick(), this.flushMs);
  }

  private kick(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.flushing || this.buffer.length === 0) return;
    const batch = this.buffer.splice(0, this.maxBatch);
    this.flushing = this.write(batch).finally(() => {
      this.flushing = null;
      if (this.buffer.length > 0) this.kick();
      else for (const w of this.idleWaiters.splice(0)) w();
    });
  }

  private async write(batch: Outcome[]): Promise<void> {
    try {
      await this.writeRetrying(batch);
    } catch (err) {
      // Permanent: find the offender by writing the batch one outcome at a time.
      this.logger.error(
        { err, outcomes: batch.length },
        'an outcome in this batch cannot be recorded; writing one by one',
      );
      for (const o of batch) {
        await this.writeRetrying([o]).catch((e) =>
          this.logger.error(
            { err: e, deliveryId: o.deliveryId, attempt: o.attempt },
            'outcome cannot be recorded; dropped (the delivery is retried when its lease runs out)',
          ),
        );
      }
    }
    for (const o of batch) this.unwritten.delete(o.deliveryId);
    if (this.afterWrite) {
      await this.afterWrite(batch).catch((err) => this.logger.warn({ err }, 'after-write step failed'));
    }
  }

  /** Retries passing failures for ever; rejects at once on a permanent one. */
  private async writeRetrying(batch: Outcome[]): Promise<void> {
    const result = await pRetry(() => recordOutcomes(this.db, batch, this.breaker), {
      retries: Number.POSITIVE_INFINITY,
      minTimeout: 100,
      maxTimeout: 5_000,
      shouldRetry: ({ error }) => !this.closed && !isPermanentDbError(error),
      onFailedAttempt: ({ error, attemptNumber }) => {
        if (isPermanentDbError(error)) return;
        this.healthy = false;
        this.logger.warn(
          { err: error, attempt: attemptNumber, outcomes: batch.length },
          'recording outcomes failed; retrying',
        );
      },
    });
    this.healthy = true;
    if (result.subscriptions.length > 0) this.onChanges(result.subscriptions);
  }

  /** Gives up: no more retries (shutdown with the database gone). Buffered outcomes are lost to the log. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Writes everything buffered; resolves when the buffer is empty. */
  async drain(): Promise<void> {
    if (this.buffer.length === 0 && !this.flushing) return;
    const idle = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.kick();
    await idle;
  }
}
