/**
 * The delivery log against a real PostgreSQL: filters, newest-first keyset pagination that
 * walks every row exactly once even while rows are written between pages, tenant scoping
 * of every function, attempts in order, validation naming field and rule, and what the real
 * relay writes read back through the log.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { NotFoundError, subscriptions, ValidationError } from '@hookbox/outbox';
import { deliveryLog } from '@hookbox/outbox/admin';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../apps/relay/src/logger.js';
import { defaultRetryPolicy } from '../apps/relay/src/policy/retry.js';
import { createRelay } from '../apps/relay/src/relay/relay.js';
import { useTestDatabase } from './harness/db.js';

const db = useTestDatabase();

let seq = 0;
const newTenant = () => `log-${++seq}-${randomUUID().slice(0, 8)}`;
const HOUR = 3_600_000;
const ago = (ms: number) => new Date(Date.now() - ms);

// Fixtures are plain SQL, independent of the code under test.
async function addSubscription(tenantId: string, url = 'https://example.com/hooks'): Promise<string> {
  const { rows } = await db.pool.query(
    `INSERT INTO hookbox.subscriptions (tenant_id, url, event_types, secret) VALUES ($1, $2, '{*}', $3) RETURNING id`,
    [tenantId, url, `whsec_${Buffer.alloc(32, 7).toString('base64')}`],
  );
  return rows[0].id;
}

async function addEvent(
  tenantId: string,
  type = 'message.new',
  { payload = { n: 1 } as unknown, createdAt = new Date(), fannedOut = true } = {},
): Promise<string> {
  const { rows } = await db.pool.query(
    `INSERT INTO hookbox.events (tenant_id, type, payload, created_at, fanned_out_at)
     VALUES ($1, $2, $3::jsonb, $4, CASE WHEN $5 THEN $4::timestamptz END) RETURNING id`,
    [tenantId, type, JSON.stringify(payload), createdAt, fannedOut],
  );
  return rows[0].id;
}

async function addDelivery(
  tenantId: string,
  eventId: string,
  subscriptionId: string,
  { status = 'succeeded', createdAt = new Date(), attempts = 1 } = {},
): Promise<number> {
  const { rows } = await db.pool.query(
    `INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, status, attempts, created_at, completed_at)
     VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $4 <> 'pending' THEN $6::timestamptz END) RETURNING id`,
    [eventId, subscriptionId, tenantId, status, attempts, createdAt],
  );
  return Number(rows[0].id);
}

/** A tenant with one subscription and `n` deliveries of `message.new`, oldest first. */
async function tenantWithDeliveries(n: number): Promise<{ tenantId: string; subId: string; ids: number[] }> {
  const tenantId = newTenant();
  const subId = await addSubscription(tenantId);
  const ids: number[] = [];
  for (let i = 0; i < n; i++) ids.push(await addDelivery(tenantId, await addEvent(tenantId), subId));
  return { tenantId, subId, ids };
}

async function expectValidation(p: Promise<unknown>, field: string, rule: string): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ValidationError);
  expect(err).toMatchObject({ code: 'HOOKBOX_INVALID_INPUT', field, rule });
}

async function expectNotFound(p: Promise<unknown>): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(NotFoundError);
  expect(err).toMatchObject({ code: 'HOOKBOX_NOT_FOUND' });
}

describe('listDeliveries', () => {
  it("lists only the tenant's deliveries, newest first, with event type and url", async () => {
    const a = await tenantWithDeliveries(3);
    const b = await tenantWithDeliveries(2);
    const page = await deliveryLog.listDeliveries(db.pool, { tenantId: a.tenantId });
    expect(page.items.map((d) => d.id)).toEqual([...a.ids].reverse());
    expect(page.nextCursor).toBeNull();
    const first = page.items[0]!;
    expect(first).toMatchObject({
      tenantId: a.tenantId,
      subscriptionId: a.subId,
      eventType: 'message.new',
      url: 'https://example.com/hooks',
      status: 'succeeded',
      attempts: 1,
      lastStatus: null,
      replayOf: null,
    });
    expect(first.createdAt).toBeInstanceOf(Date);
    expect(first.completedAt).toBeInstanceOf(Date);
    const all = await deliveryLog.listDeliveries(db.pool, { allTenants: true, limit: 500 });
    const ids = all.items.map((d) => d.id);
    expect(ids).toEqual(expect.arrayContaining([...a.ids, ...b.ids]));
    expect(ids).toEqual([...ids].sort((x, y) => y - x));
  });

  it('filters by subscription, event type (exact or pattern), status and time range', async () => {
    const t = newTenant();
    const s1 = await addSubscription(t, 'https://one.example/h');
    const s2 = await addSubscription(t, 'https://two.example/h');
    const msgOld = await addEvent(t, 'message.new', { createdAt: ago(48 * HOUR) });
    const msgRead = await addEvent(t, 'message.read');
    const contact = await addEvent(t, 'contact.created');
    const d1 = await addDelivery(t, msgOld, s1, { status: 'dead', createdAt: ago(48 * HOUR) });
    const d2 = await addDelivery(t, msgRead, s1, { status: 'pending', createdAt: ago(2 * HOUR) });
    const d3 = await addDelivery(t, contact, s2, { status: 'succeeded', createdAt: ago(HOUR / 2) });
    const d4 = await addDelivery(t, msgRead, s2, { status: 'dead', createdAt: ago(HOUR / 4) });
    const ids = async (extra: Record<string, unknown>) =>
      (await deliveryLog.listDeliveries(db.pool, { tenantId: t, ...extra })).items.map((d) => d.id);

    expect(await ids({})).toEqual([d4, d3, d2, d1]);
    expect(await ids({ subscriptionId: s1 })).toEqual([d2, d1]);
    expect(await ids({ subscriptionId: s2.toUpperCase() })).toEqual([d4, d3]);
    expect(await ids({ subscriptionId: randomUUID() })).toEqual([]);
    expect(await ids({ eventType: 'message.read' })).toEqual([d4, d2]);
    expect(await ids({ eventType: 'message.*' })).toEqual([d4, d2, d1]);
    expect(await ids({ eventType: 'contact.*' })).toEqual([d3]);
    expect(await ids({ eventType: '*' })).toEqual([d4, d3, d2, d1]);
    expect(await ids({ eventType: 'message' })).toEqual([]);
    expect(await ids({ status: 'dead' })).toEqual([d4, d1]);
    expect(await ids({ status: ['pending', 'succeeded'] })).toEqual([d3, d2]);
    expect(await ids({ since: ago(24 * HOUR) })).toEqual([d4, d3, d2]);
    expect(await ids({ since: ago(HOUR).toISOString(), until: ago(HOUR / 3) })).toEqual([d3]);
    expect(await ids({ until: ago(24 * HOUR) })).toEqual([d1]);
    expect(await ids({ status: 'dead', eventType: 'message.*', since: ago(24 * HOUR), subscriptionId: s2 })).toEqual([
      d4,
    ]);
  });

  it('keyset pagination walks every row exactly once, newest first, while rows are inserted between pages', async () => {
    const { tenantId, subId, ids } = await tenantWithDeliveries(23);
    const seen: number[] = [];
    const inserted: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Awaited<ReturnType<typeof deliveryLog.listDeliveries>> = await deliveryLog.listDeliveries(db.pool, {
        tenantId,
        limit: 5,
        cursor,
      });
      expect(page.items.length).toBeLessThanOrEqual(5);
      seen.push(...page.items.map((d) => d.id));
      cursor = page.nextCursor;
      pages++;
      // Newer rows arrive while the operator pages: an OFFSET walk would repeat rows now.
      inserted.push(await addDelivery(tenantId, await addEvent(tenantId), subId));
      inserted.push(await addDelivery(tenantId, await addEvent(tenantId), subId));
    } while (cursor !== null);
    expect(pages).toBe(5);
    expect(seen).toEqual([...ids].reverse());
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.some((id) => inserted.includes(id))).toBe(false);
    // A fresh walk starts with the newest rows, the ones written during the first walk.
    const fresh = await deliveryLog.listDeliveries(db.pool, { tenantId, limit: inserted.length });
    expect(fresh.items.map((d) => d.id)).toEqual([...inserted].reverse());
  });

  it('keyset pagination combines with filters and ends with a null cursor on an exact last page', async () => {
    const t = newTenant();
    const sub = await addSubscription(t);
    const dead: number[] = [];
    for (let i = 0; i < 12; i++) {
      const id = await addDelivery(t, await addEvent(t), sub, { status: i % 2 === 0 ? 'dead' : 'succeeded' });
      if (i % 2 === 0) dead.push(id);
    }
    const p1 = await deliveryLog.listDeliveries(db.pool, { tenantId: t, status: 'dead', limit: 3 });
    expect(p1.nextCursor).toMatch(/^dlv_\d+$/);
    const p2 = await deliveryLog.listDeliveries(db.pool, {
      tenantId: t,
      status: 'dead',
      limit: 3,
      cursor: p1.nextCursor,
    });
    expect(p2.nextCursor).toBeNull();
    expect([...p1.items, ...p2.items].map((d) => d.id)).toEqual([...dead].reverse());
  });

  it('works the same on a drizzle executor (timestamps and bigint ids read alike)', async () => {
    const { tenantId, ids } = await tenantWithDeliveries(2);
    const viaPg = await deliveryLog.listDeliveries(db.pool, { tenantId });
    const viaDrizzle = await deliveryLog.listDeliveries(drizzle(db.pool), { tenantId });
    expect(viaDrizzle).toEqual(viaPg);
    expect(viaDrizzle.items.map((d) => d.id)).toEqual([...ids].reverse());
    const detail = await deliveryLog.getDelivery(drizzle(db.pool), { tenantId, id: ids[0]! });
    expect(detail.delivery.createdAt.getTime()).toBe(viaPg.items[1]!.createdAt.getTime());
  });
});

describe('getDelivery', () => {
  it('returns the delivery with every attempt in order', async () => {
    const t = newTenant();
    const sub = await addSubscription(t);
    const ev = await addEvent(t);
    const id = await addDelivery(t, ev, sub, { status: 'dead', attempts: 3 });
    const started = ago(HOUR);
    // Inserted out of order: the log must come back by attempt number.
    for (const [n, code, cls, msg, excerpt, ms] of [
      [3, null, 'timeout', 'no response in 15s', null, 15000],
      [1, 500, 'http_status', 'HTTP 500', '{"error":"boom"}', 120],
      [2, 503, 'http_status', 'HTTP 503', 'unavailable', 80],
    ] as const) {
      await db.pool.query(
        `INSERT INTO hookbox.delivery_attempts
           (delivery_id, attempt, started_at, duration_ms, status_code, error_class, error_message, response_excerpt)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [id, n, new Date(started.getTime() + n * 1000), ms, code, cls, msg, excerpt],
      );
    }
    const detail = await deliveryLog.getDelivery(db.pool, { tenantId: t, id });
    expect(detail.delivery).toMatchObject({ id, eventId: ev, subscriptionId: sub, status: 'dead', attempts: 3 });
    expect(detail.attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
    expect(detail.attempts[0]).toMatchObject({
      statusCode: 500,
      errorClass: 'http_status',
      errorMessage: 'HTTP 500',
      responseExcerpt: '{"error":"boom"}',
      durationMs: 120,
    });
    expect(detail.attempts[0]!.startedAt.getTime()).toBe(started.getTime() + 1000);
    expect(detail.attempts[2]).toMatchObject({ statusCode: null, errorClass: 'timeout', durationMs: 15000 });
    // A string id works the same; a delivery without attempts has an empty log.
    expect((await deliveryLog.getDelivery(db.pool, { tenantId: t, id: String(id) })).attempts).toHaveLength(3);
    const fresh = await addDelivery(t, ev, sub, { status: 'pending', attempts: 0 });
    expect((await deliveryLog.getDelivery(db.pool, { tenantId: t, id: fresh })).attempts).toEqual([]);
  });

  it("refuses another tenant's delivery and ids that cannot exist as not found, never a driver error", async () => {
    const { tenantId, ids } = await tenantWithDeliveries(1);
    const other = newTenant();
    const id = ids[0]!;
    await expectNotFound(deliveryLog.getDelivery(db.pool, { tenantId: other, id }));
    for (const bad of [
      'abc',
      '1; select 1',
      '-1',
      '0',
      '1.5',
      '99999999999999999999',
      '9223372036854775808',
      '',
      -1,
      1.5,
    ]) {
      await expectNotFound(deliveryLog.getDelivery(db.pool, { tenantId, id: bad }));
    }
    await expectNotFound(deliveryLog.getDelivery(db.pool, { tenantId, id: '9223372036854775807' }));
    await expectNotFound(deliveryLog.getDelivery(db.pool, { tenantId, id: id + 10_000 }));
    // The owner still sees it.
    expect((await deliveryLog.getDelivery(db.pool, { tenantId, id })).delivery.id).toBe(id);
  });
});

describe('listEvents and getEvent', () => {
  it('lists events newest first with their fan-out counted by status', async () => {
    const t = newTenant();
    const s1 = await addSubscription(t);
    const s2 = await addSubscription(t);
    const s3 = await addSubscription(t);
    const e1 = await addEvent(t, 'message.new');
    await addDelivery(t, e1, s1, { status: 'succeeded' });
    await addDelivery(t, e1, s2, { status: 'dead' });
    await addDelivery(t, e1, s3, { status: 'pending' });
    await addDelivery(t, e1, s2, { status: 'cancelled' });
    const e2 = await addEvent(t, 'contact.created'); // fanned out, matched nothing
    const e3 = await addEvent(t, 'message.read', { fannedOut: false });
    await addEvent(newTenant(), 'message.new');

    const page = await deliveryLog.listEvents(db.pool, { tenantId: t });
    expect(page.items.map((e) => e.id)).toEqual([e3, e2, e1]);
    expect(page.items[2]).toMatchObject({
      type: 'message.new',
      tenantId: t,
      deliveries: { total: 4, pending: 1, succeeded: 1, dead: 1, cancelled: 1 },
    });
    expect(page.items[2]!.fannedOutAt).toBeInstanceOf(Date);
    expect(page.items[1]!.deliveries).toEqual({ total: 0, pending: 0, succeeded: 0, dead: 0, cancelled: 0 });
    expect(page.items[0]!.fannedOutAt).toBeNull();
    expect(page.items.some((e) => 'payload' in e)).toBe(false);

    const messages = await deliveryLog.listEvents(db.pool, { tenantId: t, type: 'message.*' });
    expect(messages.items.map((e) => e.id)).toEqual([e3, e1]);
    const exact = await deliveryLog.listEvents(db.pool, { tenantId: t, type: 'contact.created' });
    expect(exact.items.map((e) => e.id)).toEqual([e2]);
  });

  it('pages events by keyset and filters by time', async () => {
    const t = newTenant();
    const ids: string[] = [];
    // uuidv7 ids follow time; a millisecond apart keeps them strictly ordered.
    for (let i = 0; i < 7; i++) {
      ids.push(await addEvent(t, 'message.new', { createdAt: ago((10 - i) * HOUR) }));
      await new Promise((r) => setTimeout(r, 2));
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Awaited<ReturnType<typeof deliveryLog.listEvents>> = await deliveryLog.listEvents(db.pool, {
        tenantId: t,
        limit: 3,
        cursor,
      });
      seen.push(...page.items.map((e) => e.id));
      cursor = page.nextCursor;
      if (cursor) expect(cursor).toMatch(/^evt_[0-9a-f-]{36}$/);
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
    const recent = await deliveryLog.listEvents(db.pool, { tenantId: t, since: ago(5.5 * HOUR) });
    expect(recent.items.map((e) => e.id)).toEqual(ids.slice(5).reverse());
    const window = await deliveryLog.listEvents(db.pool, {
      tenantId: t,
      since: ago(9.5 * HOUR),
      until: ago(7.5 * HOUR),
    });
    expect(window.items.map((e) => e.id)).toEqual([ids[2], ids[1]]);
  });

  it('shows an event with its payload and every delivery; other tenants and bad ids are not found', async () => {
    const t = newTenant();
    const s1 = await addSubscription(t, 'https://a.example/h');
    const s2 = await addSubscription(t, 'https://b.example/h');
    const payload = { text: 'héllo', nested: { n: [1, 2, 3] }, big: 12345678901234 };
    const ev = await addEvent(t, 'message.new', { payload });
    const d1 = await addDelivery(t, ev, s1, { status: 'succeeded' });
    const d2 = await addDelivery(t, ev, s2, { status: 'dead' });
    const detail = await deliveryLog.getEvent(db.pool, { tenantId: t, id: ev.toUpperCase() });
    expect(detail.event).toMatchObject({ id: ev, type: 'message.new', payload });
    expect(detail.event.deliveries).toMatchObject({ total: 2, succeeded: 1, dead: 1 });
    expect(detail.deliveries.map((d) => [d.id, d.url, d.status])).toEqual([
      [d1, 'https://a.example/h', 'succeeded'],
      [d2, 'https://b.example/h', 'dead'],
    ]);
    await expectNotFound(deliveryLog.getEvent(db.pool, { tenantId: newTenant(), id: ev }));
    await expectNotFound(deliveryLog.getEvent(db.pool, { tenantId: t, id: randomUUID() }));
    for (const bad of ['not-a-uuid', `${ev}x`, '', "'; drop table x; --"]) {
      await expectNotFound(deliveryLog.getEvent(db.pool, { tenantId: t, id: bad }));
    }
  });
});

describe('validation', () => {
  it('names the field and the rule, before any SQL', async () => {
    const t = newTenant();
    const L = (input: Record<string, unknown>) => deliveryLog.listDeliveries(db.pool, input as never);
    const E = (input: Record<string, unknown>) => deliveryLog.listEvents(db.pool, input as never);
    await expectValidation(L({}), 'tenantId', 'required');
    await expectValidation(L({ tenantId: '' }), 'tenantId', 'required');
    await expectValidation(L({ tenantId: 'x'.repeat(256) }), 'tenantId', 'max_length');
    await expectValidation(L({ allTenants: false }), 'tenantId', 'required');
    await expectValidation(L({ tenantId: t, allTenants: true }), 'allTenants', 'conflict');
    await expectValidation(L({ allTenants: 'yes' }), 'allTenants', 'type');
    await expectValidation(L({ tenantId: t, status: 'failed' }), 'status', 'enum');
    await expectValidation(L({ tenantId: t, status: ['dead', 'nope'] }), 'status[1]', 'enum');
    await expectValidation(L({ tenantId: t, status: [] }), 'status', 'required');
    for (const limit of [0, 501, 1.5, '10', -1]) await expectValidation(L({ tenantId: t, limit }), 'limit', 'range');
    for (const cursor of [
      'garbage',
      'dlv_',
      'dlv_abc',
      'dlv_-1',
      'dlv_99999999999999999999',
      `evt_${randomUUID()}`,
      42,
    ]) {
      await expectValidation(L({ tenantId: t, cursor }), 'cursor', 'format');
    }
    await expectValidation(E({ tenantId: t, cursor: 'dlv_12' }), 'cursor', 'format');
    await expectValidation(E({ tenantId: t, cursor: 'evt_nope' }), 'cursor', 'format');
    await expectValidation(L({ tenantId: t, since: ago(0), until: ago(HOUR) }), 'since', 'order');
    await expectValidation(E({ tenantId: t, since: '2024-05-02T00:00:00Z', until: '2024-05-01' }), 'since', 'order');
    for (const since of ['yesterday', '2024-05-01T12:00:00', '2024-13-45', new Date(Number.NaN), 1714557600000]) {
      await expectValidation(L({ tenantId: t, since }), 'since', 'format');
    }
    await expectValidation(L({ tenantId: t, until: '+275760-09-13T00:00:00Z' }), 'until', 'format');
    await expectValidation(L({ tenantId: t, subscriptionId: 'sub-1' }), 'subscriptionId', 'format');
    await expectValidation(L({ tenantId: t, eventType: 'Message.New' }), 'eventType', 'format');
    await expectValidation(E({ tenantId: t, type: 'message.**' }), 'type', 'format');
    await expectValidation(L({ tenantId: t, offset: 10 }), 'offset', 'unknown');
    await expectValidation(deliveryLog.getDelivery(db.pool, { tenantId: '', id: 1 }), 'tenantId', 'required');
    await expectValidation(deliveryLog.getEvent(db.pool, { id: randomUUID() } as never), 'tenantId', 'required');
  });

  it('accepts the boundaries: limit 1 and 500, since equal to until, a bare date', async () => {
    const { tenantId, ids } = await tenantWithDeliveries(2);
    expect((await deliveryLog.listDeliveries(db.pool, { tenantId, limit: 1 })).items.map((d) => d.id)).toEqual([
      ids[1],
    ]);
    expect((await deliveryLog.listDeliveries(db.pool, { tenantId, limit: 500 })).items).toHaveLength(2);
    const at = new Date();
    expect((await deliveryLog.listDeliveries(db.pool, { tenantId, since: at, until: at })).items).toEqual([]);
    expect((await deliveryLog.listDeliveries(db.pool, { tenantId, since: '2000-01-01' })).items).toHaveLength(2);
  });
});

describe('with the real relay', () => {
  it('reads back what the relay wrote: attempts, outcomes and fan-out', async () => {
    const t = newTenant();
    // /flaky fails once then takes it; /down always fails.
    const hits = new Map<string, number>();
    const server: Server = createServer((req, res) => {
      const n = (hits.get(req.url ?? '') ?? 0) + 1;
      hits.set(req.url ?? '', n);
      req.resume().on('end', () => {
        const ok = req.url === '/flaky' && n > 1;
        res.writeHead(ok ? 200 : 500, { 'content-type': 'text/plain' }).end(ok ? 'thanks' : `failure ${n}`);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const pool = new pg.Pool({ connectionString: db.url, max: 4, application_name: 'hookbox-relay-log-test' });
    try {
      const flaky = await subscriptions.create(db.pool, { tenantId: t, url: `${base}/flaky`, eventTypes: ['*'] });
      const down = await subscriptions.create(db.pool, { tenantId: t, url: `${base}/down`, eventTypes: ['message.*'] });
      const eventId = await addEvent(t, 'message.new', { payload: { hello: 'relay' }, fannedOut: false });
      const relay = createRelay({
        db: pool,
        logger: createLogger('silent', new Writable({ write: (_c, _e, cb) => cb() })),
        options: {
          databaseUrl: db.url,
          concurrency: 8,
          batchSize: 50,
          pollIntervalMs: 20,
          leaseMs: 5_000,
          requestTimeoutMs: 2_000,
          retry: defaultRetryPolicy({ scheduleMs: [10], maxAttempts: 2, jitter: 0 }),
          allowPrivateNetwork: ['127.0.0.0/8'],
          requireHttps: false,
          exitWhenIdle: true,
          shutdownGraceMs: 2_000,
          maxResponseBytes: 1024,
          connectionsPerOrigin: 4,
          slowAfterMs: 1_000,
          slowConcurrency: 1,
          userAgent: 'hookbox-test',
          breaker: { failAfter: 1_000_000, cooldownMs: 1_000, maxCooldownMs: 1_000, disableAfterMs: null },
        },
      });
      relay.start();
      await relay.done;

      const { event, deliveries } = await deliveryLog.getEvent(db.pool, { tenantId: t, id: eventId });
      expect(event.payload).toEqual({ hello: 'relay' });
      expect(event.deliveries).toMatchObject({ total: 2, succeeded: 1, dead: 1, pending: 0 });
      const bySub = new Map(deliveries.map((d) => [d.subscriptionId, d]));
      const ok = await deliveryLog.getDelivery(db.pool, { tenantId: t, id: bySub.get(flaky.id)!.id });
      expect(ok.delivery).toMatchObject({ status: 'succeeded', attempts: 2, lastStatus: 200 });
      expect(ok.attempts.map((a) => [a.attempt, a.statusCode, a.errorClass, a.responseExcerpt])).toEqual([
        [1, 500, 'http_status', 'failure 1'],
        [2, 200, null, 'thanks'],
      ]);
      const dead = await deliveryLog.getDelivery(db.pool, { tenantId: t, id: bySub.get(down.id)!.id });
      expect(dead.delivery).toMatchObject({ status: 'dead', attempts: 2, lastStatus: 500 });
      expect(dead.attempts.map((a) => a.statusCode)).toEqual([500, 500]);
      expect(dead.attempts.every((a) => a.durationMs >= 0 && a.startedAt.getTime() <= Date.now())).toBe(true);
      const deadList = await deliveryLog.listDeliveries(db.pool, { tenantId: t, status: 'dead' });
      expect(deadList.items.map((d) => d.id)).toEqual([dead.delivery.id]);
    } finally {
      await pool.end();
      await new Promise((r) => server.close(r));
    }
  });
});
