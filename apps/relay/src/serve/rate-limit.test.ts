import { describe, expect, it } from 'vitest';
import { RateLimiter } from './rate-limit.js';

describe('RateLimiter', () => {
  it('allows a burst, then refills at the rate per minute, per key', () => {
    let now = 0;
    const limiter = new RateLimiter(60, 3, () => now); // one a second, bursts of three
    expect([1, 2, 3, 4].map(() => limiter.take('a').allowed)).toEqual([true, true, true, false]);
    expect(limiter.take('a').retryAfterSeconds).toBe(1);
    expect(limiter.take('b').allowed).toBe(true);
    now += 1_000;
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('a').allowed).toBe(false);
    now += 60_000;
    expect([1, 2, 3, 4].map(() => limiter.take('a').allowed)).toEqual([true, true, true, false]);
  });

  it('keeps at most maxKeys buckets, dropping the idlest', () => {
    let now = 0;
    const limiter = new RateLimiter(60, 1, () => now, 2);
    limiter.take('a');
    limiter.take('b');
    limiter.take('c'); // evicts a, whose bucket comes back full
    now += 1;
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('c').allowed).toBe(false);
  });
});
