/**
 * `hookbox relay --cleanup-older-than`: the relay process runs retention itself, deleting
 * old finished rows while it keeps delivering, and never touching pending work.
 */
import { createOutbox, subscriptions } from '@hookbox/outbox';
import { afterEach, describe, expect, it } from 'vitest';
import { useTestDatabase } from './harness/db.js';
import { startReceiver } from './harness/receiver.js';
import { killCliRelays, spawnRelayCli, waitFor } from './harness/relay.js';

const db = useTestDatabase();
afterEach(killCliRelays);

describe('relay --cleanup-older-than', () => {
  it('deletes finished rows past retention while delivering new events, and keeps pending ones', async () => {
    const receiver = await startReceiver();
    try {
      const sub = await subscriptions.create(db.pool, {
        tenantId: 'ret',
        url: receiver.url('/hook'),
        eventTypes: ['*'],
      });
      // An old, finished event + delivery (40 days ago), and an old one still pending.
      const { rows } = await db.pool.query<{ id: string }>(
        `INSERT INTO hookbox.events (tenant_id, type, payload, created_at, fanned_out_at)
         VALUES ('ret', 'message.new', '{}', now() - interval '40 days', now() - interval '40 days'),
                ('ret', 'message.new', '{}', now() - interval '40 days', now() - interval '40 days')
         RETURNING id`,
      );
      const [oldDone, oldPending] = rows.map((r) => r.id);
      await db.pool.query(
        `INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, status, attempts, created_at, completed_at, next_attempt_at)
         VALUES ($1, $3, 'ret', 'succeeded', 1, now() - interval '40 days', now() - interval '40 days', now()),
                ($2, $3, 'ret', 'pending', 1, now() - interval '40 days', NULL, now() + interval '1 day')`,
        [oldDone, oldPending, sub.id],
      );

      const relay = spawnRelayCli(db.url, { cleanupOlderThan: '30d', cleanupInterval: '1s' });
      const outbox = createOutbox();
      await outbox.enqueue(db.pool, { tenantId: 'ret', type: 'message.new', payload: { fresh: true } });

      await waitFor(
        async () =>
          (await db.pool.query('SELECT 1 FROM hookbox.events WHERE id = $1', [oldDone])).rowCount === 0 &&
          receiver.requests().length === 1,
        { timeoutMs: 15_000, what: 'cleanup of the old finished event and delivery of the fresh one' },
      );
      const left = await db.pool.query<{ event_id: string; status: string }>(
        'SELECT event_id, status FROM hookbox.deliveries ORDER BY id',
      );
      expect(left.rows.map((r) => r.status).sort()).toEqual(['pending', 'succeeded']);
      expect(left.rows.find((r) => r.status === 'pending')?.event_id).toBe(oldPending);
      relay.signal('SIGTERM');
      expect((await relay.exit).code).toBe(0);
    } finally {
      await receiver.close();
    }
  });

  it('refuses a retention shorter than a minute, naming the flag', async () => {
    const relay = spawnRelayCli(db.url, { cleanupOlderThan: '10s' });
    const { code } = await relay.exit;
    expect(code).toBe(2);
    expect(relay.stderr()).toMatch(/--cleanup-older-than: must be at least 1m/);
  });
});
