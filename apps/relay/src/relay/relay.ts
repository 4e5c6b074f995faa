/**
 * The relay: fan-out, dispatch, record. Claim loops (the main one and the side lane for
 * tenants with parked, circuit-open or bursty work: pumpSide) take work in short statements
 * that lease it, the dispatch queue sends it with undici outside any transaction, and the
 * recorder writes the outcomes in batches, fenced by the claim's attempt number.
 */
import pRetry from 'p-retry';
import type pg from 'pg';
import type { Logger } from 'pino';
import { Agent, type Dispatcher } from 'undici';
import { Deadlines, sendAttempt } from '../delivery/http.js';
import { createAddressGuard } from '../delivery/ssrf.js';
import type { AttemptResult, RetryPolicy } from '../policy/retry.js';
import { clean, completeDispatch, type DeliveryOutcome, finalOutcome, prepareDispatch } from './dispatch.js';
import { DispatchQueue, type Feedback } from './dispatch-queue.js';
import { SignerCache } from './envelope.js';
import { Lanes } from './lanes.js';
import { Recorder } from './recorder.js';
import {
  type BreakerSettings,
  type ClaimedDelivery,
  claimDueDeliveries,
  disableSubscription,
  fanOut,
  hasUnfinishedWork,
  holdWhileProbing,
  promoteHeads,
  releaseClaims,
  resumeClosedCircuit,
  type SubscriptionChange,
  takeRateTokens,
} from './sql.js';
import { listenForWakeups, type Wakeup } from './wakeup.js';

/** At shutdown, how long to wait on the database (a claim landing, the last writes). */
const SHUTDOWN_DB_WAIT_MS = 15_000;

/** Once no retry is due, how long before the relay looks again while it is busy fanning out. */
const DUE_RECHECK_MS = 50;
/** How often a relay looks for parked ordered deliveries whose wake-up was lost (a relay died). */
const ORDERING_SWEEP_MS = 5_000;
/** Buffered work that waited this long for a saturated endpoint is handed back... */
const SATURATED_WAIT_MS = 250;
/** ...for this long, before it is claimed again. */
const SATURATED_DEFER_MS = 1_000;
/**
 * An endpoint first seen may have this many requests in flight; each answered request
 * raises its limit by one, up to --connections-per-origin (slow start). An endpoint that
 * never answers so holds at most this many main slots until its requests turn slow.
 */
const INITIAL_ENDPOINT_LIMIT = 4;
/** The whole buffer, all tenants together, in rounds (× --concurrency). */
const MAX_BUFFER = 4;
/** After a claim that left full tenants out found nothing, how long before the next one (without a wake-up). */
const FULL_RECHECK_MS = 20;
/** Rounds (of --concurrency) of unwritten outcomes beyond which the relay claims nothing new. */
const UNWRITTEN_ROUNDS = 8;
/** Work for a slow or failing endpoint is handed back for this long, its subscription left out of due claims meanwhile. */
const PARK_MS = 5_000;
/**
 * A tenant with a parked or circuit-open subscription is fanned out in the side lane (see
 * pumpSide) for at least this long...
 */
const SIDE_LANE_MS = 5_000;
/** ...and so is a tenant that took this many deliveries of one main-lane batch next to other tenants. */
const SIDE_LANE_BATCH = 32;

/** Everything the relay loop needs to know; defaults live in apps/relay/src/config.ts. */
export interface RelayOptions {
  databaseUrl: string;
  /** Most HTTP requests in flight at once. */
  concurrency: number;
  /** Most events one fan-out claim takes. */
  batchSize: number;
  /** Poll period when no wake-up arrives, in ms. */
  pollIntervalMs: number;
  /** How long a claim is leased before another relay may take it over, in ms. */
  leaseMs: number;
  /** Total time allowed per HTTP attempt, in ms. */
  requestTimeoutMs: number;
  retry: RetryPolicy;
  /** CIDRs, IPs or hostnames the SSRF guard lets through. */
  allowPrivateNetwork: readonly string[];
  /** Refuse plain http:// endpoints. */
  requireHttps: boolean;
  /** Stop once nothing is pending and every delivery is final. */
  exitWhenIdle: boolean;
  /** How long shutdown waits for in-flight requests, in ms. */
  shutdownGraceMs: number;
  /** Response bytes kept in the delivery log. */
  maxResponseBytes: number;
  /** Keep-alive connections per endpoint origin; the ceiling of its adaptive concurrency. */
  connectionsPerOrigin: number;
  /** A request in flight this long marks its endpoint slow (see dispatch-queue.ts), in ms. */
  slowAfterMs: number;
  /** Requests in flight at once to slow endpoints, all of them together. */
  slowConcurrency: number;
  /** Sent as `user-agent`. */
  userAgent: string;
  /** The circuit breaker and auto-disable, shared through the database (README "Fairness"). */
  breaker: BreakerSettings;
}

/** Hooks for metrics; every one is optional and must not throw. */
export interface RelayObserver {
  /** A fan-out batch: events with and without a matching subscription, and the tenants they came from. */
  fannedOut?(matchedEvents: number, unmatchedEvents: number, tenants: readonly string[]): void;
  attempt?(d: ClaimedDelivery, result: AttemptResult, durationMs: number): void;
  outcome?(d: ClaimedDelivery, outcome: DeliveryOutcome): void;
  /** The dispatch queue's isolation state, on every poll tick. */
  isolation?(state: IsolationState): void;
  /** A subscription's circuit opened, reopened or closed, or it was auto-disabled (by this relay's write). */
  subscriptionChange?(change: SubscriptionChange): void;
}

/** How many endpoints this relay holds back (dispatch-queue.ts). */
export interface IsolationState {
  /** Endpoint origins marked slow. */
  slowEndpoints: number;
  /** Requests in flight to slow endpoints (outside --concurrency). */
  slowInFlight: number;
  /** Subscriptions whose work is parked (slow or failing endpoint). */
  parkedSubscriptions: number;
}

export interface RelayDeps {
  /** The relay's pool (a few connections: claims, outcome writes, admin). */
  db: pg.Pool;
  logger: Logger;
  options: RelayOptions;
  observer?: RelayObserver;
  /** Override the HTTP dispatcher (tests); default: an undici Agent behind the SSRF guard. */
  dispatcher?: Dispatcher;
}

export interface Relay {
  start(): void;
  /** Stops claiming, waits for in-flight requests (bounded), records, releases the rest. */
  stop(): Promise<void>;
  /** Resolves when the relay has stopped (after stop(), or when idle with exitWhenIdle). */
  readonly done: Promise<void>;
  readonly stats: { inFlight: number; queued: number; delivered: number; attempts: number };
}

export function createRelay({ db, logger, options, observer = {}, dispatcher }: RelayDeps): Relay {
  const guard = createAddressGuard(options.allowPrivateNetwork);
  const agent =
    dispatcher ??
    new Agent({
      connections: options.connectionsPerOrigin,
      keepAliveTimeout: 30_000,
      connect: guard.connector({ timeout: Math.min(options.requestTimeoutMs, 10_000) }),
    });
  const recorder = new Recorder(db, logger, undefined, undefined, options.breaker, (changes) => {
    for (const c of changes) onSubscriptionChange(c);
  });
  /** Ordered deliveries claimed here: when one reaches a final state, its successor is made due. */
  const orderedClaims = new Set<number>();
  let lastSweepAt = performance.now();
  recorder.afterWrite = async (batch) => {
    // Claims held back while outcomes piled up (see pump) go on as soon as a write lands.
    if (heldForRecorder && !claimsHeld()) {
      heldForRecorder = false;
      logger.info({ unwritten: recorder.backlog }, 'outcomes are being written again; claiming resumes');
      setImmediate(() => pump());
    }
    const finished: number[] = [];
    for (const o of batch) {
      if (!orderedClaims.delete(o.deliveryId)) continue;
      if (o.status !== 'pending') finished.push(o.deliveryId);
    }
    if (finished.length > 0) void requestPromote([], finished);
  };

  /** Promotions asked for while one runs: they go into the next statement (see requestPromote). */
  const promoteKeys = new Map<string, [string, string]>();
  const promoteIds = new Set<number>();
  /** The promotion loop, while it runs (stop() and the idle check wait for it). */
  let promoting: Promise<void> | null = null;
  /** The ordering sweep, while it runs (stop() waits for it: the heads it leases after stop are handed back). */
  let sweeping: Promise<void> | null = null;

  /**
   * Promotes in the background, one statement at a time: what is asked for while one runs
   * is gathered into the next. Neither the claim loop nor the outcome writes wait for it
   * (a fan-out that had to wait for its promotion held back the next fan-out, and so every
   * new event), and the relay's small pool never has more than one promotion in it. Not
   * fatal: the sweep covers a promotion that failed. Resolves when what was asked has run.
   * (The sweep runs apart, as before: on a large backlog it reads every parked delivery,
   * and the successors of finished heads must not wait behind it.)
   */
  function requestPromote(keys: [string, string][], deliveryIds: number[]): Promise<void> {
    for (const k of keys) promoteKeys.set(`${k[0]}\u0000${k[1]}`, k);
    for (const id of deliveryIds) promoteIds.add(id);
    if (promoting) return promoting;
    const run = async () => {
      try {
        while (promoteKeys.size > 0 || promoteIds.size > 0) {
          const keys = [...promoteKeys.values()];
          const ids = [...promoteIds];
          promoteKeys.clear();
          promoteIds.clear();
          await promote(keys, ids, false).catch((err) => logger.warn({ err }, 'promoting ordered deliveries failed'));
        }
      } finally {
        // In the same synchronous step as the loop's last check: a request made after it
        // starts a new loop.
        promoting = null;
      }
    };
    promoting = run();
    return promoting;
  }

  /**
   * Promotes the successors of finished ordered deliveries: those that fit in the buffer are
   * leased here and sent at once (no due claim); the rest are made due and claimed soon.
   */
  async function promote(keys: [string, string][], deliveryIds: number[], sweep: boolean): Promise<void> {
    const { promoted, claimed } = await pRetry(() => {
      const now = performance.now();
      return promoteHeads(db, keys, deliveryIds, sweep, {
        leaseMs: options.leaseMs,
        // Nothing is leased while outcomes cannot be written (see claimsHeld()).
        limit: running && !claimsHeld() ? Math.max(0, bufferRoom()) : 0,
        excludeSubscriptions: [...parkedSubscriptions(), ...rateWaiting(now)],
      });
    }, dbRetry('promote'));
    if (claimed.length > 0) {
      if (running) {
        for (const d of claimed) orderedClaims.add(d.deliveryId);
        queue.push(claimed);
        startQueued();
      } else {
        release(claimed, 0, 'promoted');
      }
    }
    if (promoted > claimed.length) {
      dueDrainedAt = Number.NEGATIVE_INFINITY;
      pump();
    }
  }
  /** Calls an observer hook. Observers must not throw; if one does, it changes nothing here. */
  function observe(call: () => void): void {
    try {
      call();
    } catch {
      // ignored: a metric or a log line must not change what is delivered or recorded
    }
  }
  const deadlines = new Deadlines();
  const signers = new SignerCache();
  // Subscriptions this relay disabled (410 Gone) -> performance.now() when the disable was
  // decided and again when it committed. Claims taken before that were loaded with
  // active = true and may still sit in the queue; they must not be sent.
  const goneAt = new Map<string, number>();
  // A buffered claim is only started while its lease still covers a whole attempt, with a
  // safety margin of up to 1 s — never all of the slack, or a lease only a little longer than
  // the request timeout (valid config) would make every claim stale and nothing would be sent.
  const slackMs = options.leaseMs - options.requestTimeoutMs;
  const queue = new DispatchQueue<ClaimedDelivery>({
    concurrency: options.concurrency,
    connectionsPerOrigin: options.connectionsPerOrigin,
    staleAfterMs: Math.max(0, slackMs - Math.min(1_000, slackMs / 2)),
    saturatedWaitMs: SATURATED_WAIT_MS,
    slowAfterMs: Math.min(options.slowAfterMs, options.requestTimeoutMs),
    slowConcurrency: options.slowConcurrency,
    initialEndpointLimit: Math.min(INITIAL_ENDPOINT_LIMIT, options.connectionsPerOrigin),
  });
  /** Rate-limited subscriptions whose window is spent -> performance.now() until which due claims skip them. */
  const rateWaitUntil = new Map<string, number>();
  /** Deliveries waiting for their subscription's rate tokens, per subscription (see takeRate). */
  const rateWaiters = new Map<string, { limit: number; waiters: ((delayMs: number) => void)[] }>();
  let rateFlushing = false;
  /** Rate-limited deliveries to hand back, by delay. */
  const rateDeferred = new Map<number, ClaimedDelivery[]>();
  /** Releases under way (stop() waits for them). */
  const releases = new Set<Promise<void>>();
  /** Set when shutdown cuts in-flight requests: their attempts are not the endpoint's fault. */
  let cutting = false;
  /** The last tenant the previous fan-out batch of each lane served: the next one starts after it. */
  const mainLane = { cursor: '' };
  const sideLane = { cursor: '' };
  /** Parked subscriptions and the side lane's tenants, by time (lanes.ts). */
  const lanes = new Lanes({ parkMs: PARK_MS, sideLaneMs: SIDE_LANE_MS, sideLaneBatch: SIDE_LANE_BATCH });
  /** The side lane's fan-out, while it runs. */
  let sideClaiming = false;
  /** When a claim that left full tenants out found nothing; and whether a wake-up came since. */
  let emptyFanOutAt = Number.NEGATIVE_INFINITY;
  let woken = false;
  /** pump() held claims back because outcomes could not be written (see pump). */
  let heldForRecorder = false;
  /** A wake-up or poll tick came since the last small round for tenants below their share (pumpUnderShare); whether that round found events. */
  let underShareWoken = false;
  let underShareFound = false;
  /** When a due-claim last came back short (nothing more was due then). */
  let dueDrainedAt = Number.NEGATIVE_INFINITY;
  /** How long the last due-claim took, in ms (see claim()). */
  let lastDueLookMs = 0;
  const stats = { inFlight: 0, queued: 0, delivered: 0, attempts: 0 };
  let running = false;
  let stopping: Promise<void> | null = null;
  let claiming = false;
  /** afterFinish() has a turn scheduled. */
  let finishPending = false;
  let again = false;
  let pollTimer: NodeJS.Timeout | null = null;
  let wakeup: Wakeup | null = null;
  let inFlightDrained: (() => void) | null = null;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => {
    resolveDone = r;
  });

  /** Claims more work when there is room for at least half a round (see below). */
  function pump(wakeup = false): void {
    if (wakeup) {
      woken = true;
      underShareWoken = true;
    }
    if (!running) return;
    if (claiming) {
      again = true;
      return;
    }
    // Outcomes that cannot be written: claim nothing new (see claimsHeld).
    if (claimsHeld()) {
      holdClaims();
      return;
    }
    // Buffer up to one more round beyond what is in flight, so the next claim overlaps the
    // deliveries under way instead of waiting for them (a claim is a few round trips).
    // Work waiting on a saturated endpoint, and requests of slow endpoints (they do not hold
    // main slots), do not count: fan-out never waits on them. Neither does the load of a
    // tenant over twice its fair share of the slots (in flight plus buffered): fan-out
    // leaves that tenant's events pending for now and goes on with the others, so one
    // tenant's flood never stops another tenant's fan-out. The tenants counted include those
    // whose work arrived in the last second (dispatch-queue.ts): a tenant that trickles is
    // not forgotten between its events. When the buffer is at its bound anyway (work waiting
    // for slots that hanging requests hold), pumpUnderShare still fans out the others.
    const { full, fullLoad } = fullTenants();
    const now = performance.now();
    // Tenants in the side lane are fanned out there, in parallel (pumpSide).
    const side = sideTenants();
    pumpSide(full, side);
    const skip = side.size > 0 ? [...new Set([...full, ...side])] : full;
    // A batch that left tenants out and found nothing else is not repeated at once: until a
    // wake-up or the poll tick, or FULL_RECHECK_MS later.
    if (skip.length > 0 && !woken && now - emptyFanOutAt < FULL_RECHECK_MS) return;
    woken = false;
    const free = bufferRoom(fullLoad);
    // Claim in rounds of at least half the concurrency: each round has a fixed cost in
    // round trips and planning, so fewer, fuller rounds deliver more per second.
    if (free < Math.max(1, Math.floor(options.concurrency / 2))) {
      pumpUnderShare();
      return;
    }
    claiming = true;
    again = false;
    claim(free, skip, true)
      .then((n) => {
        claiming = false;
        emptyFanOutAt = n === 0 && skip.length > 0 ? performance.now() : Number.NEGATIVE_INFINITY;
        // A full round means more is waiting: go again at once instead of waiting for a poll.
        if (n > 0 || again) setImmediate(pump);
        else if (options.exitWhenIdle) void checkIdle();
      })
      .catch((err) => {
        claiming = false;
        logger.error({ err }, 'claim failed; will retry on the next poll');
      });
  }

  /** Tenants over twice their fair share of the slots (in flight plus buffered), and their load (see pump). */
  function fullTenants(): { full: string[]; fullLoad: number } {
    const loads = queue.tenantLoads();
    const share = Math.ceil(options.concurrency / Math.max(1, loads.size));
    const full: string[] = [];
    let fullLoad = 0;
    for (const [tenant, load] of loads) {
      if (load >= 2 * Math.max(share, options.concurrency / 2)) {
        full.push(tenant);
        fullLoad += load;
      }
    }
    return { full, fullLoad };
  }

  /** The side lane's tenants now (lanes.ts). */
  function sideTenants(): Set<string> {
    return lanes.sideTenants(queue.parkedSubscriptions());
  }

  /**
   * The side lane: a second fan-out, on its own connection and in parallel with the main one,
   * that takes only the tenants in `side` (the main lane leaves them out). So a tenant whose
   * events insert many deliveries (hanging or failing endpoints, a burst to many endpoints:
   * 10 subscriptions × 200 events/s in the bench) never makes another tenant's new event
   * wait for that statement. Full tenants wait in both lanes.
   */
  function pumpSide(full: string[], side: Set<string>): void {
    if (!running || sideClaiming || side.size === 0) return;
    const fullSet = new Set(full);
    if ([...side].every((t) => fullSet.has(t))) return;
    if (claimsHeld()) {
      holdClaims();
      return;
    }
    const free = bufferRoom();
    if (free < 1) return;
    const only = [...side].filter((t) => !fullSet.has(t));
    sideClaiming = true;
    pRetry(
      () => fanOutBatch(Math.min(options.batchSize, free), parkedSubscriptions(), full, sideLane, only),
      dbRetry('fan-out'),
    )
      .then(({ claimed, events, orderingKeys }) => {
        sideClaiming = false;
        queue.push(claimed);
        startQueued();
        if (orderingKeys.length > 0) void requestPromote(orderingKeys, []);
        if (events > 0) setImmediate(() => pumpSide(fullTenants().full, sideTenants()));
      })
      .catch((err) => {
        sideClaiming = false;
        logger.error({ err }, 'side-lane fan-out failed; will retry on the next poll');
      });
  }

  /** Claims the buffer has room for: one round beyond what is in flight (see pump), never past MAX_BUFFER rounds. */
  function bufferRoom(fullLoad = 0): number {
    return Math.min(
      2 * options.concurrency - (queue.inFlightMain + queue.length - queue.blocked - fullLoad),
      MAX_BUFFER * options.concurrency - queue.length,
    );
  }

  /**
   * The buffer is at its bound: fan out, in a small round, the tenants below their fair
   * share (dispatch-queue.ts tenantsAtShare), so that fan-out never waits for slots that
   * another tenant's requests hold (hanging endpoints hold theirs until --slow-after). Runs
   * after a wake-up or the poll tick, or at once again when the last such round found events;
   * takes no due retries (they are not per tenant); the buffer stays within twice its bound.
   */
  function pumpUnderShare(): void {
    if (!underShareWoken && !underShareFound) return;
    if (queue.length >= 2 * MAX_BUFFER * options.concurrency) return;
    underShareWoken = false;
    claiming = true;
    again = false;
    const skip = [...new Set([...queue.tenantsAtShare(), ...sideTenants()])];
    claim(Math.max(1, Math.floor(options.concurrency / 8)), skip, false)
      .then((n) => {
        claiming = false;
        underShareFound = n > 0;
        if (n > 0 || again) setImmediate(pump);
      })
      .catch((err) => {
        claiming = false;
        underShareFound = false;
        logger.error({ err }, 'claim failed; will retry on the next poll');
      });
  }

  async function claim(free: number, skipTenants: string[], withDue: boolean): Promise<number> {
    const {
      claimed: fanned,
      events,
      orderingKeys,
    } = await pRetry(
      () => fanOutBatch(Math.min(options.batchSize, free), parkedSubscriptions(), skipTenants, mainLane),
      dbRetry('fan-out'),
    );
    // Start the fan-out's claims now: they neither wait for the due-claim below (a look that
    // must step over parked subscriptions' due rows can take tens of ms) nor are lost if it fails.
    queue.push(fanned);
    startQueued();
    // Ordered events: make due what this batch parked behind a head that has finished since
    // (see PROMOTE in sql.ts), in the background: the next fan-out does not wait for it.
    if (orderingKeys.length > 0) void requestPromote(orderingKeys, []);
    const room = Math.max(free - fanned.length, Math.ceil(free / 4));
    // Retries are scheduled seconds apart: while fan-out keeps the relay busy, look for
    // due ones at most every DUE_RECHECK_MS once a look found fewer than asked for — or
    // every 10× the last look's duration, up to the poll interval: the next fan-out waits
    // for this look, and a look gets slower while parked subscriptions' due rows, which it
    // must step over, pile up (a tenant's hanging endpoints: 8 of them at 200 events/s
    // took it from 2 to 20 ms in 10 s).
    const now = performance.now();
    const recheckMs = Math.min(options.pollIntervalMs, Math.max(DUE_RECHECK_MS, 10 * lastDueLookMs));
    // While outcomes cannot be written, claim no retries (claimsHeld()).
    const lookForDue = withDue && running && !claimsHeld() && now - dueDrainedAt >= recheckMs;
    const due = lookForDue
      ? await pRetry(
          () =>
            claimDueDeliveries(
              db,
              room,
              options.leaseMs,
              [...recorder.unwrittenIds(), ...queue.inFlightIds()],
              [...parkedSubscriptions(), ...rateWaiting(now)],
            ),
          dbRetry('claim'),
        )
      : [];
    if (lookForDue) {
      lastDueLookMs = performance.now() - now;
      dueDrainedAt = due.length < room ? now : Number.NEGATIVE_INFINITY;
    }
    for (const d of due) if (d.orderingKey !== null) orderedClaims.add(d.deliveryId);
    for (const d of due) if (d.probe) holdOthersWhileProbing(d);
    queue.push(due);
    startQueued();
    return events + due.length;
  }

  /** Unwritten outcomes beyond which no new work is claimed (see claimsHeld): several rounds' worth. */
  function maxUnwritten(): number {
    return Math.max(UNWRITTEN_ROUNDS * options.concurrency, 1_000);
  }

  /**
   * Whether outcomes cannot be written now: writes failing, or more than maxUnwritten()
   * waiting (a write stuck on a lock). Claim nothing then — no fan-out in either lane, no
   * due retries, no promoted heads: the outcomes would pile up in memory, and this relay's
   * own unwritten deliveries would come back due once their leases ran out and be sent
   * again. The write that lands resumes claiming (recorder.afterWrite).
   */
  function claimsHeld(): boolean {
    return !recorder.healthy || recorder.backlog > maxUnwritten();
  }

  function holdClaims(): void {
    if (heldForRecorder) return;
    heldForRecorder = true;
    logger.warn(
      { unwritten: recorder.backlog, writing: recorder.healthy },
      'outcomes are not being written; claiming nothing new until they are',
    );
  }

  /** Subscriptions claims leave out now: for PARK_MS, and then for as long as their endpoint still holds them (lanes.ts). */
  function parkedSubscriptions(): string[] {
    return lanes.parkedSubscriptions(queue.parkedSubscriptions());
  }

  /** Rate-limited subscriptions whose current window is spent: due claims leave them out until it ends. */
  function rateWaiting(now: number): string[] {
    const ids: string[] = [];
    for (const [id, until] of rateWaitUntil) {
      if (until > now) ids.push(id);
      else rateWaitUntil.delete(id);
    }
    return ids;
  }

  /**
   * A request for one of a rate-limited subscription's tokens, shared by every relay through
   * the database: resolves 0 when it may be sent now, else the delay after which to try again.
   * Requests of the same turn of the event loop are taken in one call per subscription; the
   * k-th one refused waits for the window in which its turn comes (k / limit seconds later),
   * so a backlog is handed back spread out, not all due at the next second.
   */
  function takeRate(d: ClaimedDelivery): Promise<number> {
    return new Promise((resolve) => {
      let entry = rateWaiters.get(d.subscriptionId);
      if (!entry) {
        entry = { limit: d.rateLimit ?? 1, waiters: [] };
        rateWaiters.set(d.subscriptionId, entry);
      }
      entry.waiters.push(resolve);
      if (!rateFlushing) {
        rateFlushing = true;
        setImmediate(flushRate);
      }
    });
  }

  function flushRate(): void {
    rateFlushing = false;
    const batch = [...rateWaiters];
    rateWaiters.clear();
    for (const [sub, { limit, waiters }] of batch) {
      pRetry(() => takeRateTokens(db, sub, waiters.length), dbRetry('rate limit'))
        .then(({ granted, waitMs }) => {
          if (granted < waiters.length) rateWaitUntil.set(sub, performance.now() + waitMs);
          for (const [i, w] of waiters.entries()) {
            w(i < granted ? 0 : waitMs + Math.floor((i - granted) / Math.max(1, limit)) * 1000);
          }
        })
        .catch((err) => {
          logger.warn({ err, subscriptionId: sub }, 'could not take rate-limit tokens; deferring');
          for (const w of waiters) w(1_000);
        });
    }
  }

  /** Hands a rate-limited delivery back unsent (no attempt spent), due after `delayMs`. */
  function deferForRate(d: ClaimedDelivery, delayMs: number): void {
    const group = rateDeferred.get(delayMs);
    if (group) {
      group.push(d);
      return;
    }
    rateDeferred.set(delayMs, [d]);
    setImmediate(() => {
      const claims = rateDeferred.get(delayMs) ?? [];
      rateDeferred.delete(delayMs);
      logger.debug({ deliveries: claims.length, delayMs }, 'rate limit reached; deferring');
      release(claims, delayMs, 'rate-limited');
    });
  }

  /** Claims pending events (fairly across tenants), matches them and inserts their deliveries already leased: one statement. */
  async function fanOutBatch(
    limit: number,
    parked: string[],
    skipTenants: string[],
    lane: { cursor: string },
    onlyTenants: string[] | null = null,
  ): Promise<{ claimed: ClaimedDelivery[]; events: number; orderingKeys: [string, string][] }> {
    // Deliveries of parked subscriptions are inserted unleased, due when the park ends.
    const t0 = performance.now();
    const { events, matched, claimed, lastTenant, orderingKeys, tenants } = await fanOut(db, limit, options.leaseMs, {
      afterTenant: lane.cursor,
      parkedSubscriptions: parked,
      parkMs: PARK_MS,
      skipTenants,
      onlyTenants,
    });
    if (events > 0) lane.cursor = lastTenant;
    for (const d of claimed) if (d.orderingKey !== null) orderedClaims.add(d.deliveryId);
    if (lane === mainLane) lanes.batchClaimed(claimed, queue.tenantLoads().size);
    if (events > 0) {
      observe(() => observer.fannedOut?.(matched, events - matched, tenants));
      logger.debug(
        {
          events,
          deliveries: claimed.length,
          unmatched: events - matched,
          parked: parked.length,
          ms: Math.round(performance.now() - t0),
        },
        'fanned out',
      );
    }
    return { claimed, events, orderingKeys };
  }

  function dbRetry(what: string) {
    return {
      retries: 5,
      minTimeout: 100,
      maxTimeout: 2_000,
      onFailedAttempt: ({ error, attemptNumber }: { error: Error; attemptNumber: number }) => {
        logger.warn({ err: error, attempt: attemptNumber }, `${what}: database error; retrying`);
      },
    };
  }

  /** Starts what the dispatch queue lets start, and hands back what it gives up on. */
  function startQueued(fullScan = false): void {
    if (!running) return;
    const slowBefore = queue.inFlightSlow;
    const { start, stale, deferred, parked } = queue.schedule(fullScan);
    stats.inFlight = queue.inFlight;
    stats.queued = queue.length;
    for (const d of start) {
      void deliverGuarded(d).then((feedback) => {
        queue.finish(d, feedback);
        stats.inFlight = queue.inFlight;
        stats.queued = queue.length;
        if (stats.inFlight === 0 && inFlightDrained) inFlightDrained();
        afterFinish();
      });
    }
    if (queue.inFlightSlow > slowBefore && logger.isLevelEnabled('debug')) {
      logger.debug({ slowEndpoints: queue.slowEndpoints() }, 'requests moved to the slow pool');
    }
    if (stale.length > 0) {
      logger.debug({ deliveries: stale.length }, 'claims too old to start; releasing them');
      release(stale, 0, 'stale');
    }
    if (deferred.length > 0) {
      logger.debug({ deliveries: deferred.length }, 'endpoint saturated or slow; deferring its extra claims');
      release(deferred, SATURATED_DEFER_MS, 'deferred');
    }
    if (parked.length > 0) {
      for (const d of parked) lanes.park(d.subscriptionId, d.tenantId);
      logger.debug({ deliveries: parked.length }, 'endpoint slow or failing; parking its claims');
      release(parked, PARK_MS, 'parked');
    }
  }

  /**
   * After requests finish: start what their slots allow and claim more, once for all the
   * requests that finished in the same turn of the event loop. Under load many answers land
   * in one turn; scheduling after each one scanned the whole buffer (and every tenant's
   * load) per delivery, ~10 % of the relay's CPU on the many-tenants shape.
   */
  function afterFinish(): void {
    if (finishPending) return;
    finishPending = true;
    setImmediate(() => {
      finishPending = false;
      startQueued();
      pump();
    });
  }

  /** A probe went out: the subscription's other due deliveries wait a cooldown more (sql.ts). */
  function holdOthersWhileProbing(d: ClaimedDelivery): void {
    const log = { subscriptionId: d.subscriptionId, tenantId: d.tenantId, deliveryId: d.deliveryId };
    logger.debug(log, 'circuit half-open: probing');
    const p = pRetry(() => holdWhileProbing(db, d.subscriptionId), dbRetry('hold'))
      .then((n) => (n > 0 ? logger.debug({ ...log, deliveries: n }, 'held while probing') : undefined))
      .catch((err) => logger.warn({ err, ...log }, 'could not hold deliveries while probing; claims hold them'))
      .finally(() => releases.delete(p));
    releases.add(p);
  }

  /** Logs a breaker transition or auto-disable; after a close, the held backlog is made due at once. */
  function onSubscriptionChange(c: SubscriptionChange): void {
    const log = { subscriptionId: c.subscriptionId, tenantId: c.tenantId, failureStreak: c.failureStreak };
    switch (c.change) {
      case 'opened':
      case 'reopened':
        lanes.circuitOpened(c.tenantId, c.cooldownMs);
        logger.warn(
          { ...log, cooldownMs: c.cooldownMs },
          c.change === 'opened'
            ? 'circuit opened: endpoint failing; its deliveries are held (no attempts spent) until a probe succeeds'
            : 'circuit probe failed; circuit open again with a longer cooldown',
        );
        break;
      case 'closed': {
        logger.info(log, 'circuit closed: probe succeeded; resuming held deliveries');
        const p = pRetry(() => resumeClosedCircuit(db, c.subscriptionId), dbRetry('resume'))
          .then((n) => logger.debug({ ...log, deliveries: n }, 'held deliveries resumed'))
          .catch((err) => logger.warn({ err, ...log }, 'could not resume held deliveries; they come due on their own'))
          .finally(() => releases.delete(p));
        releases.add(p);
        break;
      }
      case 'disabled':
        logger.warn(
          { ...log, reason: c.reason },
          'subscription auto-disabled: failing without a success for --disable-after; its pending deliveries are kept until it is enabled',
        );
        break;
    }
    observe(() => observer.subscriptionChange?.(c));
  }

  /** Hands claims back (attempt count restored); stop() waits for these before returning. */
  function release(claims: ClaimedDelivery[], delayMs: number, what: string): void {
    for (const d of claims) orderedClaims.delete(d.deliveryId);
    const p = pRetry(() => releaseClaims(db, claims, delayMs), dbRetry('release'))
      .then(() => undefined)
      .catch((err) => logger.warn({ err }, `could not release ${what} claims; their leases will expire`))
      .finally(() => releases.delete(p));
    releases.add(p);
  }

  /**
   * deliver() with a floor under it: a throw (a stored secret that no longer parses, a bug)
   * ends this delivery as dead with the error recorded, never the process.
   */
  async function deliverGuarded(d: ClaimedDelivery): Promise<Feedback> {
    try {
      return await deliver(d);
    } catch (err) {
      logger.error(
        { err, deliveryId: d.deliveryId, subscriptionId: d.subscriptionId },
        'delivery failed inside the relay',
      );
      recorder.add(finalOutcome(d, 'dead', 'internal', clean((err as Error)?.message ?? String(err))));
      observe(() => observer.outcome?.(d, 'dead'));
      return 'none';
    }
  }

  /** prepare → send → map the response to an outcome (pure) → record. */
  async function deliver(d: ClaimedDelivery): Promise<Feedback> {
    const log = {
      deliveryId: d.deliveryId,
      eventId: d.eventId,
      subscriptionId: d.subscriptionId,
      tenantId: d.tenantId,
      attempt: d.attempt,
    };
    // A rate-limited subscription's token first (shared by all relays), before signing.
    if (d.rateLimit !== null) {
      const delayMs = await takeRate(d);
      if (delayMs > 0) {
        deferForRate(d, delayMs);
        return 'none';
      }
      // The token may have taken long (its statement waited on a lock, or retried): a claim
      // whose lease no longer covers a whole attempt is handed back, not sent — another
      // relay may hold it by now.
      if (performance.now() - d.claimedAt > slackMs) {
        release([d], 0, 'stale');
        return 'none';
      }
    }
    const gone = goneAt.get(d.subscriptionId);
    const prepared = prepareDispatch(d, {
      signers,
      userAgent: options.userAgent,
      requireHttps: options.requireHttps,
      disabledSinceClaim: gone !== undefined && d.claimedAt <= gone,
    });
    if (prepared.kind === 'final') {
      if (prepared.observed === 'dead') logger.warn({ ...log }, `delivery refused: ${prepared.reason}`);
      recorder.add(prepared.outcome);
      observe(() => observer.outcome?.(d, prepared.observed));
      return 'none';
    }
    // A subscription's own timeout may shorten the relay's, never lengthen it: the lease
    // and the staleness check are sized for --request-timeout.
    const timeoutMs = Math.min(d.requestTimeoutMs ?? options.requestTimeoutMs, options.requestTimeoutMs);
    const attempt = await sendAttempt(agent, prepared.origin, prepared.path, prepared.headers, prepared.body, {
      timeoutMs,
      // The shared timer is a FIFO that holds only deadlines of the relay's own timeout: a
      // shorter one queued behind them would fire only when they do.
      ...(timeoutMs === options.requestTimeoutMs ? { deadlines } : {}),
      maxResponseBytes: options.maxResponseBytes,
      maxDrainBytes: 64 * 1024,
    });
    stats.attempts++;
    observe(() => observer.attempt?.(d, attempt.result, attempt.durationMs));
    const { decision, outcome, feedback } = completeDispatch(d, attempt, prepared.startedAt, retryPolicy(d), {
      cut: cutting,
    });
    recorder.add(outcome);
    const { statusCode: status, errorClass, durationMs } = outcome;
    // A refused hostname's resolved address: for operators (the delivery log leaves it out).
    const refused =
      attempt.result.kind === 'error' && attempt.result.address ? { address: attempt.result.address } : {};
    switch (decision.action) {
      case 'succeeded':
        stats.delivered++;
        logger.debug({ ...log, status, durationMs }, 'delivered');
        observe(() => observer.outcome?.(d, 'succeeded'));
        break;
      case 'retry':
        logger.info(
          { ...log, ...refused, status, errorClass, durationMs, retryInMs: outcome.delayMs },
          `attempt failed: ${decision.reason}; will retry`,
        );
        observe(() => observer.outcome?.(d, 'retry'));
        break;
      case 'dead':
        logger.warn({ ...log, ...refused, status, errorClass, durationMs }, `delivery dead: ${decision.reason}`);
        observe(() => observer.outcome?.(d, 'dead'));
        break;
      case 'disable': {
        logger.warn({ ...log, status, durationMs }, `subscription disabled: ${decision.reason}`);
        observe(() => observer.outcome?.(d, 'disabled'));
        goneAt.set(d.subscriptionId, performance.now());
        await pRetry(
          () => disableSubscription(db, d.subscriptionId, decision.reason, d.deliveryId),
          dbRetry('disable'),
        ).catch((err) => logger.error({ err, ...log }, 'could not disable subscription'));
        goneAt.set(d.subscriptionId, performance.now());
        break;
      }
    }
    return feedback;
  }

  /** The subscription's own retry schedule (its length is the budget), else the relay's. */
  function retryPolicy(d: ClaimedDelivery): RetryPolicy {
    const scheduleMs = d.retryScheduleMs;
    if (scheduleMs === null) return options.retry;
    return { ...options.retry, scheduleMs, maxAttempts: scheduleMs.length + 1 };
  }

  let checkingIdle = false;
  async function checkIdle(): Promise<void> {
    if (checkingIdle || !running || queue.inFlight > 0 || queue.length > 0) return;
    checkingIdle = true;
    try {
      await recorder.drain();
      // The promotions asked for by the outcomes just written: parked successors are not
      // work that hasUnfinishedWork sees until they are promoted.
      while (promoting) await promoting;
      if (queue.inFlight > 0 || queue.length > 0 || claiming || sideClaiming) return;
      if (!(await hasUnfinishedWork(db))) {
        logger.info({ delivered: stats.delivered, attempts: stats.attempts }, 'idle: nothing pending; exiting');
        await stop();
      }
    } catch (err) {
      logger.warn({ err }, 'idle check failed');
    } finally {
      checkingIdle = false;
    }
  }

  // An idle pooled connection that drops (Postgres restarted, backend terminated) makes the
  // pool emit 'error'; with no listener that is an uncaught exception. The pool replaces the
  // connection, and claims and writes retry on their own, so logging is all that is needed.
  const onPoolError = (err: Error) => logger.warn({ err }, 'idle database connection lost; it will be replaced');

  function start(): void {
    if (running) return;
    running = true;
    db.on('error', onPoolError);
    wakeup = listenForWakeups(options.databaseUrl, () => pump(true), logger);
    pollTimer = setInterval(() => {
      // Re-sort the buffer on every tick too: work stuck behind a slow endpoint is handed
      // back here even when no delivery finishes to trigger it.
      if (queue.length > 0) startQueued(true);
      else queue.pruneIdle();
      // A 410's disable time matters only to claims taken before it, which are stale a lease later.
      for (const [subscriptionId, at] of goneAt) {
        if (performance.now() - at > options.leaseMs) goneAt.delete(subscriptionId);
      }
      pump(true);
      if (performance.now() - lastSweepAt >= ORDERING_SWEEP_MS) {
        lastSweepAt = performance.now();
        if (!sweeping) {
          sweeping = promote([], [], true)
            .catch((err) => logger.warn({ err }, 'ordering sweep failed'))
            .finally(() => {
              sweeping = null;
            });
        }
      }
      try {
        observer.isolation?.({
          slowEndpoints: queue.slowEndpoints().length,
          slowInFlight: queue.inFlightSlow,
          parkedSubscriptions: parkedSubscriptions().length,
        });
      } catch {
        // Observers must not throw; if one does, it changes nothing here.
      }
    }, options.pollIntervalMs);
    logger.info(
      { concurrency: options.concurrency, batchSize: options.batchSize, pollIntervalMs: options.pollIntervalMs },
      'relay started',
    );
    pump();
  }

  function stop(): Promise<void> {
    if (stopping) return stopping;
    stopping = (async () => {
      running = false;
      if (pollTimer) clearInterval(pollTimer);
      await wakeup?.close();
      // Let an in-progress claim land so its rows are either started or released (bounded:
      // with the database gone it would otherwise wait for TCP to give up).
      const claimDeadline = performance.now() + SHUTDOWN_DB_WAIT_MS;
      while ((claiming || sideClaiming) && performance.now() < claimDeadline) {
        await new Promise((r) => setTimeout(r, 5));
      }
      const unstarted = queue.drain();
      stats.queued = 0;
      const inFlightIdle = (ms: number) =>
        Promise.race([
          new Promise<void>((r) => {
            inFlightDrained = r;
            if (stats.inFlight === 0) r();
          }),
          new Promise((r) => setTimeout(r, ms).unref()),
        ]);
      if (stats.inFlight > 0) {
        logger.info({ inFlight: stats.inFlight, graceMs: options.shutdownGraceMs }, 'waiting for in-flight deliveries');
        await inFlightIdle(options.shutdownGraceMs);
      }
      if (!dispatcher && stats.inFlight > 0) {
        // Past the grace period, cut what is still in flight *before* the last recorder drain:
        // the cut attempts are recorded (as retries) while the pool is still open. Recording
        // them after stop() returned would retry forever against a closed pool and keep the
        // process alive.
        logger.warn({ inFlight: stats.inFlight }, 'grace period over; aborting in-flight deliveries');
        cutting = true;
        await (agent as Agent).destroy().catch(() => {});
        await inFlightIdle(1_000);
      }
      const drained = await Promise.race([
        recorder.drain().then(() => true),
        new Promise<false>((r) => setTimeout(() => r(false), SHUTDOWN_DB_WAIT_MS).unref()),
      ]);
      // Promotions under way or asked for by the last outcome writes: with the relay stopped,
      // the heads they lease are released at once (promote()), not sent.
      if (drained && (promoting || sweeping)) {
        const promoted = await Promise.race([
          (async () => {
            while (promoting || sweeping) await (promoting ?? sweeping);
            return true;
          })(),
          new Promise<false>((r) => setTimeout(() => r(false), SHUTDOWN_DB_WAIT_MS).unref()),
        ]);
        if (!promoted) logger.warn('promotion still running at shutdown; the ordering sweep will redo it');
      }
      if (!drained) {
        recorder.close();
        logger.error(
          { unwritten: recorder.unwrittenIds().length },
          'database unreachable at shutdown: outcomes not written; those deliveries are retried after their leases',
        );
      }
      if (unstarted.length > 0 && drained) {
        const released = await pRetry(() => releaseClaims(db, unstarted), dbRetry('release')).catch((err) => {
          logger.error({ err }, 'could not release unstarted claims; their leases will expire');
          return 0;
        });
        logger.info({ released }, 'released claims that were not started');
      }
      await Promise.allSettled([...releases]);
      if (!dispatcher) await (agent as Agent).close().catch(() => {});
      logger.info({ delivered: stats.delivered, attempts: stats.attempts }, 'relay stopped');
      db.off('error', onPoolError);
      resolveDone();
    })();
    return stopping;
  }

  return { start, stop, done, stats };
}
