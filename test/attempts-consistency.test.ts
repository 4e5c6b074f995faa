/**
 * The delivery log stays whole without a foreign key from delivery_attempts to deliveries
 * (migration 0007): a delivery's attempts go with it however it is deleted, and an outcome
 * recorded while its delivery is being deleted leaves no attempt behind.
 */
import { subscriptions } from '@hookbox/outbox';
import { cleanup } from '@hookbox/outbox/admin';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordOutcomes } from '../apps/relay/src/relay/sql.js';
import { useTestDatabase } from './harness/db.js';
import { attemptOutcome, enqueueEvents } from './harness/relay.js';

const db = useTestDatabase();
let n = 0;
const tenant = () => `log-${++n}-${Date.now().toString(36)}`;
let other: pg.Pool;

beforeAll(() => {
  other = new pg.Pool({ connectionString: db.url, max: 2 });
});
afterAll(async () => {
  await other.end();
});

/** A subscription with `count` pending deliveries (attempt 1 claimed) of one event each. */
async function fixture(count: number) {
  const t = tenant();
  const sub = await subscriptions.create(db.pool, { tenantId: t, url: 'https://example.com/h', eventTypes: ['*'] });
  const eventIds = await enqueueEvents(
    db.pool,
    Array.from({ length: count }, (_, i) => ({ tenantId: t, type: 'a.b', payload: { i } })),
  );
  const { rows } = await db.pool.query<{ id: string }>(
    `INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, attempts)
     SELECT e, $2, $3, 1 FROM unnest($1::uuid[]) e RETURNING id`,
    [eventIds, sub.id, t],
  );
  return { tenantId: t, sub, eventIds, ids: rows.map((r) => Number(r.id)) };
}

const outcome = (deliveryId: number, subscriptionId: string, attempt = 1) =>
  attemptOutcome(deliveryId, subscriptionId, { attempt });

async function attemptsOf(ids: number[]): Promise<number> {
  const { rows } = await db.pool.query(
    'SELECT count(*)::int AS n FROM hookbox.delivery_attempts WHERE delivery_id = ANY($1)',
    [ids],
  );
  return rows[0].n;
}

describe('delivery log without a foreign key', () => {
  it('has no foreign key from delivery_attempts, and a delete trigger on deliveries instead', async () => {
    const { rows } = await db.pool.query(
      `SELECT (SELECT count(*)::int FROM pg_constraint WHERE conrelid = 'hookbox.delivery_attempts'::regclass AND contype = 'f') AS fks,
              (SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'hookbox.deliveries'::regclass AND tgname = 'deliveries_delete_attempts') AS triggers`,
    );
    expect(rows[0]).toEqual({ fks: 0, triggers: 1 });
  });

  it('deletes the attempts of the deliveries that a deleted subscription or event takes with it', async () => {
    const a = await fixture(3);
    const b = await fixture(2);
    await recordOutcomes(db.pool, [
      ...a.ids.map((id) => outcome(id, a.sub.id)),
      ...b.ids.map((id) => outcome(id, b.sub.id)),
    ]);
    // A fenced-off outcome of an earlier attempt is logged too: the request was made.
    await recordOutcomes(db.pool, [outcome(b.ids[0] as number, b.sub.id, 0)]);
    expect(await attemptsOf(a.ids)).toBe(3);
    expect(await attemptsOf(b.ids)).toBe(3);

    await subscriptions.delete(db.pool, { tenantId: a.tenantId, id: a.sub.id });
    expect(await attemptsOf(a.ids)).toBe(0);
    expect(await attemptsOf(b.ids)).toBe(3);

    await db.pool.query('DELETE FROM hookbox.events WHERE id = $1', [b.eventIds[0]]);
    expect(await attemptsOf([b.ids[0] as number])).toBe(0);
    expect(await attemptsOf([b.ids[1] as number])).toBe(1);
  });

  it('retention deletes and counts the attempts of the deliveries it deletes', async () => {
    const f = await fixture(2);
    await recordOutcomes(
      db.pool,
      f.ids.map((id) => outcome(id, f.sub.id)),
    );
    await db.pool.query("UPDATE hookbox.deliveries SET completed_at = now() - interval '2 days' WHERE id = ANY($1)", [
      f.ids,
    ]);
    const res = await cleanup(db.pool, { olderThanMs: 86_400_000 });
    expect(res.deliveries).toBeGreaterThanOrEqual(2);
    expect(res.attempts).toBeGreaterThanOrEqual(2);
    expect(await attemptsOf(f.ids)).toBe(0);
  });

  it('logs nothing for a delivery deleted while its outcome was being recorded', async () => {
    const f = await fixture(2);
    const [owned, fenced] = f.ids as [number, number];
    // The delete runs first and holds the rows until it commits; its trigger has already run.
    const deleter = await other.connect();
    try {
      await deleter.query('BEGIN');
      await deleter.query('DELETE FROM hookbox.deliveries WHERE id = ANY($1)', [f.ids]);
      const recording = recordOutcomes(db.pool, [outcome(owned, f.sub.id), outcome(fenced, f.sub.id, 0)]);
      // The recording waits for the deleter's row locks.
      await waitUntilBlocked();
      await deleter.query('COMMIT');
      expect([...(await recording).changed]).toEqual([]);
    } finally {
      deleter.release();
    }
    expect(await attemptsOf(f.ids)).toBe(0);
  });

  it('a delete that waits for a recording outcome takes the new attempts with it', async () => {
    const f = await fixture(2);
    const recorder = await other.connect();
    try {
      await recorder.query('BEGIN');
      await recordOutcomes(recorder as unknown as pg.Pool, [
        outcome(f.ids[0] as number, f.sub.id),
        outcome(f.ids[1] as number, f.sub.id, 0),
      ]);
      const deleting = db.pool.query('DELETE FROM hookbox.deliveries WHERE id = ANY($1)', [f.ids]);
      await waitUntilBlocked();
      await recorder.query('COMMIT');
      expect((await deleting).rowCount).toBe(2);
    } finally {
      recorder.release();
    }
    expect(await attemptsOf(f.ids)).toBe(0);
  });
});

/** Resolves once some session of this database waits on a lock. */
async function waitUntilBlocked(): Promise<void> {
  for (;;) {
    const { rows } = await other.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
    );
    if (rows[0].n > 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}
