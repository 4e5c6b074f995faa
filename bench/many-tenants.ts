/**
 * The many-tenants shape: 64 tenants × 2 subscriptions each (128 subscriptions, all on the
 * one receiver origin), ~300-byte payloads, the backlog written by 8 producers. The same
 * shape is what bench/peers.ts gives graphile-worker and pg-boss.
 */
import { createOutbox, subscriptions } from '@hookbox/outbox';
import type pg from 'pg';

export const TENANTS = 64;
export const PRODUCERS = 8;
/** Subscriptions per tenant: `/a` takes every type, `/b` takes `message.*`. */
export const ROUTES = [
  ['a', ['*']],
  ['b', ['message.*']],
] as const;

export const tenantId = (i: number) => `tenant-${String(i).padStart(2, '0')}`;
export const targetUrl = (port: number, tenant: number, route: string) =>
  `http://127.0.0.1:${port}/t${tenant}/${route}`;

/** A ~300-byte event payload (as JSON text). */
export function payload(n: number) {
  return {
    n,
    conversation: `conv-${(n * 7919) % 100_000}`,
    from: '+15550100',
    to: '+15550199',
    text: 'Hello from the many-tenants benchmark: a short chat message of the usual size.',
    channel: 'sms',
    segments: 1,
    tags: ['support', 'inbound'],
    sentAt: '2026-01-01T00:00:00.000Z',
  };
}

export async function createSubscriptions(pool: pg.Pool, port: number, secret: string): Promise<void> {
  for (let t = 0; t < TENANTS; t++) {
    for (const [route, eventTypes] of ROUTES) {
      await subscriptions.create(pool, {
        tenantId: tenantId(t),
        url: targetUrl(port, t, route),
        eventTypes: [...eventTypes],
        secret,
      });
    }
  }
}

/** Writes `events` events spread round-robin over the tenants, from PRODUCERS connections. */
export async function enqueueBacklog(pool: pg.Pool, events: number): Promise<void> {
  const outbox = createOutbox();
  let next = 0;
  await Promise.all(
    Array.from({ length: PRODUCERS }, async () => {
      while (next < events) {
        const from = next;
        next = Math.min(events, next + 250);
        const batch = Array.from({ length: next - from }, (_, j) => ({
          tenantId: tenantId((from + j) % TENANTS),
          type: 'message.new',
          payload: payload(from + j),
        }));
        await outbox.enqueueMany(pool, batch);
      }
    }),
  );
}
