/**
 * Retention against a real PostgreSQL: cleanup deletes exactly the old finished deliveries
 * (with their attempts) and the old fanned-out events left without deliveries, in bounded
 * batches; it never touches a pending or leased delivery (even of an old event), an event
 * waiting for fan-out, or an event that still has a recent delivery; a dry run only counts;
 * a row another transaction holds is skipped, not waited for. The relay's periodic cleanup
 * does the same in the background and stops cleanly.
 */
import { randomUUID } from 'node:crypto';
import { subscriptions, ValidationError } from '@hookbox/outbox';
import { cleanup, FRONTIER_MARGIN_MS } from '@hookbox/outbox/admin';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../apps/relay/src/logger.js';
import { startPeriodicCleanup } from '../apps/relay/src/relay/cleanup.js';
import { useTestDatabase } from './harness/db.js';
import { LogBuffer, useCleanup, waitFor } from './harness/relay.js';

const db = useTestDatabase();
const defer = useCleanup(afterEach);
// Every test starts from empty tables: rows are inserted in time order, as in real life.
beforeEach(async () => {
  await db.pool.query('TRUNCATE hookbox.delivery_attempts, hookbox.deliveries, hookbox.events');
});
const DAY = 24 * 60 * 60 * 1000;
const RETENTION = 30 * DAY;
const OLD = 40 * DAY;

async function sub(tenantId: string): Promise<string> {
  return (await subscriptions.create(db.pool, { tenantId, url: 'http://127.0.0.1:9/x', eventTypes: ['*'] })).id;
}

/** An event created `ageMs` ago; fanned out then too unless `fannedOut` is false. */
async function event(tenantId: string, ageMs: number, fannedOut = true): Promise<string> {
  const { rows } = await db.pool.query(
    `INSERT INTO hookbox.events (tenant_id, type, payload, created_at, fanned_out_at)
     VALUES ($1, 'message.new', '{}', now() - $2::float8 * interval '1 ms',
             CASE WHEN $3 THEN now() - $2::float8 * interval '1 ms' + interval '1 second' END)
     RETURNING id`,
    [tenantId, ageMs, fannedOut],
  );
  return rows[0].id;
}

type State =
  | { status: 'succeeded' | 'dead' | 'cancelled'; completedAgoMs: number }
  /** Due now (e.g. an expired lease), waiting for a retry, or leased by a relay right now. */
  | { status: 'pending'; kind: 'due' | 'waiting' | 'leased' };

/** A delivery created `ageMs` ago in the given state, with `tries` logged attempts. */
async function delivery(eventId: string, subscriptionId: string, tenantId: string, ageMs: number, s: State, tries = 2) {
  const pending = s.status === 'pending';
  const { rows } = await db.pool.query(
    `INSERT INTO hookbox.deliveries
       (event_id, subscription_id, tenant_id, status, attempts, created_at, next_attempt_at, locked_until, completed_at,
        last_error)
     VALUES ($1, $2, $3, $4, $5, now() - $6::float8 * interval '1 ms',
       CASE $7 WHEN 'due' THEN now() - interval '1 minute' ELSE now() + interval '1 hour' END,
       CASE WHEN $7 = 'leased' THEN now() + interval '1 hour' END,
       CASE WHEN $4 = 'pending' THEN NULL ELSE now() - $8::float8 * interval '1 ms' END,
       CASE WHEN $7 = 'waiting' THEN 'http_status: HTTP 503' END)
     RETURNING id`,
    [
      eventId,
      subscriptionId,
      tenantId,
      s.status,
      tries,
      ageMs,
      pending ? s.kind : 'final',
      pending ? 0 : s.completedAgoMs,
    ],
  );
  const id = Number(rows[0].id);
  for (let a = 1; a <= tries; a++) {
    await db.pool.query(
      `INSERT INTO hookbox.delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code)
       VALUES ($1, $2, now() - $3::float8 * interval '1 ms', 5, 500)`,
      [id, a, ageMs],
    );
  }
  return id;
}

async function ids(table: 'deliveries' | 'events' | 'delivery_attempts', tenantId?: string): Promise<string[]> {
  const where =
    table === 'delivery_attempts'
      ? 'delivery_id IN (SELECT id FROM hookbox.deliveries WHERE $1::text IS NULL OR tenant_id = $1)'
      : '$1::text IS NULL OR tenant_id = $1';
  const { rows } = await db.pool.query(`SELECT id::text FROM hookbox.${table} WHERE ${where} ORDER BY id`, [
    tenantId ?? null,
  ]);
  return rows.map((r) => r.id);
}

async function totals() {
  const { rows } = await db.pool.query(
    `SELECT (SELECT count(*) FROM hookbox.deliveries)::int AS deliveries,
            (SELECT count(*) FROM hookbox.delivery_attempts)::int AS attempts,
            (SELECT count(*) FROM hookbox.events)::int AS events`,
  );
  return rows[0] as { deliveries: number; attempts: number; events: number };
}

/** `n` old events, each with one old succeeded delivery and `tries` attempts. */
async function oldFinished(tenantId: string, subscriptionId: string, n: number, tries = 1): Promise<void> {
  for (let i = 0; i < n; i++) {
    const e = await event(tenantId, OLD);
    await delivery(e, subscriptionId, tenantId, OLD, { status: 'succeeded', completedAgoMs: OLD }, tries);
  }
}

describe('cleanup', () => {
  it('deletes exactly the old finished rows, in bounded batches, and never a pending or leased one', async () => {
    const t = `t-${randomUUID().slice(0, 8)}`;
    const s = await sub(t);
    const doomed = { deliveries: new Set<number>(), events: new Set<string>() };
    const kept = { deliveries: new Set<number>(), events: new Set<string>() };

    // Old event, old succeeded + old dead deliveries: all go.
    const e1 = await event(t, OLD);
    doomed.events.add(e1);
    doomed.deliveries.add(await delivery(e1, s, t, OLD, { status: 'succeeded', completedAgoMs: OLD }));
    doomed.deliveries.add(await delivery(e1, s, t, OLD, { status: 'dead', completedAgoMs: OLD }, 3));
    // Old cancelled: goes.
    const e2 = await event(t, OLD);
    doomed.events.add(e2);
    doomed.deliveries.add(await delivery(e2, s, t, OLD, { status: 'cancelled', completedAgoMs: OLD }, 0));
    // Old fanned-out event that matched nothing: goes.
    doomed.events.add(await event(t, OLD));
    // Pending deliveries of old events, created long ago — due, waiting for a retry, leased: all stay.
    for (const kind of ['due', 'waiting', 'leased'] as const) {
      const e = await event(t, OLD);
      kept.events.add(e);
      kept.deliveries.add(await delivery(e, s, t, OLD, { status: 'pending', kind }));
    }
    // Old event with an old finished delivery (goes) and, below, a recent one (a replay): it stays.
    const e6 = await event(t, OLD);
    kept.events.add(e6);
    doomed.deliveries.add(await delivery(e6, s, t, OLD, { status: 'dead', completedAgoMs: OLD }));
    // A delivery created long ago that finished only recently: stays.
    const e7 = await event(t, OLD);
    kept.events.add(e7);
    kept.deliveries.add(await delivery(e7, s, t, OLD, { status: 'dead', completedAgoMs: 29 * DAY }));
    // Old event still waiting for fan-out: stays.
    kept.events.add(await event(t, OLD, false));
    // Volume for several batches: 23 more old events with one old succeeded delivery each.
    const before = new Set(await ids('deliveries', t));
    const eventsBefore = new Set([...doomed.events, ...kept.events]);
    await oldFinished(t, s, 23, 1);
    for (const id of await ids('deliveries', t)) if (!before.has(id)) doomed.deliveries.add(Number(id));
    for (const id of await ids('events', t)) if (!eventsBefore.has(id)) doomed.events.add(id);
    // Then, inserted later as in real life: the recent replay of e6, and a recent event and delivery.
    kept.deliveries.add(await delivery(e6, s, t, DAY, { status: 'succeeded', completedAgoMs: DAY }));
    const e8 = await event(t, DAY);
    kept.events.add(e8);
    kept.deliveries.add(await delivery(e8, s, t, DAY, { status: 'succeeded', completedAgoMs: DAY }));
    expect(doomed.deliveries.size).toBe(27);
    expect(doomed.events.size).toBe(26);
    const doomedAttempts = 2 + 3 + 0 + 2 + 23;

    // Dry run: counts, deletes nothing; the same through a drizzle executor.
    const start = await totals();
    const dry = await cleanup(db.pool, { olderThanMs: RETENTION, dryRun: true });
    expect(dry).toMatchObject({ deliveries: 27, attempts: doomedAttempts, events: 26, batches: 0, dryRun: true });
    expect(Math.abs(dry.cutoff.getTime() - (Date.now() - RETENTION))).toBeLessThan(60_000);
    expect(await cleanup(drizzle(db.pool), { olderThanMs: RETENTION, dryRun: true })).toMatchObject({
      deliveries: 27,
      attempts: doomedAttempts,
      events: 26,
    });
    expect(await totals()).toEqual(start);
    // A dryRun that is not a boolean (a form's "true") is refused: it never runs for real.
    const refused = await cleanup(db.pool, { olderThanMs: RETENTION, dryRun: 'true' as never }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toMatchObject({ name: 'ValidationError', field: 'dryRun', rule: 'type' });
    expect(await totals()).toEqual(start);

    // The real run, 10 rows per statement.
    const steps: { phase: string; deliveries: number; events: number }[] = [];
    const result = await cleanup(db.pool, {
      olderThanMs: RETENTION,
      batchSize: 10,
      onBatch: (p) => {
        steps.push({ phase: p.phase, deliveries: p.deliveries, events: p.events });
      },
    });
    expect(result).toMatchObject({
      deliveries: 27,
      attempts: doomedAttempts,
      events: 26,
      complete: true,
      dryRun: false,
    });
    // Each statement reads the next 10 rows and deletes the old finished ones among them:
    // 33 deliveries → 6 + 10 + 10 + 1 deleted; 33 events → 4 + 10 + 10 + 2. The 4th window of
    // each reaches the recent rows (and the end of the table): the phase ends there.
    expect(result.batches).toBe(8);
    expect(steps.map((p) => p.phase)).toEqual([...Array(4).fill('deliveries'), ...Array(4).fill('events')]);
    const deltas = steps.map(
      (p, i) => p.deliveries + p.events - (i === 0 ? 0 : steps[i - 1]!.deliveries + steps[i - 1]!.events),
    );
    expect(deltas).toEqual([6, 10, 10, 1, 4, 10, 10, 2]);

    expect(new Set((await ids('deliveries', t)).map(Number))).toEqual(kept.deliveries);
    expect(new Set(await ids('events', t))).toEqual(kept.events);
    // Attempts went with their deliveries; the kept ones keep theirs.
    const { rows } = await db.pool.query(
      'SELECT DISTINCT delivery_id::int AS id FROM hookbox.delivery_attempts ORDER BY 1',
    );
    expect(rows.map((r) => r.id)).toEqual([...kept.deliveries].sort((a, b) => a - b));
    // The pending and leased rows are exactly as they were.
    const { rows: live } = await db.pool.query(
      `SELECT count(*)::int AS n FROM hookbox.deliveries WHERE tenant_id = $1 AND status = 'pending'`,
      [t],
    );
    expect(live[0].n).toBe(3);

    // Nothing left to do: a second run deletes nothing.
    expect(await cleanup(db.pool, { olderThanMs: RETENTION })).toMatchObject({
      deliveries: 0,
      events: 0,
      complete: true,
    });
  });

  it('reads only the old part of the tables: each phase stops at the first row well past the cutoff', async () => {
    const t = `t-${randomUUID().slice(0, 8)}`;
    const s = await sub(t);
    await oldFinished(t, s, 5);
    // Just inside the margin: still walked (and kept).
    const edge = await event(t, RETENTION - FRONTIER_MARGIN_MS / 2);
    await delivery(edge, s, t, RETENTION - FRONTIER_MARGIN_MS / 2, { status: 'succeeded', completedAgoMs: DAY });
    for (let i = 0; i < 40; i++) {
      const e = await event(t, DAY);
      await delivery(e, s, t, DAY, { status: 'succeeded', completedAgoMs: DAY }, 0);
    }
    const steps: string[] = [];
    const result = await cleanup(db.pool, {
      olderThanMs: RETENTION,
      batchSize: 3,
      onBatch: (p) => void steps.push(p.phase),
    });
    // 5 old + 1 edge row: two full windows; the third reaches a row created a day ago and ends
    // the phase. Without the frontier each phase would walk all 46 rows (16 statements each).
    expect(result).toMatchObject({ deliveries: 5, events: 5, complete: true });
    expect(steps).toEqual([...Array(3).fill('deliveries'), ...Array(3).fill('events')]);
    expect((await ids('deliveries', t)).length).toBe(41);
  });

  it('stops after maxBatches or when aborted, and the next run finishes the job', async () => {
    const t = `t-${randomUUID().slice(0, 8)}`;
    const s = await sub(t);
    await oldFinished(t, s, 12);
    const partial = await cleanup(db.pool, { olderThanMs: RETENTION, batchSize: 5, maxBatches: 2 });
    expect(partial).toMatchObject({ deliveries: 10, events: 0, batches: 2, complete: false });
    const abort = new AbortController();
    const aborted = await cleanup(db.pool, {
      olderThanMs: RETENTION,
      batchSize: 1,
      signal: abort.signal,
      onBatch: () => abort.abort(),
    });
    expect(aborted).toMatchObject({ deliveries: 1, batches: 1, complete: false });
    const rest = await cleanup(db.pool, { olderThanMs: RETENTION, batchSize: 5 });
    expect(rest).toMatchObject({ deliveries: 1, events: 12, complete: true });
    expect(await ids('deliveries', t)).toEqual([]);
    expect(await ids('events', t)).toEqual([]);
  });

  it('skips a row another transaction holds instead of waiting for it, and gets it next time', async () => {
    const t = `t-${randomUUID().slice(0, 8)}`;
    const s = await sub(t);
    await oldFinished(t, s, 3);
    const [held] = await ids('deliveries', t);
    const holder = new pg.Client({ connectionString: db.url, application_name: 'hookbox-test-holder' });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM hookbox.deliveries WHERE id = $1 FOR UPDATE', [held]);
      // Would block forever (until the test timeout) if cleanup waited for the lock.
      const first = await cleanup(db.pool, { olderThanMs: RETENTION, batchSize: 10 });
      expect(first).toMatchObject({ deliveries: 2, events: 2 });
      expect(await ids('deliveries', t)).toEqual([held]);
      await holder.query('COMMIT');
    } finally {
      await holder.end();
    }
    expect(await cleanup(db.pool, { olderThanMs: RETENTION })).toMatchObject({ deliveries: 1, events: 1 });
    expect(await ids('events', t)).toEqual([]);
  });

  it('validates its options before touching anything', async () => {
    for (const [input, field] of [
      [{ olderThanMs: -1 }, 'olderThanMs'],
      [{ olderThanMs: 1.5 }, 'olderThanMs'],
      [{ olderThanMs: DAY, batchSize: 0 }, 'batchSize'],
      [{ olderThanMs: DAY, batchSize: 10_001 }, 'batchSize'],
      [{ olderThanMs: DAY, maxBatches: 0 }, 'maxBatches'],
      [{ olderThanMs: DAY, olderThan: '30d' }, 'olderThan'],
    ] as const) {
      const err = await cleanup(db.pool, input as never).catch((e: unknown) => e);
      expect(err, JSON.stringify(input)).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).field).toBe(field);
    }
  });
});

describe('startPeriodicCleanup', () => {
  it('cleans old rows in the background, leaves live ones, logs a summary and stops', async () => {
    const t = `t-${randomUUID().slice(0, 8)}`;
    const s = await sub(t);
    await oldFinished(t, s, 7, 2);
    const live = await event(t, OLD);
    const pending = await delivery(live, s, t, OLD, { status: 'pending', kind: 'leased' });
    const pool = new pg.Pool({ connectionString: db.url, max: 2, application_name: 'hookbox-relay-test' });
    defer(() => pool.end());
    const logs = new LogBuffer();
    const phases: string[] = [];
    const periodic = startPeriodicCleanup({
      db: pool,
      logger: createLogger('info', logs),
      olderThanMs: RETENTION,
      intervalMs: 60_000,
      batchSize: 3,
      pauseMs: 5,
      onBatch: (p) => void phases.push(p.phase),
    });
    defer(() => periodic.stop());
    const line = await waitFor(() => logs.find('cleanup deleted old rows')[0], { what: 'the cleanup summary' });
    expect(line).toMatchObject({ deliveries: 7, attempts: 14, events: 7, part: 'cleanup' });
    // 8 deliveries (7 old, 1 pending) read 3 at a time: 3 statements; the same for the 8 events.
    expect(line.batches).toBe(6);
    expect(phases).toEqual([...Array(3).fill('deliveries'), ...Array(3).fill('events')]);
    await periodic.stop();
    expect((await ids('deliveries', t)).map(Number)).toEqual([pending]);
    expect(await ids('events', t)).toEqual([live]);
  });

  it('refuses settings that would fail every run', () => {
    const logger = createLogger('silent', new LogBuffer());
    const base = { db: db.pool, logger, olderThanMs: DAY, intervalMs: 1000 };
    expect(() => startPeriodicCleanup({ ...base, olderThanMs: -1 })).toThrow(/olderThanMs/);
    expect(() => startPeriodicCleanup({ ...base, intervalMs: 0 })).toThrow(/intervalMs/);
    expect(() => startPeriodicCleanup({ ...base, batchSize: 0 })).toThrow(/batchSize/);
    expect(() => startPeriodicCleanup({ ...base, busyFraction: 0 })).toThrow(/busyFraction/);
    expect(() => startPeriodicCleanup({ ...base, busyFraction: 1.5 })).toThrow(/busyFraction/);
    expect(() => startPeriodicCleanup({ ...base, pauseMs: -1 })).toThrow(/pauseMs/);
  });
});
