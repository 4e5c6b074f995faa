/**
 * Which subscriptions the relay's claims leave out (parked) and which tenants its side lane
 * fans out, by time. No I/O and no timers: the relay reports what happened (work parked, a
 * circuit opened, a heavy batch) and asks before each claim; the clock is injected, so every
 * rule is unit-tested with a fake one (lanes.test.ts).
 *
 * A subscription is PARKED for `parkMs` after the dispatch queue gave up its work (its
 * endpoint slow or failing), and after that for as long as the queue still holds it
 * (`held`, DispatchQueue.parkedSubscriptions()): due claims, promotions and fan-out leave it
 * out meanwhile.
 *
 * A tenant is in the SIDE LANE — fanned out by a second claim loop, so a statement that
 * inserts hundreds of its deliveries is never the one another tenant's new event waits
 * for —
 *  - for `sideLaneMs` after one of its subscriptions was parked, and then while the queue
 *    still holds that subscription;
 *  - for `sideLaneMs`, or the circuit's cooldown when longer, after a circuit of its opened;
 *  - for `sideLaneMs` after it took `sideLaneBatch` or more deliveries of one main-lane batch
 *    shared with other tenants (a burst to many endpoints).
 * The main lane leaves side-lane tenants out; each entry ends by itself when its time is up.
 */

export interface LanesOptions {
  /** How long parked work's subscription is left out of claims. */
  parkMs: number;
  /** How long a tenant stays in the side lane after the last reason to put it there. */
  sideLaneMs: number;
  /** Deliveries of one shared main-lane batch that send their tenant to the side lane. */
  sideLaneBatch: number;
}

export class Lanes {
  /** Parked subscription -> clock() until which claims leave it out. */
  private readonly parkedUntil = new Map<string, number>();
  /** Parked subscription -> its tenant (kept while the queue still holds the subscription). */
  private readonly parkedTenant = new Map<string, string>();
  /** Tenant -> clock() until which it is fanned out in the side lane. */
  private readonly sideUntil = new Map<string, number>();

  constructor(
    private readonly options: LanesOptions,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /** The dispatch queue gave up this subscription's work: park it and side-lane its tenant. */
  park(subscriptionId: string, tenantId: string): void {
    const now = this.clock();
    this.parkedUntil.set(subscriptionId, now + this.options.parkMs);
    this.parkedTenant.set(subscriptionId, tenantId);
    this.extendSide(tenantId, now + this.options.sideLaneMs);
  }

  /** A circuit of this tenant's opened (or opened again) with this cooldown. */
  circuitOpened(tenantId: string, cooldownMs: number | null): void {
    this.extendSide(tenantId, this.clock() + Math.max(this.options.sideLaneMs, cooldownMs ?? 0));
  }

  /**
   * A main-lane batch claimed these deliveries; `tenantsWithWork` tenants have work in the
   * relay (DispatchQueue.tenantLoads()). Unless one tenant has the relay to itself (the batch
   * is all its and no other tenant has work), each tenant with `sideLaneBatch` or more of
   * them goes to the side lane.
   */
  batchClaimed(claimed: readonly { tenantId: string }[], tenantsWithWork: number): void {
    if (claimed.length < this.options.sideLaneBatch) return;
    const perTenant = new Map<string, number>();
    for (const d of claimed) perTenant.set(d.tenantId, (perTenant.get(d.tenantId) ?? 0) + 1);
    if (perTenant.size < 2 && tenantsWithWork < 2) return;
    const until = this.clock() + this.options.sideLaneMs;
    for (const [tenant, n] of perTenant) if (n >= this.options.sideLaneBatch) this.extendSide(tenant, until);
  }

  /** Subscriptions claims leave out now: parked ones, and those the queue still holds (`held`). */
  parkedSubscriptions(held: Iterable<string>): string[] {
    const now = this.clock();
    const ids = new Set(held);
    for (const [id, until] of this.parkedUntil) {
      if (until > now) ids.add(id);
      else this.parkedUntil.delete(id);
    }
    // A tenant is remembered while its subscription is parked or held, and no longer.
    for (const id of this.parkedTenant.keys()) if (!ids.has(id)) this.parkedTenant.delete(id);
    return [...ids];
  }

  /** The side lane's tenants now; a subscription the queue still holds (`held`) keeps its tenant there. */
  sideTenants(held: Iterable<string>): Set<string> {
    const now = this.clock();
    const tenants = new Set<string>();
    for (const [tenant, until] of this.sideUntil) {
      if (until > now) tenants.add(tenant);
      else this.sideUntil.delete(tenant);
    }
    for (const id of held) {
      const tenant = this.parkedTenant.get(id);
      if (tenant !== undefined) tenants.add(tenant);
    }
    return tenants;
  }

  private extendSide(tenantId: string, until: number): void {
    this.sideUntil.set(tenantId, Math.max(this.sideUntil.get(tenantId) ?? 0, until));
  }
}
