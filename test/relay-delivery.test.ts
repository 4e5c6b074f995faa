/**
 * The relay's happy path against a real Postgres and a real HTTP receiver: what is committed
 * is delivered once to every matching subscription of the same tenant and nothing else; the
 * request has the Standard Webhooks shape and signatures an independent implementation
 * accepts (one per active secret); events nobody subscribed to are closed, not retried; two
 * relays on one database deliver each event exactly once.
 */
import { randomUUID } from 'node:crypto';
import { generateSecret, subscriptions } from '@hookbox/outbox';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { VERSION } from '../apps/relay/src/version.js';
import { useRelayFixture } from './harness/fixture.js';
import type { ReceivedRequest } from './harness/receiver.js';
import { attempts, deliveries, enqueueEvents, startRelay, waitFor, waitForAllFinal } from './harness/relay.js';

const { db, defer, tenant, receiver, relay } = useRelayFixture();

function signatureHeaders(req: ReceivedRequest): {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
} {
  return {
    'webhook-id': String(req.headers['webhook-id']),
    'webhook-timestamp': String(req.headers['webhook-timestamp']),
    'webhook-signature': String(req.headers['webhook-signature']),
  };
}

function envelope(req: ReceivedRequest) {
  return JSON.parse(req.body) as { id: string; type: string; timestamp: string; data: Record<string, unknown> };
}

describe('commit and rollback', () => {
  it('delivers a committed event once to every matching subscription, and a rolled-back one never', async () => {
    const rx = await receiver();
    const t = tenant();
    const all = await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/all'), eventTypes: ['*'] });
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/messages'), eventTypes: ['message.*'] });
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/new'), eventTypes: ['message.new'] });
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/users'), eventTypes: ['user.created'] });
    const other = tenant();
    await subscriptions.create(db.pool, { tenantId: other, url: rx.url('/other-tenant'), eventTypes: ['*'] });

    const [rolledBack] = await enqueueEvents(
      db.pool,
      [{ tenantId: t, type: 'message.new', payload: { n: 'rolled-back' } }],
      'rollback',
    );
    const [committed] = await enqueueEvents(db.pool, [{ tenantId: t, type: 'message.new', payload: { n: 'ok' } }]);
    relay();

    const final = await waitForAllFinal(db.pool, { tenants: [t, other], atLeast: 3 });
    expect(final.map((d) => d.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(final.every((d) => d.eventId === committed && d.attempts === 1)).toBe(true);
    // Let a few more polls pass: nothing else may arrive.
    await new Promise((r) => setTimeout(r, 150));
    const got = rx.requests();
    expect(got.map((r) => r.path).sort()).toEqual(['/all', '/messages', '/new']);
    expect(got.every((r) => r.headers['webhook-id'] === committed)).toBe(true);
    expect(got.some((r) => r.body.includes('rolled-back') || r.headers['webhook-id'] === rolledBack)).toBe(false);
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM hookbox.events WHERE id = $1', [rolledBack]);
    expect(rows[0].n).toBe(0);
    // The delivery log has exactly one attempt per delivery, with the 200.
    const log = await attempts(db.pool);
    expect(log.filter((a) => final.some((d) => d.id === a.deliveryId)).map((a) => a.statusCode)).toEqual([
      200, 200, 200,
    ]);
    expect(all.id).toBeTruthy();
  });
});

describe('the request', () => {
  it('has the Standard Webhooks body, our headers and a signature the standardwebhooks package verifies', async () => {
    const rx = await receiver();
    const t = tenant();
    const sub = await subscriptions.create(db.pool, {
      tenantId: t,
      url: rx.url('/hook?src=test'),
      eventTypes: ['order.*'],
      headers: { 'x-api-key': 'k-123', 'x-tenant': t },
    });
    const payload = {
      orderId: 42,
      items: [{ sku: 'a', qty: 2 }],
      note: 'ünïcödé "quoted" \\ slash',
      nested: { ok: true },
    };
    const [id] = await enqueueEvents(db.pool, [{ tenantId: t, type: 'order.paid', payload }]);
    relay();

    const [req] = await rx.waitFor((all) => all.length >= 1, { what: 'one delivery' });
    await waitForAllFinal(db.pool, { tenants: [t] });
    expect(req!.method).toBe('POST');
    expect(req!.path).toBe('/hook?src=test');
    expect(req!.headers['content-type']).toBe('application/json');
    expect(req!.headers['user-agent']).toBe(`hookbox/${VERSION}`);
    expect(req!.headers['x-api-key']).toBe('k-123');
    expect(req!.headers['x-tenant']).toBe(t);
    expect(req!.headers['webhook-id']).toBe(id);
    const ts = Number(req!.headers['webhook-timestamp']);
    expect(Math.abs(ts - Date.now() / 1000)).toBeLessThan(60);

    const body = envelope(req!);
    expect(Object.keys(body)).toEqual(['id', 'type', 'timestamp', 'data']);
    expect(body.id).toBe(id);
    expect(body.type).toBe('order.paid');
    expect(body.data).toEqual(payload);
    const { rows } = await db.pool.query(
      'SELECT (extract(epoch FROM created_at) * 1000)::float8 AS ms FROM hookbox.events WHERE id = $1',
      [id],
    );
    expect(body.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(Math.abs(Date.parse(body.timestamp) - rows[0].ms)).toBeLessThan(1);

    // Verified over the raw bytes by an implementation that is not ours.
    const headers = signatureHeaders(req!);
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(() => new Webhook(sub.secret).verify(req!.body, headers)).not.toThrow();
    expect(() => new Webhook(sub.secret).verify(req!.body.replace('42', '43'), headers)).toThrow();
    expect(() => new Webhook(generateSecret()).verify(req!.body, headers)).toThrow();
  });

  it('signs with both secrets during a rotation, each verifying alone, and drops an expired one', async () => {
    const rx = await receiver();
    const t = tenant();
    const oldSecret = generateSecret();
    const sub = await subscriptions.create(db.pool, {
      tenantId: t,
      url: rx.url('/rotating'),
      eventTypes: ['*'],
      secret: oldSecret,
    });
    const rotated = await subscriptions.rotateSecret(db.pool, {
      tenantId: t,
      id: sub.id,
      previousSecretTtlMs: 3_600_000,
    });
    expect(rotated.secret).not.toBe(oldSecret);
    const [first] = await enqueueEvents(db.pool, [{ tenantId: t, type: 'a.b', payload: { n: 1 } }]);
    const r = relay();

    const [req] = await rx.waitFor((all) => all.length >= 1, { what: 'the first delivery' });
    expect(req!.headers['webhook-id']).toBe(first);
    const headers = signatureHeaders(req!);
    expect(headers['webhook-signature'].split(' ')).toHaveLength(2);
    expect(() => new Webhook(oldSecret).verify(req!.body, headers)).not.toThrow();
    expect(() => new Webhook(rotated.secret).verify(req!.body, headers)).not.toThrow();
    expect(() => new Webhook(generateSecret()).verify(req!.body, headers)).toThrow();
    // Each signature on its own belongs to exactly one of the secrets.
    const [sigA, sigB] = headers['webhook-signature'].split(' ');
    const alone = (sig: string, secret: string) => {
      try {
        new Webhook(secret).verify(req!.body, { ...headers, 'webhook-signature': sig });
        return true;
      } catch {
        return false;
      }
    };
    expect([alone(sigA!, rotated.secret), alone(sigB!, oldSecret)]).toEqual([true, true]);
    expect([alone(sigA!, oldSecret), alone(sigB!, rotated.secret)]).toEqual([false, false]);

    // Once the previous secret has expired, only the current one signs.
    await db.pool.query(
      `UPDATE hookbox.subscriptions SET previous_secret_expires_at = now() - interval '1 second' WHERE id = $1`,
      [sub.id],
    );
    const [second] = await enqueueEvents(db.pool, [{ tenantId: t, type: 'a.b', payload: { n: 2 } }]);
    const [, req2] = await rx.waitFor((all) => all.length >= 2, { what: 'the second delivery' });
    expect(req2!.headers['webhook-id']).toBe(second);
    const headers2 = signatureHeaders(req2!);
    expect(headers2['webhook-signature'].split(' ')).toHaveLength(1);
    expect(() => new Webhook(rotated.secret).verify(req2!.body, headers2)).not.toThrow();
    expect(() => new Webhook(oldSecret).verify(req2!.body, headers2)).toThrow();
    await waitForAllFinal(db.pool, { tenants: [t], atLeast: 2 });
    expect(r.relay.stats.delivered).toBe(2);
  });
});

describe('matching', () => {
  it('keeps tenants apart: 20 tenants with overlapping patterns get exactly their own events', async () => {
    const rx = await receiver();
    const tenants = Array.from({ length: 20 }, (_, i) => `iso-${i}-${randomUUID().slice(0, 6)}`);
    // Every tenant has the same four endpoints, so a leak would land on a path of the wrong tenant.
    const patterns: Record<string, string[]> = {
      all: ['*'],
      msg: ['message.*'],
      new: ['message.new'],
      mix: ['user.created', 'message.deleted'],
    };
    for (const t of tenants) {
      for (const [name, eventTypes] of Object.entries(patterns)) {
        await subscriptions.create(db.pool, { tenantId: t, url: rx.url(`/iso/${t}/${name}`), eventTypes });
      }
    }
    const types = ['message.new', 'message.deleted', 'user.created', 'order.paid', 'messages.new'];
    const expected = new Map<string, number>();
    const events = tenants.flatMap((t, i) => {
      // Different counts per tenant, so a cross-tenant delivery changes a count.
      const list = types.flatMap((type, k) =>
        Array.from({ length: 1 + ((i + k) % 3) }, (_, n) => ({ tenantId: t, type, payload: { tenant: t, type, n } })),
      );
      for (const e of list) {
        for (const [name, ps] of Object.entries(patterns)) {
          const match = ps.some(
            (p) => p === '*' || p === e.type || (p.endsWith('.*') && e.type.startsWith(p.slice(0, -1))),
          );
          if (match) expected.set(`/iso/${t}/${name}`, (expected.get(`/iso/${t}/${name}`) ?? 0) + 1);
        }
      }
      return list;
    });
    // Interleave tenants in several transactions.
    events.sort((a, b) => a.payload.n - b.payload.n || a.type.localeCompare(b.type));
    for (let i = 0; i < events.length; i += 40) await enqueueEvents(db.pool, events.slice(i, i + 40));
    const total = [...expected.values()].reduce((a, b) => a + b, 0);
    relay({ concurrency: 32, batchSize: 25 });

    const final = await waitForAllFinal(db.pool, { tenants, atLeast: total });
    expect(final).toHaveLength(total);
    expect(final.every((d) => d.status === 'succeeded')).toBe(true);
    const got = rx.requests().filter((r) => r.path.startsWith('/iso/'));
    expect(got).toHaveLength(total);
    const counts = new Map<string, number>();
    const seen = new Set<string>();
    for (const req of got) {
      const [, , pathTenant, name] = req.path.split('/');
      const body = envelope(req);
      expect(body.data.tenant).toBe(pathTenant);
      const ps = patterns[name!]!;
      expect(
        ps.some((p) => p === '*' || p === body.type || (p.endsWith('.*') && body.type.startsWith(p.slice(0, -1)))),
      ).toBe(true);
      const key = `${req.path} ${req.headers['webhook-id']}`;
      expect(seen.has(key)).toBe(false);
      seen.add(key);
      counts.set(req.path, (counts.get(req.path) ?? 0) + 1);
    }
    expect(Object.fromEntries([...counts].sort())).toEqual(Object.fromEntries([...expected].sort()));
    // `messages.new` is not `message.*`: only the `*` endpoints got it.
    expect(got.filter((r) => envelope(r).type === 'messages.new' && !r.path.endsWith('/all'))).toEqual([]);
  });

  it('closes events that match no subscription instead of retrying them', async () => {
    const rx = await receiver();
    const t = tenant();
    const lonely = tenant(); // no subscriptions at all
    const disabledOnly = tenant();
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/invoices'), eventTypes: ['invoice.*'] });
    const off = await subscriptions.create(db.pool, { tenantId: disabledOnly, url: rx.url('/off'), eventTypes: ['*'] });
    await subscriptions.disable(db.pool, { tenantId: disabledOnly, id: off.id, reason: 'test' });
    const ids = await enqueueEvents(db.pool, [
      { tenantId: t, type: 'message.new', payload: { n: 1 } },
      { tenantId: t, type: 'invoice.paid', payload: { n: 2 } },
      { tenantId: t, type: 'message.new', payload: { n: 3 } },
      { tenantId: lonely, type: 'message.new', payload: { n: 4 } },
      { tenantId: disabledOnly, type: 'message.new', payload: { n: 5 } },
    ]);
    relay();

    await rx.waitFor((all) => all.some((r) => r.path === '/invoices'), { what: 'the invoice delivery' });
    const fanned = async () =>
      (
        await db.pool.query<{ id: string; fanned_out_at: Date | null }>(
          'SELECT id, fanned_out_at FROM hookbox.events WHERE id = ANY($1) ORDER BY id',
          [ids],
        )
      ).rows;
    const first = await waitFor(async () => {
      const rows = await fanned();
      return rows.every((r) => r.fanned_out_at !== null) && rows;
    });
    expect(first).toHaveLength(5);
    // Many polls later, nothing was re-claimed: same marks, still one delivery, one request.
    await new Promise((r) => setTimeout(r, 200));
    expect((await fanned()).map((r) => r.fanned_out_at?.getTime())).toEqual(
      first.map((r) => r.fanned_out_at?.getTime()),
    );
    const ds = await deliveries(db.pool, 'event_id = ANY($1)', [ids]);
    expect(ds.map((d) => [d.eventId, d.status])).toEqual([[ids[1], 'succeeded']]);
    expect(rx.requests().map((r) => r.path)).toEqual(['/invoices']);
  });
});

describe('two relays on one database', () => {
  it('deliver every event exactly once between them', async () => {
    const rx = await receiver();
    const t = tenant();
    // A little latency per request so that neither relay can drain the backlog alone.
    rx.on('/one', { delayMs: 15 });
    rx.on('/two', { delayMs: 15 });
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/one'), eventTypes: ['*'] });
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/two'), eventTypes: ['job.*'] });
    const events = Array.from({ length: 200 }, (_, n) => ({ tenantId: t, type: 'job.done', payload: { n } }));
    const ids: string[] = [];
    for (let i = 0; i < events.length; i += 50) ids.push(...(await enqueueEvents(db.pool, events.slice(i, i + 50))));
    const a = relay({ concurrency: 8, batchSize: 10 });
    const b = relay({ concurrency: 8, batchSize: 10 });

    const final = await waitForAllFinal(db.pool, { tenants: [t], atLeast: 400, timeoutMs: 30_000 });
    expect(final.every((d) => d.status === 'succeeded' && d.attempts === 1)).toBe(true);
    const got = rx.requests();
    expect(got).toHaveLength(400);
    for (const path of ['/one', '/two']) {
      const received = got.filter((r) => r.path === path).map((r) => String(r.headers['webhook-id']));
      expect(new Set(received).size).toBe(received.length);
      expect([...received].sort()).toEqual([...ids].sort());
    }
    expect(a.relay.stats.delivered + b.relay.stats.delivered).toBe(400);
    // Both relays did part of the work (SKIP LOCKED spreads it, nobody waits on a lock).
    expect(a.relay.stats.delivered).toBeGreaterThan(0);
    expect(b.relay.stats.delivered).toBeGreaterThan(0);
    expect((await attempts(db.pool)).filter((x) => final.some((d) => d.id === x.deliveryId))).toHaveLength(400);
  });
});

describe('observers', () => {
  it('an observer that throws changes nothing that is delivered or recorded', async () => {
    const rx = await receiver();
    const t = tenant();
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/ok'), eventTypes: ['*'] });
    const boom = () => {
      throw new Error('observer bug');
    };
    const r = startRelay(db.url, {}, { observer: { fannedOut: boom, attempt: boom, outcome: boom } });
    defer(() => r.stop());
    await enqueueEvents(db.pool, [{ tenantId: t, type: 'message.new', payload: { n: 1 } }]);
    const [d] = await waitForAllFinal(db.pool, { tenants: [t], atLeast: 1 });
    expect(d).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect(rx.requests('/ok')).toHaveLength(1);
    expect(await attempts(db.pool, d?.id)).toEqual([expect.objectContaining({ attempt: 1, statusCode: 200 })]);
  });
});
