/**
 * LISTEN for the outbox's wake-up hint on a dedicated connection. Only a hint: the relay
 * polls anyway, so a lost notification or a dropped connection costs latency, never data.
 */
import { NOTIFY_CHANNEL } from '@hookbox/outbox';
import pg from 'pg';
import type { Logger } from 'pino';

export interface Wakeup {
  close(): Promise<void>;
}

export function listenForWakeups(
  connectionString: string,
  onWake: () => void,
  logger: Logger,
  channel = NOTIFY_CHANNEL,
): Wakeup {
  let client: pg.Client | null = null;
  let closed = false;
  let retryMs = 100;
  let timer: NodeJS.Timeout | null = null;

  const connect = async () => {
    if (closed) return;
    const c = new pg.Client({ connectionString, application_name: 'hookbox-relay-listen' });
    c.on('error', (err) => {
      logger.warn({ err }, 'wake-up connection lost; polling continues, reconnecting');
      c.end().catch(() => {});
      if (client === c) client = null;
      schedule();
    });
    c.on('notification', () => onWake());
    try {
      await c.connect();
      await c.query(`LISTEN ${channel}`);
      if (closed) {
        await c.end();
        return;
      }
      client = c;
      retryMs = 100;
      onWake(); // anything enqueued while we were not listening
    } catch (err) {
      logger.warn({ err }, 'wake-up LISTEN failed; polling continues, retrying');
      c.end().catch(() => {});
      schedule();
    }
  };
  const schedule = () => {
    if (closed || timer) return;
    timer = setTimeout(() => {
      timer = null;
      void connect();
    }, retryMs);
    retryMs = Math.min(retryMs * 2, 5_000);
  };

  void connect();
  return {
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      const c = client;
      client = null;
      if (c) await c.end().catch(() => {});
    },
  };
}
