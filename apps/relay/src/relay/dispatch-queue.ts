/**
 * The relay's dispatch queue: which claimed deliveries start now, which wait, and which are
 * handed back to the database. No I/O and no timers: the relay calls `schedule()` whenever
 * something changes (a claim landed, a request finished, the poll tick) and `finish()` when
 * a request ends; the clock is injected, so every rule here is unit-tested with a fake one
 * (dispatch-queue.test.ts). Modelled on graphile-worker's LocalQueue.
 *
 * Isolation design (README "Fairness"): the global slots (`concurrency`) are shared so that
 * no endpoint and no tenant can take them from the others —
 *  - each endpoint (origin) has an adaptive limit: it starts at `initialEndpointLimit` (the
 *    relay: 4, slow start), halves on a timeout, connection error, 429 or 5xx (never below
 *    1) and grows by one on every answered request, up to `connectionsPerOrigin`;
 *  - when slots are contended each tenant gets a fair share (`concurrency / active
 *    tenants`) first; slots left over go to whoever still has work, except a reserve of
 *    `concurrency / 8` kept free for tenants below their share (also while a tenant is
 *    alone: whoever comes next starts at once);
 *  - a request in flight longer than `slowAfterMs` stops counting against the global slots
 *    and its endpoint is marked SLOW: a slow endpoint only starts requests from a small
 *    separate budget (`slowConcurrency`), so any number of hanging endpoints hold at most
 *    their first few requests of the main slots, for at most `slowAfterMs`;
 *  - fan-out never waits on delivery slots: the relay leaves a tenant over twice its fair
 *    share (in flight plus buffered; tenantLoads) out of fan-out, and while the buffer is at
 *    its bound it still fans out, in small rounds, every tenant below its share
 *    (tenantsAtShare). A tenant counts as active for a second after its last work arrived;
 *  - a subscription that failed FAILING_AFTER times in a row sends one request at a time;
 *  - work that cannot start because its endpoint is slow or failing is handed back at once
 *    and its subscription is left out of the next claims for a while (parked); work waiting
 *    for an endpoint at its ceiling (or max_in_flight) is handed back after
 *    `saturatedWaitMs`. Neither fills the buffer, so fan-out never waits on them.
 */

/** What the queue needs to know about a claimed delivery. */
export interface Dispatchable {
  deliveryId: number;
  subscriptionId: string;
  tenantId: string;
  /** scheme://host:port; '' when the URL is unusable (it starts and fails at once). */
  origin: string;
  /** The subscription's own cap on concurrent requests; null: none. */
  maxInFlight: number | null;
  /** clock() when it was claimed (its lease started about then). */
  claimedAt: number;
}

export interface DispatchQueueOptions {
  /** Requests in flight at once in the main pool. */
  concurrency: number;
  /** Most requests in flight per endpoint origin (the adaptive limit's ceiling). */
  connectionsPerOrigin: number;
  /** A queued claim older than this is handed back unsent (its lease could run out mid-request). */
  staleAfterMs: number;
  /** Work blocked by its endpoint for this long is handed back (deferred). */
  saturatedWaitMs: number;
  /** A request in flight this long makes its endpoint SLOW and moves to the slow pool. */
  slowAfterMs: number;
  /** Requests that slow endpoints may start at once, all slow endpoints together. */
  slowConcurrency: number;
  /** An endpoint's adaptive limit when first seen (capped by connectionsPerOrigin). Default connectionsPerOrigin. */
  initialEndpointLimit?: number;
  /**
   * A tenant whose work was pushed this recently counts as active in the fair shares of
   * tenantLoads() and tenantsAtShare() even with nothing buffered or in flight right now.
   * Default 1 s.
   */
  activeTenantMs?: number;
}

/** How a finished request should move its endpoint's adaptive limit. */
export type Feedback =
  /** The endpoint answered (any status that is not an overload signal): grow. */
  | 'ok'
  /** Timeout, connection failure, 429 or 5xx: shrink. */
  | 'overload'
  /** No request was made (refused locally, cancelled): no change. */
  | 'none';

/**
 * An endpoint's state. NORMAL: starts from the main pool, up to its adaptive limit.
 * SLOW (a request took or has been in flight longer than slowAfterMs, or timed out): starts
 * only from the slow pool. It turns NORMAL again when a request answers fast.
 */
interface Endpoint {
  limit: number;
  inFlight: number;
  slow: boolean;
  lastUsed: number;
}

/** A started request: MAIN counts against `concurrency`; SLOW (aged or slow endpoint) does not. */
interface Running<T> {
  item: T;
  startedAt: number;
  pool: 'main' | 'slow';
}

export interface ScheduleResult<T> {
  /** Start these now (they are counted as in flight until finish()). */
  start: T[];
  /** Hand back at once, unsent: their lease is too old to cover a whole attempt. */
  stale: T[];
  /** Hand back for a moment: their endpoint is busy at its ceiling (or max_in_flight). */
  deferred: T[];
  /** Hand back for longer: their endpoint is slow or failing (see `parkedSubscriptions`). */
  parked: T[];
}

const IDLE_ENDPOINT_MS = 5 * 60_000;
/** Consecutive timeouts, connection errors, 429s or 5xx after which a subscription counts as failing. */
export const FAILING_AFTER = 5;

export class DispatchQueue<T extends Dispatchable> {
  private queue: T[] = [];
  private readonly running = new Map<number, Running<T>>();
  private readonly endpoints = new Map<string, Endpoint>();
  private readonly bySubscription = new Map<string, number>();
  /** MAIN-pool requests per tenant (the fair-share count). */
  private readonly byTenant = new Map<string, number>();
  private mainInFlight = 0;
  private slowInFlight = 0;
  /** Queued items that their endpoint blocked at the last schedule(). */
  private blockedCount = 0;
  /** The same, per tenant. */
  private blockedByTenant = new Map<string, number>();
  private readonly initialLimit: number;
  /** Subscriptions that had work parked -> their origin (see parkedSubscriptions()). */
  private readonly parkedSubs = new Map<string, string>();
  /** Consecutive overload signals per subscription (cleared by an answer). */
  private readonly failStreak = new Map<string, number>();
  /** Tenant -> clock() when its work was last pushed (see activeTenantMs). */
  private readonly lastPushed = new Map<string, number>();

  constructor(
    private readonly options: DispatchQueueOptions,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.initialLimit = Math.max(
      1,
      Math.min(options.initialEndpointLimit ?? options.connectionsPerOrigin, options.connectionsPerOrigin),
    );
  }

  /** Buffered, not started. */
  get length(): number {
    return this.queue.length;
  }
  /** Requests in flight, both pools. */
  get inFlight(): number {
    return this.mainInFlight + this.slowInFlight;
  }
  /** Requests in flight that count against `concurrency`. */
  get inFlightMain(): number {
    return this.mainInFlight;
  }
  get inFlightSlow(): number {
    return this.slowInFlight;
  }
  /** Queued items that wait for their own endpoint, not for a global slot. */
  get blocked(): number {
    return this.blockedCount;
  }
  /** Ids of deliveries in flight. */
  inFlightIds(): number[] {
    return [...this.running.keys()];
  }
  /** Endpoints currently SLOW. */
  slowEndpoints(): string[] {
    return [...this.endpoints].filter(([, e]) => e.slow).map(([o]) => o);
  }
  /** Whether a subscription has failed FAILING_AFTER times in a row (this relay's view). */
  failing(subscriptionId: string): boolean {
    return (this.failStreak.get(subscriptionId) ?? 0) >= FAILING_AFTER;
  }
  /** An endpoint's adaptive limit (for tests and logs); undefined when unknown. */
  endpointLimit(origin: string): number | undefined {
    return this.endpoints.get(origin)?.limit;
  }

  /**
   * Each tenant's load on the main pool: its requests in flight there plus its buffered work
   * that waits for a slot (not work its own endpoints block). The relay leaves a tenant
   * whose load is over twice its fair share out of fan-out (relay.ts), so that one tenant's
   * flood never fills the buffer that every tenant's fan-out depends on.
   */
  tenantLoads(): Map<string, number> {
    const m = this.activeTenants();
    for (const [t, n] of this.byTenant) m.set(t, (m.get(t) ?? 0) + n);
    for (const d of this.queue) m.set(d.tenantId, (m.get(d.tenantId) ?? 0) + 1);
    for (const [t, n] of this.blockedByTenant) m.set(t, (m.get(t) ?? 0) - n);
    return m;
  }

  /**
   * Tenants whose work was pushed within activeTenantMs, at 0. A tenant at a steady trickle
   * is mostly idle here (each delivery takes milliseconds) yet is not absent: without this,
   * another tenant looked alone at such instants, its fair share became every slot, and one
   * fan-out could fill the buffer with its work.
   */
  private activeTenants(): Map<string, number> {
    const now = this.clock();
    const window = this.options.activeTenantMs ?? 1_000;
    const m = new Map<string, number>();
    for (const [t, at] of this.lastPushed) {
      if (now - at <= window) m.set(t, 0);
      else this.lastPushed.delete(t);
    }
    return m;
  }

  /**
   * Tenants that hold at least their fair share (`concurrency / tenants holding any`) of the
   * relay: main-pool requests in flight plus everything buffered, work their own endpoints
   * block included. When the buffer is at its bound the relay still fans out every *other*
   * tenant, in small rounds (relay.ts), so a tenant's events never wait for the slots and
   * the buffer that another tenant's backlog holds — whatever holds that backlog.
   */
  tenantsAtShare(): string[] {
    const held = this.activeTenants();
    for (const [t, n] of this.byTenant) held.set(t, (held.get(t) ?? 0) + n);
    for (const d of this.queue) held.set(d.tenantId, (held.get(d.tenantId) ?? 0) + 1);
    const share = Math.max(1, Math.ceil(this.options.concurrency / Math.max(1, held.size)));
    return [...held].filter(([, n]) => n >= share).map(([t]) => t);
  }

  push(items: readonly T[]): void {
    if (items.length === 0) return;
    const now = this.clock();
    for (const d of items) {
      this.queue.push(d);
      this.lastPushed.set(d.tenantId, now);
    }
  }

  /** Empties the buffer (shutdown): returns what was never started. */
  drain(): T[] {
    const all = this.queue;
    this.queue = [];
    this.blockedCount = 0;
    this.blockedByTenant = new Map();
    return all;
  }

  private endpoint(origin: string, now: number): Endpoint {
    let e = this.endpoints.get(origin);
    if (!e) {
      e = { limit: this.initialLimit, inFlight: 0, slow: false, lastUsed: now };
      this.endpoints.set(origin, e);
    }
    return e;
  }

  /** MAIN requests older than slowAfterMs move to the slow pool; their endpoint turns SLOW. */
  private age(now: number): void {
    if (this.mainInFlight === 0) return;
    for (const r of this.running.values()) {
      if (r.pool !== 'main' || now - r.startedAt < this.options.slowAfterMs) continue;
      r.pool = 'slow';
      this.mainInFlight--;
      this.slowInFlight++;
      this.count(this.byTenant, r.item.tenantId, -1);
      if (r.item.origin !== '') this.endpoint(r.item.origin, now).slow = true;
    }
  }

  private count(map: Map<string, number>, key: string, by: number): void {
    const n = (map.get(key) ?? 0) + by;
    if (n > 0) map.set(key, n);
    else map.delete(key);
  }

  /**
   * Decides what starts now. `fullScan` (the poll tick) also looks at the whole buffer when
   * every slot is taken, to hand back stale and stuck work.
   */
  schedule(fullScan = false): ScheduleResult<T> {
    const now = this.clock();
    const o = this.options;
    this.age(now);
    const result: ScheduleResult<T> = { start: [], stale: [], deferred: [], parked: [] };
    const tenants = new Set<string>(this.byTenant.keys());
    for (const d of this.queue) tenants.add(d.tenantId);
    const share = Math.max(1, Math.ceil(o.concurrency / Math.max(1, tenants.size)));
    // Kept free even while one tenant is alone: a tenant whose work arrives while another
    // holds every main slot (hanging endpoints hold theirs until slowAfterMs) starts at once.
    const reserve = Math.floor(o.concurrency / 8);
    let blocked = 0;
    let blockedByTenant = new Map<string, number>();
    let skippedForShare = false;
    let rest: T[] = [];
    // Pass 1 keeps each tenant within its share; pass 2 hands out what is left.
    for (const pass of [1, 2] as const) {
      if (pass === 2 && !skippedForShare) break;
      rest = [];
      blocked = 0;
      blockedByTenant = new Map();
      for (let i = 0; i < this.queue.length; i++) {
        const d = this.queue[i] as T;
        const mainFull = this.mainInFlight >= o.concurrency;
        const slowFull = this.slowInFlight >= o.slowConcurrency;
        if (!fullScan && mainFull && slowFull) {
          // Nothing can start: keep the rest as it is.
          for (let j = i; j < this.queue.length; j++) rest.push(this.queue[j] as T);
          break;
        }
        if (now > d.claimedAt + o.staleAfterMs) {
          result.stale.push(d);
          continue;
        }
        const ep = d.origin === '' ? null : this.endpoint(d.origin, now);
        const subBusy = this.bySubscription.get(d.subscriptionId) ?? 0;
        const atLimit = ep !== null && ep.inFlight >= Math.min(ep.limit, o.connectionsPerOrigin);
        const subCapped = d.maxInFlight !== null && subBusy >= d.maxInFlight;
        // A slow endpoint with nothing in flight always gets one request (a probe), even with
        // the slow budget spent: otherwise an endpoint marked slow by one late answer could
        // never show it is fast again while other slow endpoints hold the budget.
        const probe = ep?.slow === true && ep.inFlight === 0;
        if (atLimit || subCapped || (ep?.slow && slowFull && !probe)) {
          // Work for an endpoint known to be slow or failing is handed back at once, for a
          // while; work for one at its ceiling (or max_in_flight) after saturatedWaitMs. An
          // endpoint still growing its limit (slow start) is merely busy: its work waits here.
          const stuck = subCapped || ep === null || ep.inFlight >= o.connectionsPerOrigin;
          if (ep?.slow || this.failing(d.subscriptionId)) this.park(d, result);
          else if (stuck && now - d.claimedAt > o.saturatedWaitMs) result.deferred.push(d);
          else {
            blocked++;
            this.count(blockedByTenant, d.tenantId, 1);
            rest.push(d);
          }
          continue;
        }
        if (this.failing(d.subscriptionId) && subBusy > 0) {
          // A failing subscription sends one request at a time (a probe); the rest is parked.
          this.park(d, result);
          continue;
        }
        const pool = ep?.slow ? 'slow' : 'main';
        if (pool === 'main') {
          if (mainFull) {
            rest.push(d);
            continue;
          }
          const held = this.byTenant.get(d.tenantId) ?? 0;
          const overShare = held >= share;
          // Beyond its share a tenant only gets slots while a reserve stays free for tenants
          // below theirs, whose next delivery then starts at once instead of waiting for a slot;
          // a tenant alone (its share is every slot) still leaves the reserve free.
          if (
            (overShare && (pass === 1 || this.mainInFlight >= o.concurrency - reserve)) ||
            (tenants.size === 1 && held >= o.concurrency - reserve)
          ) {
            skippedForShare = true;
            rest.push(d);
            continue;
          }
        }
        this.begin(d, pool, ep, now);
        result.start.push(d);
      }
      this.queue = rest;
    }
    this.blockedCount = blocked;
    this.blockedByTenant = blockedByTenant;
    if (fullScan) this.prune(now);
    if (this.failStreak.size > 100_000) this.failStreak.clear();
    return result;
  }

  private park(d: T, result: ScheduleResult<T>): void {
    result.parked.push(d);
    this.parkedSubs.set(d.subscriptionId, d.origin);
  }

  /**
   * Subscriptions whose work would be parked right now: their endpoint is slow with a
   * request still in flight, or they are failing with their probe in flight. Due claims
   * leave them out, so their backlog is not claimed only to be handed back again.
   */
  parkedSubscriptions(): string[] {
    const ids: string[] = [];
    for (const [sub, origin] of this.parkedSubs) {
      const ep = this.endpoints.get(origin);
      const held = (ep?.slow && ep.inFlight > 0) || (this.failing(sub) && (this.bySubscription.get(sub) ?? 0) > 0);
      if (held) ids.push(sub);
      else this.parkedSubs.delete(sub);
    }
    return ids;
  }

  private begin(d: T, pool: 'main' | 'slow', ep: Endpoint | null, now: number): void {
    this.running.set(d.deliveryId, { item: d, startedAt: now, pool });
    if (pool === 'main') {
      this.mainInFlight++;
      this.count(this.byTenant, d.tenantId, 1);
    } else this.slowInFlight++;
    this.count(this.bySubscription, d.subscriptionId, 1);
    if (ep) {
      ep.inFlight++;
      ep.lastUsed = now;
    }
  }

  /** A started request ended; `feedback` moves its endpoint's adaptive limit. */
  finish(d: T, feedback: Feedback): void {
    const r = this.running.get(d.deliveryId);
    if (!r) return;
    this.running.delete(d.deliveryId);
    const now = this.clock();
    if (r.pool === 'main') {
      this.mainInFlight--;
      this.count(this.byTenant, d.tenantId, -1);
    } else this.slowInFlight--;
    this.count(this.bySubscription, d.subscriptionId, -1);
    if (feedback === 'ok') this.failStreak.delete(d.subscriptionId);
    else if (feedback === 'overload') this.count(this.failStreak, d.subscriptionId, 1);
    if (d.origin === '') return;
    const ep = this.endpoint(d.origin, now);
    ep.inFlight = Math.max(0, ep.inFlight - 1);
    ep.lastUsed = now;
    const tookMs = now - r.startedAt;
    if (feedback === 'ok') {
      ep.limit = Math.min(this.options.connectionsPerOrigin, ep.limit + 1);
      if (tookMs < this.options.slowAfterMs) ep.slow = false;
    } else if (feedback === 'overload') {
      ep.limit = Math.max(1, Math.floor(ep.limit / 2));
    }
    if (tookMs >= this.options.slowAfterMs) ep.slow = true;
  }

  /**
   * Forgets endpoints idle for a while (nothing in flight, unused for IDLE_ENDPOINT_MS), with
   * their slow flag and lowered limit. A full schedule does it; the relay also calls it on
   * its poll tick, since with an empty buffer no full schedule runs and every origin ever
   * seen would stay.
   */
  pruneIdle(): void {
    this.prune(this.clock());
  }

  private prune(now: number): void {
    for (const [origin, e] of this.endpoints) {
      if (e.inFlight === 0 && now - e.lastUsed > IDLE_ENDPOINT_MS) this.endpoints.delete(origin);
    }
  }
}
