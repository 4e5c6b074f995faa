/**
 * The dispatch queue on a fake clock: global slots, per-endpoint adaptive limits, tenant
 * fair share, the slow pool, stale and deferred hand-backs. No database, no HTTP, no timers.
 */
import { describe, expect, it } from 'vitest';
import { type Dispatchable, DispatchQueue, type DispatchQueueOptions, FAILING_AFTER } from './dispatch-queue.js';

let nextId = 1;
function item(tenantId: string, origin: string, extra: Partial<Dispatchable> = {}): Dispatchable {
  return {
    deliveryId: nextId++,
    subscriptionId: `${tenantId}:${origin}`,
    tenantId,
    origin,
    maxInFlight: null,
    claimedAt: 0,
    ...extra,
  };
}
const many = (n: number, tenantId: string, origin: string, extra: Partial<Dispatchable> = {}) =>
  Array.from({ length: n }, () => item(tenantId, origin, extra));

function setup(options: Partial<DispatchQueueOptions> = {}) {
  const clock = { now: 0 };
  const q = new DispatchQueue<Dispatchable>(
    {
      concurrency: 8,
      connectionsPerOrigin: 4,
      staleAfterMs: 10_000,
      saturatedWaitMs: 250,
      slowAfterMs: 1_000,
      slowConcurrency: 2,
      initialEndpointLimit: 4,
      ...options,
    },
    () => clock.now,
  );
  return { q, clock };
}

const origins = (xs: readonly Dispatchable[]) => xs.map((d) => d.origin);

describe('DispatchQueue', () => {
  it('starts up to the global concurrency, less the reserve, and keeps the rest queued', () => {
    const { q } = setup({ connectionsPerOrigin: 100, initialEndpointLimit: 100 });
    q.push(many(12, 't', 'http://a'));
    const { start, stale, deferred } = q.schedule();
    // 8 slots; concurrency / 8 = 1 stays free for another tenant's work, even for a tenant alone.
    expect(start).toHaveLength(7);
    expect([stale.length, deferred.length]).toEqual([0, 0]);
    expect(q.length).toBe(5);
    expect(q.inFlight).toBe(7);
    // Nothing more until one finishes.
    expect(q.schedule().start).toHaveLength(0);
    q.finish(start[0] as Dispatchable, 'ok');
    expect(q.schedule().start).toHaveLength(1);
  });

  it('caps each endpoint at its adaptive limit: grows on answers up to connectionsPerOrigin, halves on overload, never below 1', () => {
    const { q } = setup({ concurrency: 100, connectionsPerOrigin: 6, initialEndpointLimit: 2 });
    q.push(many(40, 't', 'http://a'));
    let running = q.schedule().start;
    expect(running).toHaveLength(2);
    // Fast answers: +1 each, up to the ceiling of 6.
    for (let round = 0; round < 6; round++) {
      for (const d of running) q.finish(d, 'ok');
      running = q.schedule().start;
    }
    expect(q.endpointLimit('http://a')).toBe(6);
    expect(running).toHaveLength(6);
    // Six timeouts in a row: 6 → 3 → 1 → 1 …
    for (const d of running) q.finish(d, 'overload');
    expect(q.endpointLimit('http://a')).toBe(1);
    const [only] = q.schedule().start;
    expect(only).toBeDefined();
    // 'none' (no request was made) moves nothing.
    q.finish(only as Dispatchable, 'none');
    expect(q.endpointLimit('http://a')).toBe(1);
  });

  it('one endpoint at its limit does not block another endpoint behind it in the buffer', () => {
    const { q } = setup();
    q.push([...many(10, 't', 'http://slow'), ...many(3, 't', 'http://fast')]);
    const { start } = q.schedule();
    expect(origins(start).filter((o) => o === 'http://slow')).toHaveLength(4);
    expect(origins(start).filter((o) => o === 'http://fast')).toHaveLength(3);
    expect(q.blocked).toBe(6);
  });

  it('gives each tenant a fair share of contended slots, and the unused rest to whoever has work', () => {
    const { q } = setup({ concurrency: 8, connectionsPerOrigin: 8, initialEndpointLimit: 8 });
    // The noisy tenant's work arrived first and fills the buffer's head.
    q.push([...many(8, 'noisy', 'http://n1'), ...many(8, 'noisy', 'http://n2'), ...many(8, 'victim', 'http://v')]);
    const { start } = q.schedule();
    const byTenant = (t: string) => start.filter((d) => d.tenantId === t).length;
    expect(byTenant('noisy')).toBe(4);
    expect(byTenant('victim')).toBe(4);
    // A tenant with little work leaves slots over: the other gets them, all but a reserve
    // of concurrency / 8 kept free for the next delivery of a tenant below its share.
    const light = setup({ concurrency: 8, connectionsPerOrigin: 8, initialEndpointLimit: 8 }).q;
    light.push([...many(16, 'noisy', 'http://n1'), ...many(1, 'victim', 'http://v')]);
    const started = light.schedule().start;
    expect(started.filter((d) => d.tenantId === 'noisy')).toHaveLength(6);
    expect(light.inFlightMain).toBe(7);
    light.push(many(1, 'victim', 'http://v'));
    expect(origins(light.schedule().start)).toEqual(['http://v']);
    // Alone, a tenant may use every slot but the reserve: whoever comes next starts at once.
    const solo = setup({ concurrency: 8, connectionsPerOrigin: 8, initialEndpointLimit: 8 }).q;
    solo.push([...many(8, 'noisy', 'http://n1'), ...many(8, 'noisy', 'http://n2')]);
    expect(solo.schedule().start).toHaveLength(7);
    solo.push(many(1, 'victim', 'http://v'));
    expect(origins(solo.schedule().start)).toEqual(['http://v']);
  });

  it('moves requests in flight past slowAfterMs to the slow pool, freeing their main slots', () => {
    const { q, clock } = setup({ concurrency: 8, connectionsPerOrigin: 4 });
    // Two hanging endpoints of a tenant alone take every main slot but the reserve.
    q.push([...many(4, 'a', 'http://tarpit1'), ...many(4, 'a', 'http://tarpit2')]);
    expect(q.schedule().start).toHaveLength(7);
    // Another tenant's work starts at once in the reserve, not after slowAfterMs.
    q.push(many(3, 'b', 'http://healthy'));
    const first = q.schedule().start;
    expect(origins(first)).toEqual(['http://healthy']);
    q.finish(first[0] as Dispatchable, 'ok');
    clock.now = 1_000;
    const { start } = q.schedule();
    expect(origins(start)).toEqual(['http://healthy', 'http://healthy']);
    expect(q.inFlightSlow).toBe(7);
    expect(q.inFlightMain).toBe(2);
    expect(q.slowEndpoints().sort()).toEqual(['http://tarpit1', 'http://tarpit2']);
  });

  it('a slow endpoint starts only from the small slow budget; the rest is parked at once', () => {
    const { q, clock } = setup({ concurrency: 8, connectionsPerOrigin: 4, slowConcurrency: 2 });
    q.push(many(1, 'a', 'http://slow'));
    const [first] = q.schedule().start;
    clock.now = 2_000;
    q.finish(first as Dispatchable, 'overload'); // took 2 s: slow, limit 4 → 2
    expect(q.slowEndpoints()).toEqual(['http://slow']);
    q.push(many(5, 'a', 'http://slow', { claimedAt: 2_000 }));
    const { start, parked, deferred } = q.schedule();
    expect(start).toHaveLength(2); // the slow budget
    expect([parked.length, deferred.length]).toEqual([3, 0]);
    expect(q.inFlightSlow).toBe(2);
    expect(q.inFlightMain).toBe(0);
    expect(q.length).toBe(0);
  });

  it('a slow endpoint with nothing in flight still gets one probe when the slow budget is spent', () => {
    const { q, clock } = setup({ concurrency: 8, connectionsPerOrigin: 4, slowConcurrency: 1 });
    q.push([...many(1, 'a', 'http://tarpit'), ...many(1, 'b', 'http://late')]);
    const [tarpit, late] = q.schedule().start;
    clock.now = 1_200;
    q.finish(late as Dispatchable, 'ok'); // answered, but late: slow
    q.schedule(); // the tarpit's request ages into the slow pool: budget spent
    expect(q.slowEndpoints().sort()).toEqual(['http://late', 'http://tarpit']);
    q.push([
      ...many(2, 'a', 'http://tarpit', { claimedAt: 1_200 }),
      ...many(3, 'b', 'http://late', { claimedAt: 1_200 }),
    ]);
    const r = q.schedule(true);
    expect(origins(r.start)).toEqual(['http://late']);
    expect(r.parked).toHaveLength(4);
    // Both stay out of due claims while their endpoint holds a request.
    expect(q.parkedSubscriptions().sort()).toEqual(['a:http://tarpit', 'b:http://late']);
    // Its fast answer brings it back to the main pool.
    clock.now = 1_250;
    q.finish(r.start[0] as Dispatchable, 'ok');
    expect(q.slowEndpoints()).toEqual(['http://tarpit']);
    expect(q.parkedSubscriptions()).toEqual(['a:http://tarpit']);
    q.finish(tarpit as Dispatchable, 'overload');
    expect(q.parkedSubscriptions()).toEqual([]);
  });

  it('forgets an endpoint idle for five minutes, its slow flag and lowered limit with it, when the buffer is empty', () => {
    const { q, clock } = setup();
    q.push(many(1, 'a', 'http://e'));
    const [d] = q.schedule().start;
    clock.now = 1_500;
    q.finish(d as Dispatchable, 'overload');
    expect(q.slowEndpoints()).toEqual(['http://e']);
    expect(q.endpointLimit('http://e')).toBe(2);
    clock.now = 1_500 + 4 * 60_000;
    q.pruneIdle();
    expect(q.slowEndpoints()).toEqual(['http://e']);
    clock.now = 1_500 + 5 * 60_000 + 1;
    q.pruneIdle();
    expect(q.slowEndpoints()).toEqual([]);
    expect(q.endpointLimit('http://e')).toBeUndefined();
  });

  it('a slow endpoint that answers fast again returns to the main pool', () => {
    const { q, clock } = setup();
    q.push(many(1, 'a', 'http://e'));
    const [d1] = q.schedule().start;
    clock.now = 1_500;
    q.finish(d1 as Dispatchable, 'ok');
    expect(q.slowEndpoints()).toEqual(['http://e']);
    q.push(many(1, 'a', 'http://e', { claimedAt: 1_500 }));
    const [d2] = q.schedule().start;
    expect(q.inFlightSlow).toBe(1);
    clock.now = 1_520;
    q.finish(d2 as Dispatchable, 'ok');
    expect(q.slowEndpoints()).toEqual([]);
    q.push(many(1, 'a', 'http://e', { claimedAt: 1_520 }));
    q.schedule();
    expect(q.inFlightMain).toBe(1);
  });

  it('holds a subscription to its own max_in_flight, handing back what waited saturatedWaitMs', () => {
    const { q, clock } = setup({ concurrency: 8, connectionsPerOrigin: 8, initialEndpointLimit: 8 });
    q.push(many(5, 't', 'http://a', { subscriptionId: 'capped', maxInFlight: 2 }));
    expect(q.schedule().start).toHaveLength(2);
    expect(q.blocked).toBe(3);
    clock.now = 251;
    expect(q.schedule().deferred).toHaveLength(3);
  });

  it('an endpoint growing its limit keeps its work waiting', () => {
    const { q, clock } = setup({ concurrency: 8, connectionsPerOrigin: 8, initialEndpointLimit: 2 });
    q.push(many(4, 't', 'http://grow'));
    q.schedule();
    clock.now = 400; // waited longer than saturatedWaitMs, but the endpoint is below its ceiling
    expect(q.schedule()).toMatchObject({ deferred: [], parked: [] });
    expect(q.length).toBe(2);
  });

  it(`a subscription failing ${FAILING_AFTER} times in a row sends one request at a time and parks the rest; an answer ends that`, () => {
    const { q } = setup({ concurrency: 8, connectionsPerOrigin: 8, initialEndpointLimit: 8 });
    const sub = { subscriptionId: 'failing' };
    for (let i = 0; i < FAILING_AFTER; i++) {
      q.push(many(1, 't', 'http://f', sub));
      const [d] = q.schedule().start;
      q.finish(d as Dispatchable, 'overload');
    }
    expect(q.failing('failing')).toBe(true);
    q.push(many(4, 't', 'http://f', sub));
    const r = q.schedule();
    expect([r.start.length, r.parked.length]).toEqual([1, 3]);
    q.finish(r.start[0] as Dispatchable, 'ok');
    expect(q.failing('failing')).toBe(false);
    q.push(many(3, 't', 'http://f', sub));
    expect(q.schedule().start.length).toBeGreaterThan(1);
  });

  it('hands back claims too old to start, and every deferred or stale claim leaves the buffer', () => {
    const { q, clock } = setup({ staleAfterMs: 5_000 });
    q.push(many(2, 't', 'http://a'));
    clock.now = 5_001;
    const { start, stale } = q.schedule();
    expect(start).toHaveLength(0);
    expect(stale).toHaveLength(2);
    expect(q.length).toBe(0);
  });

  it('a full scan finds stale work behind a full house; a normal schedule stops early', () => {
    const { q, clock } = setup({ concurrency: 1, slowConcurrency: 1, staleAfterMs: 500, slowAfterMs: 1_000 });
    // A hanging request ages into the slow pool and fills its budget…
    q.push(many(1, 't', 'http://hang'));
    q.schedule();
    clock.now = 1_000;
    q.schedule();
    expect(q.inFlightSlow).toBe(1);
    // …and a healthy one takes the only main slot.
    q.push(many(3, 'u', 'http://b', { claimedAt: 1_000 }));
    expect(q.schedule().start).toHaveLength(1);
    clock.now = 1_600; // the two queued claims are stale now
    expect(q.schedule().stale).toHaveLength(0); // main and slow full: the buffer is not scanned
    expect(q.schedule(true).stale).toHaveLength(2);
    expect(q.length).toBe(0);
  });

  it('drain() returns what was never started', () => {
    const { q } = setup({ concurrency: 1 });
    q.push(many(3, 't', 'http://a'));
    q.schedule();
    expect(q.drain()).toHaveLength(2);
    expect(q.length).toBe(0);
    expect(q.inFlight).toBe(1);
  });

  it("reports each tenant's load on the main pool: in flight plus queued, not work its own endpoint blocks", () => {
    const { q } = setup({ concurrency: 8, connectionsPerOrigin: 2, initialEndpointLimit: 2 });
    // Tenant a floods four origins; tenant b has one delivery.
    q.push([...many(6, 'a', 'http://a1'), ...many(6, 'a', 'http://a2'), ...many(6, 'a', 'http://a3')]);
    q.push(many(1, 'b', 'http://b'));
    const { start } = q.schedule();
    // a: 2 per origin (its endpoints' limit) = 6 in flight; b: 1.
    expect(start.filter((d) => d.tenantId === 'a')).toHaveLength(6);
    expect(start.filter((d) => d.tenantId === 'b')).toHaveLength(1);
    const loads = q.tenantLoads();
    // a's 12 queued items all wait for their own endpoints: only its 6 in flight count.
    expect(loads.get('a')).toBe(6);
    expect(loads.get('b')).toBe(1);
    // Work of a new origin waits for a slot (a is over its share), not for its endpoint: it counts.
    q.push(many(4, 'a', 'http://a4'));
    expect(q.schedule().start).toHaveLength(0);
    expect(q.tenantLoads().get('a')).toBe(6 + 4);
  });

  it('counts a tenant whose work arrived within activeTenantMs as active, with nothing of it here now', () => {
    const { q, clock } = setup({ concurrency: 8, connectionsPerOrigin: 100, initialEndpointLimit: 100 });
    const [b] = many(1, 'b', 'http://b');
    q.push([b as Dispatchable]);
    expect(q.schedule().start).toHaveLength(1);
    q.finish(b as Dispatchable, 'ok');
    clock.now = 500;
    q.push(many(10, 'a', 'http://a'));
    q.schedule();
    // b has nothing here, yet it is an active tenant: a's share is 4 of 8 slots, not all of them.
    expect(q.tenantLoads().get('b')).toBe(0);
    expect(q.tenantsAtShare()).toEqual(['a']);
    // A second later b is gone: a is alone, and 10 (7 in flight + 3 buffered) is over its share of 8.
    clock.now = 1_501;
    expect(q.tenantLoads().has('b')).toBe(false);
    expect(q.tenantsAtShare()).toEqual(['a']);
  });

  it('tenantsAtShare: a tenant at its fair share of the relay, work its own endpoints block included', () => {
    const { q } = setup({ concurrency: 8, connectionsPerOrigin: 1, initialEndpointLimit: 1 });
    // a: 3 in flight on 3 origins, 3 more blocked behind them; b: 1 in flight. Share: 4 each.
    q.push([...many(2, 'a', 'http://a1'), ...many(2, 'a', 'http://a2'), ...many(2, 'a', 'http://a3')]);
    q.push(many(1, 'b', 'http://b'));
    q.schedule();
    expect(q.inFlight).toBe(4);
    // Blocked work does not count for fan-out's buffer budget (tenantLoads)...
    expect(q.tenantLoads().get('a')).toBe(3);
    // ...but it does count toward what the tenant holds: a is at its share, b is not.
    expect(q.tenantsAtShare()).toEqual(['a']);
    // A third tenant makes the share 3: b (1) is still below it.
    q.push(many(1, 'c', 'http://c'));
    expect(q.tenantsAtShare()).toEqual(['a']);
  });
});
