/**
 * `hookbox replay`, `cleanup`, `deliveries retry`, `events replay` and `send-test` as real
 * processes against a real PostgreSQL; send-test against a real receiver while a relay runs
 * in this process. Exit codes: 0 ok, 1 operational failure, 2 usage error.
 */
import { randomUUID } from 'node:crypto';
import { subscriptions } from '@hookbox/outbox';
import { afterEach, describe, expect, it } from 'vitest';
import { type CliRun, envWithout, runCli } from './harness/cli.js';
import { useTestDatabase } from './harness/db.js';
import { startReceiver } from './harness/receiver.js';
import { deliveries, startRelay, useCleanup } from './harness/relay.js';

const db = useTestDatabase();
const defer = useCleanup(afterEach);
const tenant = () => `t-${randomUUID().slice(0, 8)}`;
const DAY = 24 * 60 * 60 * 1000;

/** Runs the CLI with no DATABASE_URL or HOOKBOX_* setting of this environment. */
function hookbox(...args: string[]): Promise<CliRun> {
  return runCli(args, { env: envWithout(['DATABASE_URL'], { hookbox: true }) });
}

const withDb = (...args: string[]) => hookbox(...args, '--database-url', db.url);

async function sub(tenantId: string, url = 'http://127.0.0.1:9/x', eventTypes = ['*']): Promise<string> {
  return (await subscriptions.create(db.pool, { tenantId, url, eventTypes })).id;
}

/** An event fanned out `ageMs` ago with one delivery in `status`, finished then too. */
async function seed(tenantId: string, subscriptionId: string, status: string, ageMs = 60_000) {
  const { rows } = await db.pool.query(
    `WITH e AS (
       INSERT INTO hookbox.events (tenant_id, type, payload, created_at, fanned_out_at)
       VALUES ($1, 'message.new', '{"n":1}', now() - $4::float8 * interval '1 ms', now() - $4::float8 * interval '1 ms')
       RETURNING id)
     INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, status, attempts, created_at, completed_at,
                                     last_error)
     SELECT e.id, $2, $1, $3, 3, now() - $4::float8 * interval '1 ms',
            CASE WHEN $3 <> 'pending' THEN now() - $4::float8 * interval '1 ms' END,
            CASE WHEN $3 = 'dead' THEN 'http_status: HTTP 500' END
     FROM e RETURNING id, event_id`,
    [tenantId, subscriptionId, status, ageMs],
  );
  return { id: Number(rows[0].id), eventId: rows[0].event_id as string };
}

async function count(where: string, params: unknown[]): Promise<number> {
  const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM hookbox.deliveries WHERE ${where}`, params);
  return rows[0].n;
}

describe('hookbox replay', () => {
  it('dry-runs as JSON, replays, and replays nothing twice', async () => {
    const t = tenant();
    const s = await sub(t);
    await seed(t, s, 'dead');
    await seed(t, s, 'dead');
    await seed(t, s, 'succeeded');
    const other = tenant();
    await seed(other, await sub(other), 'dead');

    const dry = await withDb('replay', '--tenant', t, '--dry-run', '--json');
    expect(dry.code, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ matched: 2, replayed: 2, alreadyReplayed: 0, dryRun: true });
    expect(await count('tenant_id = $1', [t])).toBe(3);

    const real = await withDb('replay', '--tenant', t, '--since', '1h');
    expect(real.code, real.stderr).toBe(0);
    const [summary, header, line] = real.stdout.trim().split('\n');
    expect(summary).toBe('replayed 2 of 2 dead deliveries');
    expect(header).toMatch(/subscription\s+tenant\s+url\s+replayed/);
    expect(line).toContain(s);
    expect(line?.trim().endsWith(' 2')).toBe(true);
    expect(await count(`tenant_id = $1 AND status = 'pending' AND replay_of IS NOT NULL`, [t])).toBe(2);
    expect(await count(`tenant_id = $1 AND status = 'pending'`, [other])).toBe(0);

    const again = await withDb('replay', '--tenant', t);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim()).toBe('replayed 0 of 2 dead deliveries (skipped 2 already replayed)');
    expect(await count('tenant_id = $1', [t])).toBe(5);
  });

  it('exits 2 on usage errors, naming the flag', async () => {
    const none = await withDb('replay');
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--tenant');
    const both = await withDb('replay', '--tenant', 'a', '--all-tenants');
    expect(both.code).toBe(2);
    const since = await withDb('replay', '--tenant', 'a', '--since', 'yesterday');
    expect(since.code).toBe(2);
    expect(since.stderr).toContain('--since: must be a duration ago');
    const batch = await withDb('replay', '--tenant', 'a', '--batch-size', '0');
    expect(batch.code).toBe(2);
    expect(batch.stderr).toContain('--batch-size');
  });
});

describe('hookbox cleanup', () => {
  it('counts with --dry-run, deletes old finished rows, never pending ones', async () => {
    // From empty tables, rows inserted in time order (as cleanup's walk expects of real life).
    await db.pool.query('TRUNCATE hookbox.delivery_attempts, hookbox.deliveries, hookbox.events');
    const t = tenant();
    const s = await sub(t);
    const old = [
      await seed(t, s, 'succeeded', 40 * DAY),
      await seed(t, s, 'dead', 40 * DAY),
      await seed(t, s, 'cancelled', 40 * DAY),
    ];
    const pendingOld = await seed(t, s, 'pending', 40 * DAY);
    const recent = await seed(t, s, 'succeeded', DAY);

    const dry = await withDb('cleanup', '--older-than', '30d', '--dry-run', '--json');
    expect(dry.code, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ deliveries: 3, events: 3, dryRun: true });
    expect(await count('tenant_id = $1', [t])).toBe(5);

    const human = await withDb('cleanup', '--older-than', '30d', '--batch-size', '2');
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(
      /^deleted 3 deliveries \(0 attempts\) and 3 events finished before \S+ \(older than 30d\) in 6 batches/,
    );
    const left = await deliveries(db.pool, 'tenant_id = $1', [t]);
    expect(left.map((d) => d.id)).toEqual([pendingOld.id, recent.id]);
    expect(old.length).toBe(3);

    const bad = await withDb('cleanup', '--older-than', '30');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--older-than');
    const missing = await withDb('cleanup');
    expect(missing.code).toBe(2);
  });
});

describe('hookbox deliveries retry / events replay', () => {
  it('retries a dead delivery as a new one, and maps errors to exit codes', async () => {
    const t = tenant();
    const s = await sub(t);
    const dead = await seed(t, s, 'dead');
    const ok = await seed(t, s, 'succeeded');

    const first = await withDb('deliveries', 'retry', String(dead.id), '--tenant', t, '--json');
    expect(first.code, first.stderr).toBe(0);
    const out = JSON.parse(first.stdout);
    expect(out).toMatchObject({
      created: true,
      delivery: { replayOf: dead.id, status: 'pending', eventId: dead.eventId },
    });

    const second = await withDb('deliveries', 'retry', String(dead.id), '--tenant', t);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain(
      `delivery ${out.delivery.id} of the same event to the same endpoint is already pending`,
    );
    expect(await count('event_id = $1', [dead.eventId])).toBe(2);

    const foreign = await withDb('deliveries', 'retry', String(dead.id), '--tenant', tenant());
    expect(foreign.code).toBe(1);
    expect(foreign.stderr.trim()).toBe(`hookbox: delivery ${dead.id} not found`);
    const done = await withDb('deliveries', 'retry', String(ok.id), '--tenant', t);
    expect(done.code).toBe(2);
    expect(done.stderr).toContain('already succeeded');
  });

  it('replays an event to its current subscriptions', async () => {
    const t = tenant();
    const a = await sub(t, 'http://127.0.0.1:9/a', ['message.*']);
    await sub(t, 'http://127.0.0.1:9/b', ['order.*']);
    const { eventId } = await seed(t, a, 'succeeded');
    const res = await withDb('events', 'replay', eventId, '--tenant', t, '--json');
    expect(res.code, res.stderr).toBe(0);
    const out = JSON.parse(res.stdout);
    expect(out.created.map((d: { subscriptionId: string }) => d.subscriptionId)).toEqual([a]);
    expect(await count(`event_id = $1 AND status = 'pending'`, [eventId])).toBe(1);
  });
});

describe('hookbox send-test', () => {
  it('sends a test event to exactly one endpoint through a running relay and reports status and latency', async () => {
    const rx = await startReceiver();
    defer(() => rx.close());
    rx.on('/broken', { status: 500 });
    const t = tenant();
    const target = await sub(t, rx.url('/target'));
    await sub(t, rx.url('/bystander'));
    const broken = await sub(t, rx.url('/broken'));
    const relay = startRelay(db.url, { retry: { scheduleMs: [60_000] } });
    defer(() => relay.stop());

    const ok = await withDb('send-test', '--subscription', target, '--tenant', t, '--timeout', '20s');
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(
      /^succeeded: HTTP 200 in \d+ms; received \d+ms after enqueue \(delivery \d+, event [0-9a-f-]{36}\)/,
    );
    const got = rx.requests();
    expect(got.map((r) => r.path)).toEqual(['/target']);
    expect(JSON.parse(got[0]!.body)).toMatchObject({ type: 'hookbox.ping', data: { test: true } });

    const failed = await withDb(
      'send-test',
      '--subscription',
      broken,
      '--tenant',
      t,
      '--type',
      'message.new',
      '--json',
    );
    expect(failed.code).toBe(1);
    const out = JSON.parse(failed.stdout);
    expect(out).toMatchObject({ result: 'failed', status: 'pending', httpStatus: 500, errorClass: 'http_status' });
    expect(failed.stderr).toContain('test delivery failed; the relay retries it on its schedule');
    expect(rx.requests('/broken').map((r) => JSON.parse(r.body).type)).toEqual(['message.new']);
    expect(rx.requests('/bystander')).toEqual([]);
  });

  it('gives up after --timeout when no relay runs (exit 1), and exits 2 on a bad flag', async () => {
    const t = tenant();
    const s = await sub(t);
    const res = await withDb('send-test', '--subscription', s, '--tenant', t, '--timeout', '300ms');
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(
      /no outcome within 300ms \(delivery \d+, event .* is still pending\): is a relay running/,
    );
    const bad = await withDb('send-test', '--subscription', s, '--tenant', t, '--timeout', 'soon');
    expect(bad.code).toBe(2);
    const foreign = await withDb('send-test', '--subscription', s, '--tenant', tenant());
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toContain('not found');
  });
});
