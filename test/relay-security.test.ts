/**
 * The delivery path against hostile or careless endpoints: the SSRF guard refuses loopback,
 * private, link-local and unspecified targets (literals, IPv6, IPv4-mapped, and a hostname
 * resolving to 127.0.0.1) unless allow-listed; `requireHttps` refuses http://; huge and endless
 * response bodies are cut at the cap; a slow endpoint does not hold up the others.
 */
import { subscriptions } from '@hookbox/outbox';
import { describe, expect, it } from 'vitest';
import { useRelayFixture } from './harness/fixture.js';
import { attempts, deliveries, enqueueEvents, waitFor, waitForAllFinal } from './harness/relay.js';

const fixture = useRelayFixture();
const { db, tenant, relay } = fixture;
const receiver = (host?: string) => fixture.receiver(host ? { host } : {});

async function subscribeAll(t: string, urls: readonly string[]): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  for (const url of urls) {
    const sub = await subscriptions.create(db.pool, { tenantId: t, url, eventTypes: ['*'] });
    ids.set(sub.id, url);
  }
  return ids;
}

describe('SSRF guard', () => {
  it('without an allow-list, refuses loopback, IPv6, mapped, private, link-local and unspecified targets', async () => {
    const v4 = await receiver();
    const v6 = await receiver('::1');
    const p = v4.port;
    const targets = [
      v4.url('/literal'), // 127.0.0.1
      `http://localhost:${p}/hostname`, // resolves to 127.0.0.1
      `http://0x7f.0.0.1:${p}/hex`, // the URL parser turns it into 127.0.0.1
      `http://[::ffff:127.0.0.1]:${p}/mapped`,
      `http://0.0.0.0:${p}/unspecified`, // on Linux, connecting to 0.0.0.0 reaches the loopback
      v6.url('/v6'), // [::1]
      'http://169.254.169.254/latest/meta-data/',
      'http://10.1.2.3/private',
    ];
    const t = tenant();
    const subs = await subscribeAll(t, targets);
    await enqueueEvents(db.pool, [{ tenantId: t, type: 'probe.sent', payload: { secret: 'internal' } }]);
    const r = relay({ allowPrivateNetwork: [] });

    const final = await waitForAllFinal(db.pool, { tenants: [t], atLeast: targets.length });
    const log = await attempts(db.pool);
    for (const d of final) {
      const url = subs.get(d.subscriptionId);
      expect({ url, status: d.status, attempts: d.attempts }).toEqual({ url, status: 'dead', attempts: 1 });
      expect(d.lastError, url).toMatch(/^blocked: refusing to deliver to/);
      expect(log.filter((a) => a.deliveryId === d.id).map((a) => a.errorClass)).toEqual(['blocked']);
    }
    expect(v4.requests()).toEqual([]);
    expect(v6.requests()).toEqual([]);
    expect(r.logs.find('delivery dead').length).toBe(targets.length);
    // The tenant reads the delivery log: it never shows what a hostname resolved to (the
    // relay's DNS view of internal names); the relay's own log does, for operators.
    const byName = final.find((d) => subs.get(d.subscriptionId)?.includes('//localhost:'));
    expect(byName?.lastError).toMatch(
      /^blocked: refusing to deliver to localhost: it resolves to a non-public \(loopback\) address/,
    );
    const { rows: errors } = await db.pool.query(
      'SELECT error_message FROM hookbox.delivery_attempts WHERE delivery_id = $1',
      [byName?.id],
    );
    expect(errors.map((e) => e.error_message).join()).not.toMatch(/127\.0\.0\.1|::1/);
    expect(byName?.lastError).not.toMatch(/127\.0\.0\.1|::1/);
    const dead = r.logs.find('delivery dead').find((l) => l.deliveryId === byName?.id);
    expect(['127.0.0.1', '::1']).toContain(dead?.address);
  });

  it('lets an allow-listed hostname through and still refuses the address behind it by IP', async () => {
    const rx = await receiver();
    const t = tenant();
    const subs = await subscribeAll(t, [`http://localhost:${rx.port}/by-name`, rx.url('/by-ip')]);
    await enqueueEvents(db.pool, [{ tenantId: t, type: 'probe.sent', payload: {} }]);
    relay({ allowPrivateNetwork: ['localhost'] });

    const final = await waitForAllFinal(db.pool, { tenants: [t], atLeast: 2 });
    const status = Object.fromEntries(final.map((d) => [subs.get(d.subscriptionId), d.status]));
    expect(status).toEqual({ [`http://localhost:${rx.port}/by-name`]: 'succeeded', [rx.url('/by-ip')]: 'dead' });
    expect(rx.requests().map((r) => r.path)).toEqual(['/by-name']);
  });

  it('requireHttps refuses http:// endpoints without dialling them, and dials https://', async () => {
    const rx = await receiver();
    const t = tenant();
    const plain = rx.url('/plain');
    // An https:// URL at the plain-HTTP receiver: dialled, so the TLS handshake fails.
    const tls = `https://127.0.0.1:${rx.port}/tls`;
    const subs = await subscribeAll(t, [plain, tls]);
    await enqueueEvents(db.pool, [{ tenantId: t, type: 'probe.sent', payload: {} }]);
    relay({ requireHttps: true, retry: { maxAttempts: 1 } });

    const final = await waitForAllFinal(db.pool, { tenants: [t], atLeast: 2 });
    const byUrl = new Map(final.map((d) => [subs.get(d.subscriptionId), d]));
    expect(byUrl.get(plain)).toMatchObject({ status: 'dead', lastStatus: null });
    expect(byUrl.get(plain)!.lastError).toMatch(/^blocked: https is required/);
    expect(await attempts(db.pool, byUrl.get(plain)!.id)).toEqual([]);
    expect(byUrl.get(tls)).toMatchObject({ status: 'dead', attempts: 1 });
    expect((await attempts(db.pool, byUrl.get(tls)!.id)).map((a) => a.errorClass)).toEqual(['tls']);
    expect(rx.requests()).toEqual([]);
  });
});

describe('hostile responses', () => {
  it('cuts huge and endless bodies at the cap while other endpoints keep being served', async () => {
    const rx = await receiver();
    const FIFTY_MB = 50 * 1024 * 1024;
    rx.on('/huge', { status: 200, bodyBytes: FIFTY_MB });
    rx.on('/endless', { status: 200, endless: true });
    rx.on('/fine', { status: 200, body: 'ok' });
    const t = tenant();
    const huge = await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/huge'), eventTypes: ['big.*'] });
    const endless = await subscriptions.create(db.pool, {
      tenantId: t,
      url: rx.url('/endless'),
      eventTypes: ['big.*'],
    });
    await subscriptions.create(db.pool, { tenantId: t, url: rx.url('/fine'), eventTypes: ['*'] });
    const events = [
      ...Array.from({ length: 3 }, (_, n) => ({ tenantId: t, type: 'big.one', payload: { n } })),
      ...Array.from({ length: 30 }, (_, n) => ({ tenantId: t, type: 'small.one', payload: { n } })),
    ];
    await enqueueEvents(db.pool, events);
    const r = relay({ maxResponseBytes: 1000, concurrency: 8 });

    const final = await waitForAllFinal(db.pool, { tenants: [t], atLeast: 3 * 3 + 30 });
    expect(final.every((d) => d.status === 'succeeded')).toBe(true);
    expect(rx.requests('/fine')).toHaveLength(33);
    for (const sub of [huge, endless]) {
      const ds = final.filter((d) => d.subscriptionId === sub.id);
      expect(ds).toHaveLength(3);
      for (const d of ds) {
        const [a] = await attempts(db.pool, d.id);
        // The excerpt is exactly the cap; the rest was discarded, not kept.
        expect(a!.responseExcerpt).toBe('x'.repeat(1000));
      }
    }
    // The relay hung up long before 50 MB: it stopped reading, the receiver could not push more.
    const cut = rx.traces.filter((tr) => tr.path === '/huge' || tr.path === '/endless');
    expect(cut).toHaveLength(6);
    for (const tr of cut) {
      expect(tr.completed).toBe(false);
      expect(tr.bytesWritten).toBeLessThan(FIFTY_MB / 4);
    }
    expect(r.relay.stats.delivered).toBe(39);
  });

  it('a slow endpoint does not hold up the others, even with more requests than its per-origin slots', async () => {
    const slow = await receiver();
    const fast = await receiver();
    slow.on('/slow', { hang: true });
    const t = tenant();
    await subscriptions.create(db.pool, { tenantId: t, url: slow.url('/slow'), eventTypes: ['slow.*'] });
    await subscriptions.create(db.pool, { tenantId: t, url: fast.url('/fast'), eventTypes: ['*'] });
    await enqueueEvents(
      db.pool,
      Array.from({ length: 6 }, (_, n) => ({ tenantId: t, type: 'slow.one', payload: { n } })),
    );
    await enqueueEvents(
      db.pool,
      Array.from({ length: 40 }, (_, n) => ({ tenantId: t, type: 'fast.one', payload: { n } })),
    );
    // 4 slots per origin: the slow endpoint gets 4 hanging requests, its other 2 deliveries wait.
    relay({
      concurrency: 8,
      connectionsPerOrigin: 4,
      requestTimeoutMs: 2_500,
      leaseMs: 5_000,
      retry: { maxAttempts: 1 },
    });

    // Every fast delivery lands and is recorded while the slow requests are still hanging.
    await fast.waitFor((all) => all.length === 46, { what: '46 fast deliveries' });
    await waitFor(
      async () =>
        (await deliveries(db.pool, `tenant_id = $1 AND status = 'succeeded'`, [t])).length === 46 &&
        slow.traces.length === 0,
      { what: '46 fast deliveries recorded' },
    );
    expect(slow.requests()).toHaveLength(4);
    expect(slow.traces).toEqual([]);
    // Then the slow ones time out and are dead (one attempt allowed), each with its one
    // attempt in the log: a claim that waited is not counted as an attempt it never made.
    const final = await waitForAllFinal(db.pool, { tenants: [t], atLeast: 52, timeoutMs: 20_000 });
    const dead = final.filter((d) => d.status === 'dead');
    expect(dead.map((d) => d.lastError?.split(':')[0])).toEqual(Array(6).fill('timeout'));
    const log = await attempts(db.pool);
    for (const d of dead) {
      expect({ id: d.id, attempts: d.attempts }).toEqual({
        id: d.id,
        attempts: log.filter((a) => a.deliveryId === d.id).length,
      });
    }
    expect(slow.requests()).toHaveLength(6);
  });
  // An endpoint with more deliveries than the relay buffers: its extra claims are handed
  // back for a while, so they cannot fill the buffer and starve the other endpoints.
  it('a slow endpoint with more deliveries than --concurrency does not hold up the others', async () => {
    const slow = await receiver();
    const fast = await receiver();
    slow.on('/slow-many', { hang: true });
    const t = tenant();
    await subscriptions.create(db.pool, { tenantId: t, url: slow.url('/slow-many'), eventTypes: ['slow.*'] });
    await subscriptions.create(db.pool, { tenantId: t, url: fast.url('/fast-too'), eventTypes: ['fast.*'] });
    await enqueueEvents(
      db.pool,
      Array.from({ length: 20 }, (_, n) => ({ tenantId: t, type: 'slow.one', payload: { n } })),
    );
    await enqueueEvents(
      db.pool,
      Array.from({ length: 20 }, (_, n) => ({ tenantId: t, type: 'fast.one', payload: { n } })),
    );
    // The slow endpoint's requests hang far longer than the wait below: the fast endpoint
    // can only get all of its deliveries while they are still hanging, not after they
    // time out. No wall-clock bound on the fast side beyond a generous one.
    relay({
      concurrency: 4,
      connectionsPerOrigin: 2,
      requestTimeoutMs: 60_000,
      leaseMs: 120_000,
      retry: { maxAttempts: 1 },
    });

    await fast.waitFor((all) => all.length === 20, {
      timeoutMs: 30_000,
      what: 'the fast endpoint to get its 20 deliveries while the slow one hangs',
    });
    expect(slow.inFlight).toBeGreaterThan(0);
    expect(slow.requests().length).toBeLessThan(20);
  });
});
