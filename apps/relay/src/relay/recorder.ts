/**
 * Batches outcomes into one write per flush. Outcomes wait in memory for at most
 * `flushMs`; a failed write is retried (p-retry) until it lands, so a restarted Postgres
 * delays the log but loses nothing the relay has already learned.
 */
import pRetry from 'p-retry';
import type pg from 'pg';
import type { Logger } from 'pino';
import { type Outcome, recordOutcomes } from './sql.js';

export class Recorder {
  private buffer: Outcome[] = [];
  private flushing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly db: pg.Pool,
    private readonly logger: Logger,
    private readonly flushMs = 10,
    private readonly maxBatch = 500,
  ) {}

  get pending(): number {
    return this.buffer.length + (this.flushing ? 1 : 0);
  }

  add(outcome: Outcome): void {
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
    await pRetry(() => recordOutcomes(this.db, batch), {
      retries: Number.POSITIVE_INFINITY,
      minTimeout: 100,
      maxTimeout: 5_000,
      onFailedAttempt: ({ error, attemptNumber }) => {
        this.logger.warn(
          { err: error, attempt: attemptNumber, outcomes: batch.length },
          'recording outcomes failed; retrying',
        );
      },
    });
  }

  /** Writes everything buffered; resolves when the buffer is empty. */
  async drain(): Promise<void> {
    if (this.buffer.length === 0 && !this.flushing) return;
    const idle = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.kick();
    await idle;
  }
}
