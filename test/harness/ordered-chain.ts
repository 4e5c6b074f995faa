/**
 * One ordering key's chain of three events, fanned out to a subscription by hand: seq 1
 * finished (`succeeded`, or `dead` with its retries spent), seq 2 and 3 pending and parked
 * ('infinity') behind it, as the relay leaves them. Returns delivery ids by seq.
 */
import type { Outbox } from '@hookbox/outbox';
import type pg from 'pg';

export async function orderedChain(
  pool: pg.Pool,
  outbox: Outbox,
  {
    tenantId,
    subscriptionId,
    key,
    head,
  }: { tenantId: string; subscriptionId: string; key: string; head: 'succeeded' | 'dead' },
): Promise<Map<number, number>> {
  const ids = await outbox.enqueueMany(
    pool,
    [1, 2, 3].map((n) => ({ tenantId, type: 'thing.changed', payload: { key, n: String(n) }, orderingKey: key })),
  );
  const { rows } = await pool.query<{ id: string; ordering_seq: string }>(
    `WITH n AS (SELECT id, row_number() OVER (ORDER BY pos) AS seq FROM hookbox.events WHERE id = ANY($1::uuid[])),
     f AS (UPDATE hookbox.events e SET fanned_out_at = now(), ordering_seq = n.seq FROM n WHERE e.id = n.id
           RETURNING e.id, e.ordering_seq)
     INSERT INTO hookbox.deliveries
       (event_id, subscription_id, tenant_id, status, attempts, next_attempt_at, completed_at, last_error,
        ordering_key, ordering_seq)
     SELECT f.id, $2, $3, CASE WHEN f.ordering_seq = 1 THEN $5 ELSE 'pending' END,
            CASE WHEN f.ordering_seq = 1 THEN (CASE WHEN $5 = 'dead' THEN 3 ELSE 1 END) ELSE 0 END, 'infinity',
            CASE WHEN f.ordering_seq = 1 THEN now() END,
            CASE WHEN f.ordering_seq = 1 AND $5 = 'dead' THEN 'HTTP 500' END,
            $4, f.ordering_seq
     FROM f RETURNING id, ordering_seq`,
    [ids.map((i) => i.id), subscriptionId, tenantId, key, head],
  );
  return new Map(rows.map((r) => [Number(r.ordering_seq), Number(r.id)]));
}
