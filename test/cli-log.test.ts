/**
 * `hookbox deliveries|events|stats` as real processes against a real PostgreSQL: JSON
 * output for scripts, human tables, pagination through --cursor, tenant scoping, and the
 * exit codes (0 ok, 1 not found, 2 usage or validation).
 */
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { type CliRun, runCli } from './harness/cli.js';
import { useTestDatabase } from './harness/db.js';

const db = useTestDatabase();
const HOUR = 3_600_000;
const ago = (ms: number) => new Date(Date.now() - ms);

/** Runs `hookbox <args> --database-url <this file's db>` from the repository root. */
function hookbox(...args: string[]): Promise<CliRun> {
  return runCli([...args, '--database-url', db.url], {
    env: { ...process.env, DATABASE_URL: '', NO_COLOR: '1' },
    timeoutMs: 30_000,
  });
}

const json = <T = Record<string, unknown>>(r: CliRun): T => {
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as T;
};

// One fixture for the file: tenant A with two subscriptions, events and deliveries with
// attempts (one old), tenant B with one delivery that A must never see.
const A = `cli-a-${randomUUID().slice(0, 8)}`;
const B = `cli-b-${randomUUID().slice(0, 8)}`;
const fx = { subOk: '', subDown: '', events: [] as string[], deliveries: [] as number[], other: 0, otherEvent: '' };

async function q<T = Record<string, unknown>>(text: string, values: unknown[]): Promise<T> {
  return (await db.pool.query(text, values)).rows[0] as T;
}

beforeAll(async () => {
  const sub = (t: string, url: string) =>
    q<{ id: string }>(
      `INSERT INTO hookbox.subscriptions (tenant_id, url, event_types, secret) VALUES ($1, $2, '{*}', 'whsec_x') RETURNING id`,
      [t, url],
    ).then((r) => r.id);
  const event = (t: string, type: string, createdAt: Date) =>
    q<{ id: string }>(
      `INSERT INTO hookbox.events (tenant_id, type, payload, created_at, fanned_out_at)
       VALUES ($1, $2, $3::jsonb, $4, $4) RETURNING id`,
      [t, type, JSON.stringify({ type, n: fx.events.length }), createdAt],
    ).then((r) => r.id);
  const delivery = (t: string, e: string, s: string, status: string, createdAt: Date, lastStatus: number | null) =>
    q<{ id: string }>(
      `INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, status, attempts, created_at, completed_at, last_status)
       VALUES ($1, $2, $3, $4, 1, $5, CASE WHEN $4 <> 'pending' THEN $5::timestamptz END, $6) RETURNING id`,
      [e, s, t, status, createdAt, lastStatus],
    ).then((r) => Number(r.id));
  const attempt = (d: number, n: number, ms: number, code: number, startedAt: Date) =>
    db.pool.query(
      `INSERT INTO hookbox.delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error_class, error_message, response_excerpt)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [d, n, startedAt, ms, code, code < 300 ? null : 'http_status', code < 300 ? null : `HTTP ${code}`, `body ${n}`],
    );

  fx.subOk = await sub(A, 'https://ok.example/h');
  fx.subDown = await sub(A, 'https://down.example/h');
  // Oldest first: one 48 h old, then four recent.
  const plan = [
    ['message.new', 48 * HOUR, 'succeeded', fx.subOk, 200],
    ['message.new', 4 * HOUR, 'dead', fx.subDown, 500],
    ['contact.created', 3 * HOUR, 'succeeded', fx.subOk, 200],
    ['message.read', 2 * HOUR, 'pending', fx.subDown, 503],
    ['message.read', 1 * HOUR, 'succeeded', fx.subOk, 200],
  ] as const;
  for (const [type, age, status, s, code] of plan) {
    const e = await event(A, type, ago(age));
    fx.events.push(e);
    const d = await delivery(A, e, s, status, ago(age), code);
    fx.deliveries.push(d);
    await attempt(d, 1, code === 200 ? 40 : 900, code, ago(age - 1000));
  }
  // The dead one took two attempts.
  await attempt(fx.deliveries[1]!, 2, 1100, 500, ago(4 * HOUR - 5000));
  const subB = await sub(B, 'https://b.example/h');
  fx.otherEvent = await event(B, 'message.new', new Date());
  fx.other = await delivery(B, fx.otherEvent, subB, 'succeeded', new Date(), 200);
});

interface DeliveryJson {
  id: number;
  tenantId: string;
  status: string;
  eventType: string;
  subscriptionId: string;
}
interface PageJson<T> {
  items: T[];
  nextCursor: string | null;
}

describe('hookbox deliveries', { timeout: 60_000 }, () => {
  it("list --json prints the tenant's deliveries newest first, and --cursor walks the pages", async () => {
    const all = json<PageJson<DeliveryJson>>(await hookbox('deliveries', 'list', '--tenant', A, '--json'));
    expect(all.items.map((d) => d.id)).toEqual([...fx.deliveries].reverse());
    expect(all.items.every((d) => d.tenantId === A)).toBe(true);
    expect(all.nextCursor).toBeNull();

    const p1 = json<PageJson<DeliveryJson>>(
      await hookbox('deliveries', 'list', '--tenant', A, '--limit', '3', '--json'),
    );
    expect(p1.items).toHaveLength(3);
    expect(p1.nextCursor).toEqual(expect.any(String));
    const p2 = json<PageJson<DeliveryJson>>(
      await hookbox('deliveries', 'list', '--tenant', A, '--limit', '3', '--cursor', p1.nextCursor!, '--json'),
    );
    expect([...p1.items, ...p2.items].map((d) => d.id)).toEqual(all.items.map((d) => d.id));
    expect(p2.nextCursor).toBeNull();
  });

  it('list filters by status, event type, subscription and --since as a duration or an ISO time', async () => {
    const [dead, sinceDuration, sinceIso, bySub, byType] = await Promise.all([
      hookbox('deliveries', 'list', '--tenant', A, '--status', 'dead,pending', '--json'),
      hookbox('deliveries', 'list', '--tenant', A, '--since', '24h', '--json'),
      hookbox('deliveries', 'list', '--tenant', A, '--since', ago(2.5 * HOUR).toISOString(), '--json'),
      hookbox('deliveries', 'list', '--tenant', A, '--subscription', fx.subDown, '--json'),
      hookbox('deliveries', 'list', '--tenant', A, '--event-type', 'message.*', '--until', '90m', '--json'),
    ]);
    const ids = (r: CliRun) => json<PageJson<DeliveryJson>>(r).items.map((d) => d.id);
    const d = fx.deliveries;
    expect(ids(dead)).toEqual([d[3], d[1]]);
    expect(ids(sinceDuration)).toEqual([d[4], d[3], d[2], d[1]]);
    expect(ids(sinceIso)).toEqual([d[4], d[3]]);
    expect(ids(bySub)).toEqual([d[3], d[1]]);
    expect(ids(byType)).toEqual([d[3], d[1], d[0]]);
  });

  it('list needs --tenant unless --all-tenants is explicit', async () => {
    const [none, both, all, table] = await Promise.all([
      hookbox('deliveries', 'list', '--json'),
      hookbox('deliveries', 'list', '--tenant', A, '--all-tenants'),
      hookbox('deliveries', 'list', '--all-tenants', '--json'),
      hookbox('deliveries', 'list', '--all-tenants'),
    ]);
    expect(none.code).toBe(2);
    expect(none.stdout).toBe('');
    expect(none.stderr).toMatch(/--tenant: required \(or --all-tenants/);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--tenant and --all-tenants/);
    const ids = json<PageJson<DeliveryJson>>(all).items.map((d) => d.id);
    expect(ids).toEqual(expect.arrayContaining([...fx.deliveries, fx.other]));
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+CREATED\s+STATUS\s+TRIES\s+LAST\s+EVENT TYPE\s+TENANT\s+URL/);
    expect(table.stdout).toContain(B);
  });

  it('list refuses bad flags with exit 2 and a message naming the flag', async () => {
    const runs = await Promise.all([
      hookbox('deliveries', 'list', '--tenant', A, '--status', 'failed'),
      hookbox('deliveries', 'list', '--tenant', A, '--limit', '0'),
      hookbox('deliveries', 'list', '--tenant', A, '--cursor', 'nope'),
      hookbox('deliveries', 'list', '--tenant', A, '--since', 'yesterday'),
      hookbox('deliveries', 'list', '--tenant', A, '--since', '1h', '--until', '2h'),
      hookbox('deliveries', 'list', '--tenant', A, '--subscription', 'sub-1'),
    ]);
    const flags = ['--status', '--limit', '--cursor', '--since', '--since', '--subscription'];
    runs.forEach((r, i) => {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(`hookbox: ${flags[i]}`);
    });
    expect(runs[0]!.stderr).toMatch(/pending, succeeded, dead, cancelled/);
  });

  it('list prints a table for humans, with the next cursor', async () => {
    const r = await hookbox('deliveries', 'list', '--tenant', A, '--limit', '2');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+CREATED\s+STATUS\s+TRIES\s+LAST\s+EVENT TYPE\s+URL$/);
    expect(lines[1]).toMatch(
      new RegExp(`^${fx.deliveries[4]}\\s.*succeeded.*200\\s+message\\.read\\s+https://ok\\.example/h$`),
    );
    expect(lines[2]).toMatch(new RegExp(`^${fx.deliveries[3]}\\s.*pending.*503`));
    expect(lines.at(-1)).toMatch(/^more: --cursor \S+$/);
  });

  it('show prints a delivery with its attempts; another tenant gets exit 1', async () => {
    const id = String(fx.deliveries[1]);
    const [asJson, asText, otherTenant, missing, badId, noTenant] = await Promise.all([
      hookbox('deliveries', 'show', id, '--tenant', A, '--json'),
      hookbox('deliveries', 'show', id, '--tenant', A),
      hookbox('deliveries', 'show', id, '--tenant', B, '--json'),
      hookbox('deliveries', 'show', '999999999', '--tenant', A),
      hookbox('deliveries', 'show', 'abc', '--tenant', A),
      hookbox('deliveries', 'show', id),
    ]);
    const detail = json<{
      delivery: DeliveryJson;
      attempts: { attempt: number; statusCode: number; durationMs: number }[];
    }>(asJson);
    expect(detail.delivery).toMatchObject({ id: Number(id), status: 'dead', subscriptionId: fx.subDown });
    expect(detail.attempts.map((a) => [a.attempt, a.statusCode, a.durationMs])).toEqual([
      [1, 500, 900],
      [2, 500, 1100],
    ]);
    expect(asText.code).toBe(0);
    expect(asText.stdout).toMatch(/^status\s+dead$/m);
    expect(asText.stdout).toMatch(/^#\s+STARTED\s+DURATION\s+HTTP\s+ERROR\s+RESPONSE$/m);
    expect(asText.stdout).toMatch(/^2\s+\S+\s+1\.10s\s+500\s+http_status: HTTP 500\s+body 2$/m);
    for (const r of [otherTenant, missing]) {
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^hookbox: delivery \S+ not found\n$/);
    }
    // A malformed id is a usage error (#11.7), refused before connecting.
    expect(badId.code).toBe(2);
    expect(badId.stderr).toMatch(/^hookbox: ID: must be a delivery id/);
    expect(noTenant.code).toBe(2);
    expect(noTenant.stderr).toContain('--tenant');
  });

  it('--help shows examples and exits 0', async () => {
    const r = await hookbox('deliveries', 'list', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('--all-tenants');
  });
});

describe('hookbox events', { timeout: 60_000 }, () => {
  it('list --json shows the fan-out; show --json the payload and deliveries', async () => {
    const [list, show, other, typeFilter] = await Promise.all([
      hookbox('events', 'list', '--tenant', A, '--json'),
      hookbox('events', 'show', fx.events[1]!, '--tenant', A, '--json'),
      hookbox('events', 'show', fx.otherEvent, '--tenant', A, '--json'),
      hookbox('events', 'list', '--tenant', A, '--type', 'message.read', '--json'),
    ]);
    const page = json<PageJson<{ id: string; deliveries: Record<string, number> }>>(list);
    expect(page.items.map((e) => e.id)).toEqual([...fx.events].reverse());
    expect(page.items[3]!.deliveries).toEqual({ total: 1, pending: 0, succeeded: 0, dead: 1, cancelled: 0 });
    const detail = json<{ event: { id: string; payload: unknown }; deliveries: DeliveryJson[] }>(show);
    expect(detail.event.payload).toEqual({ type: 'message.new', n: 1 });
    expect(detail.deliveries.map((d) => d.id)).toEqual([fx.deliveries[1]]);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('not found');
    expect(json<PageJson<{ id: string }>>(typeFilter).items.map((e) => e.id)).toEqual([fx.events[4], fx.events[3]]);
  });

  it('list and show print text for humans', async () => {
    const [list, show] = await Promise.all([
      hookbox('events', 'list', '--tenant', A, '--limit', '1'),
      hookbox('events', 'show', fx.events[1]!, '--tenant', A),
    ]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^ID\s+CREATED\s+TYPE\s+DELIVERIES$/m);
    expect(list.stdout).toMatch(new RegExp(`^${fx.events[4]}\\s+\\S+\\s+message\\.read\\s+1: 1 succeeded$`, 'm'));
    expect(list.stdout).toMatch(/^more: --cursor evt_/m);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^deliveries\s+1: 1 dead$/m);
    expect(show.stdout).toContain('"n": 1');
  });
});

describe('hookbox stats', { timeout: 60_000 }, () => {
  it('--json gives per-subscription numbers and usage for the tenant', async () => {
    const [day, ever] = await Promise.all([
      hookbox('stats', '--tenant', A, '--json'),
      hookbox('stats', '--tenant', A, '--since', '30d', '--json'),
    ]);
    type S = {
      subscriptionId: string;
      attempts: number;
      successRate: number;
      p50Ms: number;
      dead: number;
      pending: number;
    };
    const d = json<{ subscriptions: S[]; tenants: { tenantId: string; events: number; deliveries: number }[] }>(day);
    const down = d.subscriptions.find((s) => s.subscriptionId === fx.subDown)!;
    const ok = d.subscriptions.find((s) => s.subscriptionId === fx.subOk)!;
    // Default window 24h: the 48 h old attempt of subOk is out.
    expect(ok).toMatchObject({ attempts: 2, successRate: 1, p50Ms: 40, dead: 0 });
    expect(down).toMatchObject({ attempts: 3, successRate: 0, p50Ms: 900, dead: 1, pending: 1 });
    expect(d.tenants).toEqual([expect.objectContaining({ tenantId: A, events: 4, deliveries: 4 })]);
    const e = json<{ subscriptions: S[] }>(ever);
    expect(e.subscriptions.find((s) => s.subscriptionId === fx.subOk)!.attempts).toBe(3);
  });

  it('prints tables for humans and refuses a missing scope or a bad --since', async () => {
    const [table, none, bad] = await Promise.all([
      hookbox('stats', '--tenant', A),
      hookbox('stats'),
      hookbox('stats', '--tenant', A, '--since', 'soon'),
    ]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^SUBSCRIPTION\s+ATTEMPTS\s+SUCCESS\s+P50\s+P95\s+DEAD\s+PENDING/m);
    expect(table.stdout).toMatch(new RegExp(`^${fx.subDown}\\s+3\\s+0\\.0%\\s+900ms\\s+`, 'm'));
    expect(table.stdout).toMatch(new RegExp(`^${A}\\s+4\\s+4\\s+2\\s+1\\s+1\\s+0\\s+5$`, 'm'));
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--tenant: required');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--since');
  });
});
