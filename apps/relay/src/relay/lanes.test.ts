/** Parking and the side lane on a fake clock (lanes.ts). */
import { describe, expect, it } from 'vitest';
import { Lanes } from './lanes.js';

const PARK_MS = 5_000;
const SIDE_MS = 5_000;
const BATCH = 4;

function setup() {
  const clock = { now: 0 };
  const lanes = new Lanes({ parkMs: PARK_MS, sideLaneMs: SIDE_MS, sideLaneBatch: BATCH }, () => clock.now);
  return { lanes, clock };
}

const claims = (...tenants: string[]) => tenants.map((tenantId) => ({ tenantId }));

describe('Lanes: parked subscriptions', () => {
  it('leaves a parked subscription out for parkMs, then only while the queue still holds it', () => {
    const { lanes, clock } = setup();
    expect(lanes.parkedSubscriptions([])).toEqual([]);
    lanes.park('s1', 'a');
    clock.now = PARK_MS - 1;
    expect(lanes.parkedSubscriptions([])).toEqual(['s1']);
    clock.now = PARK_MS;
    // Time is up, but the queue still holds its work: still left out, and its tenant kept.
    expect(lanes.parkedSubscriptions(['s1'])).toEqual(['s1']);
    expect(lanes.sideTenants(['s1'])).toEqual(new Set(['a']));
    // Once the queue lets go, it is claimed again and its tenant leaves the side lane.
    expect(lanes.parkedSubscriptions([])).toEqual([]);
    expect(lanes.sideTenants([])).toEqual(new Set());
  });

  it('parking again extends the time from the new park', () => {
    const { lanes, clock } = setup();
    lanes.park('s1', 'a');
    clock.now = 4_000;
    lanes.park('s1', 'a');
    clock.now = PARK_MS + 1_000;
    expect(lanes.parkedSubscriptions([])).toEqual(['s1']);
    clock.now = 4_000 + PARK_MS;
    expect(lanes.parkedSubscriptions([])).toEqual([]);
  });

  it('passes through what the queue holds, once each', () => {
    const { lanes } = setup();
    lanes.park('s1', 'a');
    expect(lanes.parkedSubscriptions(['s2', 's1']).sort()).toEqual(['s1', 's2']);
  });
});

describe('Lanes: the side lane', () => {
  it('takes the tenant of parked work for sideLaneMs', () => {
    const { lanes, clock } = setup();
    lanes.park('s1', 'a');
    clock.now = SIDE_MS - 1;
    expect(lanes.sideTenants([])).toEqual(new Set(['a']));
    clock.now = SIDE_MS;
    expect(lanes.sideTenants([])).toEqual(new Set());
  });

  it('keeps a tenant whose circuit opened for the longer of sideLaneMs and the cooldown', () => {
    const { lanes, clock } = setup();
    lanes.circuitOpened('a', 20_000);
    lanes.circuitOpened('b', 100);
    lanes.circuitOpened('c', null);
    clock.now = SIDE_MS - 1;
    expect(lanes.sideTenants([])).toEqual(new Set(['a', 'b', 'c']));
    clock.now = SIDE_MS;
    expect(lanes.sideTenants([])).toEqual(new Set(['a']));
    clock.now = 20_000;
    expect(lanes.sideTenants([])).toEqual(new Set());
  });

  it('a shorter reason never cuts a longer stay short', () => {
    const { lanes, clock } = setup();
    lanes.circuitOpened('a', 20_000);
    clock.now = 1_000;
    lanes.park('s1', 'a');
    clock.now = 10_000;
    expect(lanes.sideTenants([])).toEqual(new Set(['a']));
  });

  it('sends a tenant with sideLaneBatch deliveries of a shared batch there, not the others', () => {
    const { lanes, clock } = setup();
    lanes.batchClaimed(claims('a', 'a', 'a', 'a', 'b'), 1);
    expect(lanes.sideTenants([])).toEqual(new Set(['a']));
    clock.now = SIDE_MS;
    expect(lanes.sideTenants([])).toEqual(new Set());
  });

  it('leaves alone a batch below sideLaneBatch, and a tenant that has the relay to itself', () => {
    const { lanes } = setup();
    lanes.batchClaimed(claims('a', 'a', 'a', 'b'), 2);
    expect(lanes.sideTenants([])).toEqual(new Set());
    // All of one tenant's, and no other tenant has work: nobody to keep waiting.
    lanes.batchClaimed(claims('a', 'a', 'a', 'a', 'a'), 1);
    expect(lanes.sideTenants([])).toEqual(new Set());
    // The same batch while another tenant has work in the relay: to the side lane.
    lanes.batchClaimed(claims('a', 'a', 'a', 'a', 'a'), 2);
    expect(lanes.sideTenants([])).toEqual(new Set(['a']));
  });
});
