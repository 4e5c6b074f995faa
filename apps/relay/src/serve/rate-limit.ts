/**
 * A token bucket per key (an API key, a tenant's portal tokens, a client address that keeps
 * failing to authenticate): `perMinute` requests a minute on average, bursts of up to
 * `burst`. In memory, per process: a second `hookbox serve` has its own buckets.
 */
export interface RateLimitDecision {
  allowed: boolean;
  /** Seconds until one request would be allowed again (0 when allowed). */
  retryAfterSeconds: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly ratePerMs: number;

  constructor(
    readonly perMinute: number,
    readonly burst: number = Math.max(1, Math.ceil(perMinute / 6)),
    private readonly clock: () => number = Date.now,
    /** Buckets kept at most; the idle ones go first when full (they are full anyway). */
    private readonly maxKeys = 100_000,
  ) {
    this.ratePerMs = perMinute / 60_000;
  }

  /** Whether `key` could take a request now, without taking it. */
  peek(key: string): RateLimitDecision {
    const b = this.buckets.get(key);
    if (!b) return { allowed: true, retryAfterSeconds: 0 };
    const tokens = Math.min(this.burst, b.tokens + (this.clock() - b.at) * this.ratePerMs);
    if (tokens >= 1) return { allowed: true, retryAfterSeconds: 0 };
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - tokens) / this.ratePerMs / 1000)) };
  }

  take(key: string): RateLimitDecision {
    const now = this.clock();
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(this.burst, b.tokens + (now - b.at) * this.ratePerMs);
      b.at = now;
      // Most recently used last, so eviction takes the idlest.
      this.buckets.delete(key);
      this.buckets.set(key, b);
    } else {
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
      b = { tokens: this.burst, at: now };
      this.buckets.set(key, b);
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { allowed: true, retryAfterSeconds: 0 };
    }
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / this.ratePerMs / 1000)) };
  }
}
