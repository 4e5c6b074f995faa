/**
 * Replays, retries, recovery and retention racing each other (migration 0017): two of them
 * at once add one pending delivery, never two; retention never deletes an event whose
 * replay has just committed (its cascade took the new delivery with it).
 */
import { subscriptions } from '@hookbox/outbox';
import { cleanup, recoverDead, replayEvent, retryDelivery } from '@hookbox/outbox/admin';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from './harness/db.js';

const db = useTestDatabase();
let others: pg.Pool;
beforeAll(() => {
  others = new pg.Pool({ connectionString: db.url, max: 6 });
});
afterAll(async () => {
  await others.end();
});

let n = 0;
/** An old, fanned-out event of a new tenant with a dead delivery to one endpoint. */
async function deadDelivery(orderingKey: string | null = null) {
  const tenantId = `race-${++n}`;
  const sub = await subscriptions.create(db.pool, { tenantId, url: 'http://127.0.0.1:9/x', eventTypes: ['*'] });
  const { rows } = await db.pool.query<{ id: string }>(
    `INSERT INTO hookbox.events (tenant_id, type, payload, ordering_key, ordering_seq, created_at, fanned_out_at)
     VALUES ($1, 'a.b', '{}', $2, CASE WHEN $2::text IS NULL THEN NULL ELSE 1 END, now() - interval '2 days', now() - interval '2 days')
     RETURNING id`,
    [tenantId, orderingKey],
  );
  const eventId = rows[0]?.id as string;
  const { rows: d } = await db.pool.query<{ id: string }>(
    `INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, status, attempts, last_error, completed_at,
       ordering_key, ordering_seq)
     VALUES ($1, $2, $3, 'dead', 3, 'http: HTTP 500', now() - interval '2 days', $4, CASE WHEN $4::text IS NULL THEN NULL ELSE 1 END)
     RETURNING id`,
    [eventId, sub.id, tenantId, orderingKey],
  );
  return { tenantId, eventId, subscriptionId: sub.id, deliveryId: Number(d[0]?.id) };
}

async function pendingOf(eventId: string): Promise<number> {
  const { rows } = await db.pool.query(
    `SELECT count(*)::int AS n FROM hookbox.deliveries WHERE event_id = $1 AND status = 'pending'`,
    [eventId],
  );
  return rows[0].n;
}

/**
 * Runs `both` while a third session holds the event's row: each insert's foreign-key check
 * then waits, after the statement has looked for a pending delivery on its snapshot — the
 * window in which two replays both found none. Released once both are under way.
 */
async function withEventHeld<T>(eventId: string, both: () => Promise<T>): Promise<T> {
  const blocker = await others.connect();
  try {
    await blocker.query('BEGIN');
    await blocker.query('SELECT 1 FROM hookbox.events WHERE id = $1 FOR UPDATE', [eventId]);
    const running = both();
    // Both statements are waiting (on the row, or on the event's advisory lock).
    for (let i = 0; i < 200; i++) {
      const { rows } = await db.pool.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type IN ('Lock') AND pid <> $1`,
        [(await blocker.query('SELECT pg_backend_pid() AS pid')).rows[0].pid],
      );
      if (rows[0].n >= 2) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    await blocker.query('COMMIT');
    return await running;
  } finally {
    blocker.release();
  }
}

describe('replays at once', () => {
  it('two replays of one event add one pending delivery; the other reports it', async () => {
    const { tenantId, eventId } = await deadDelivery('k');
    const [a, b] = await withEventHeld(eventId, () =>
      Promise.all([replayEvent(others, { tenantId, eventId }), replayEvent(others, { tenantId, eventId })]),
    );
    expect(await pendingOf(eventId)).toBe(1);
    expect(a.created.length + b.created.length).toBe(1);
    expect(a.alreadyPending.length + b.alreadyPending.length).toBe(1);
  });

  it('a retry and a replay at once add one pending delivery', async () => {
    const { tenantId, eventId, deliveryId } = await deadDelivery();
    const results = await withEventHeld(eventId, () =>
      Promise.allSettled([
        retryDelivery(others, { tenantId, id: deliveryId }),
        replayEvent(others, { tenantId, eventId }),
      ]),
    );
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
    expect(await pendingOf(eventId)).toBe(1);
  });

  it('two recoveries at once replay each dead delivery once', async () => {
    const { tenantId, eventId } = await deadDelivery();
    const [a, b] = await withEventHeld(eventId, () =>
      Promise.all([recoverDead(others, { tenantId }), recoverDead(others, { tenantId })]),
    );
    expect(await pendingOf(eventId)).toBe(1);
    expect(a.replayed + b.replayed).toBe(1);
  });
});

describe('retention and replay at once', () => {
  it('never deletes a delivery a replay has committed (stress: cleanup and replays of one old event)', async () => {
    // Old fanned-out events that keep a pending delivery each: cleanup reads past them
    // before it reaches the target, which widens the window between its snapshot and its lock.
    const filler = await deadDelivery();
    await db.pool.query(
      `WITH e AS (
         INSERT INTO hookbox.events (tenant_id, type, payload, created_at, fanned_out_at)
         SELECT $1, 'a.b', '{}', now() - interval '2 days', now() - interval '2 days' FROM generate_series(1, 6000)
         RETURNING id)
       INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, next_attempt_at)
       SELECT id, $2, $1, 'infinity' FROM e`,
      [filler.tenantId, filler.subscriptionId],
    );
    const target = async () =>
      (
        await db.pool.query<{ id: string }>(
          `INSERT INTO hookbox.events (tenant_id, type, payload, created_at, fanned_out_at)
           VALUES ($1, 'a.b', '{}', now() - interval '2 days', now() - interval '2 days') RETURNING id`,
          [filler.tenantId],
        )
      ).rows[0]?.id as string;
    let eventId = await target();
    let stop = false;
    let created = 0;
    const lost: number[] = [];
    const replayer = (async () => {
      while (!stop) {
        await others.query('DELETE FROM hookbox.deliveries WHERE event_id = $1', [eventId]);
        const r = await replayEvent(others, { tenantId: filler.tenantId, eventId }).catch((err) => {
          // Cleanup deleted the event first: the replay says so, and writes nothing.
          expect((err as Error).name).toBe('NotFoundError');
          return null;
        });
        if (r && r.created.length > 0) {
          created++;
          await new Promise((res) => setTimeout(res, Math.random() * 10));
          const { rows } = await others.query('SELECT count(*)::int AS n FROM hookbox.deliveries WHERE id = $1', [
            r.created[0]?.id,
          ]);
          if (rows[0].n === 0) lost.push(r.created[0]?.id as number);
        }
        const { rows: left } = await others.query('SELECT 1 FROM hookbox.events WHERE id = $1', [eventId]);
        if (left.length === 0) eventId = await target();
      }
    })();
    const until = Date.now() + 2_500;
    let runs = 0;
    while (Date.now() < until) {
      await cleanup(others, { olderThanMs: 86_400_000, batchSize: 10_000 });
      runs++;
    }
    stop = true;
    await replayer;
    expect(runs).toBeGreaterThan(3);
    expect(created).toBeGreaterThan(10);
    expect(lost).toEqual([]);
  }, 30_000);
});
