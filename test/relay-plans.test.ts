/**
 * Planner trap: the relay prepares its hot statements once per connection. A plan cached
 * while the tables were empty must not stick once they have grown — a claim that fell back
 * to a sequential scan would cost hundreds of milliseconds per call on a large backlog.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claimDueDeliveries, fanOut, promoteHeads, recordOutcomes } from '../apps/relay/src/relay/sql.js';
import { useTestDatabase } from './harness/db.js';

const db = useTestDatabase();
let one: pg.Pool; // one connection, so every call reuses the same prepared statements

beforeAll(() => {
  one = new pg.Pool({ connectionString: db.url, max: 1, application_name: 'hookbox-relay-plans' });
});
afterAll(async () => {
  await one.end();
});

async function plan(statement: string, args: string): Promise<string> {
  const { rows } = await one.query(`EXPLAIN (COSTS OFF) EXECUTE ${statement}(${args})`);
  return rows.map((r) => r['QUERY PLAN']).join('\n');
}

describe('prepared relay statements', () => {
  it('use the pending-events and due-deliveries indexes after the tables grow', async () => {
    // Many executions on empty tables: Postgres settles on a cached generic plan.
    for (let i = 0; i < 10; i++) {
      expect((await fanOut(one, 100, 60_000)).events).toBe(0);
      expect(await claimDueDeliveries(one, 100, 60_000)).toEqual([]);
      await recordOutcomes(one, []);
      expect((await promoteHeads(one, [['p', 'k']], [1], true)).promoted).toBe(0);
    }
    // The backlog arrives: 30,000 events and 30,000 due deliveries.
    const { rows } = await db.pool.query<{ id: string }>(
      `INSERT INTO hookbox.subscriptions (tenant_id, url, event_types, secret)
       VALUES ('p', 'https://example.com/h', '{*}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw') RETURNING id`,
    );
    await db.pool.query(
      `INSERT INTO hookbox.events (tenant_id, type, payload, fanned_out_at)
       SELECT 'p', 'message.new', jsonb_build_object('n', g), CASE WHEN g % 2 = 0 THEN now() END
       FROM generate_series(1, 60000) g`,
    );
    await db.pool.query(
      `INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, next_attempt_at)
       SELECT e.id, $1, 'p', now() - interval '1 second' FROM hookbox.events e WHERE e.fanned_out_at IS NOT NULL`,
      [rows[0]?.id],
    );
    // No ANALYZE here: the plans must hold up even before autovacuum gets round to it.

    const fan = await plan('hookbox_fan_out_v9', "100, 60000, '{}', '', 0, '{}', NULL");
    expect(fan).toContain('events_pending_tenant_idx');
    expect(fan).not.toMatch(/Seq Scan on events/);
    // Ordered events: the deferral probe reads the tenant's pending events below the batch,
    // the head check only the key's pending numbered ones (events_pending_tenant_idx would
    // read every pending event of the tenant, once per ordered delivery).
    // ...bounded by that pos (not a walk through all of the tenant's pending events), as an
    // index scan or, once autovacuum has analysed the new rows, as a bitmap scan (seen in CI):
    const bounded = String.raw`Index Cond: \(\(tenant_id = ev0\.tenant_id\) AND \(pos < `;
    expect(fan).toMatch(
      new RegExp(
        String.raw`Index Scan using events_pending_tenant_idx on events pe\n\s+${bounded}|` +
          String.raw`Bitmap Heap Scan on events pe\n(?:\s+(?:Recheck Cond|Filter): .*\n)*` +
          String.raw`\s+->  Bitmap Index Scan on events_pending_tenant_idx\n\s+${bounded}`,
      ),
    );
    expect(fan).toMatch(/Index (Only )?Scan using events_pending_numbered_idx on events pe_1/);
    const due = await plan('hookbox_claim_due_v7', "100, 60000, '{}', '{}'");
    expect(due).toContain('deliveries_due_idx');
    expect(due).not.toMatch(/Seq Scan on deliveries/);
    expect(due).toContain('events_pending_numbered_idx');
    expect(due).not.toContain('events_pending_tenant_idx');
    // Recording a batch looks each delivery up by primary key: never a scan of the pending
    // rows (the due index) or of the whole table, whose size grows with the backlog.
    const record = await plan(
      'hookbox_record_v6',
      `'{1,2}'::bigint[], '{1,1}'::int[], '{succeeded,succeeded}'::text[], '{0,0}'::bigint[], '{200,200}'::int[],
       '{NULL,NULL}'::text[], '{NULL,NULL}'::text[], ARRAY[now(), now()], '{1,1}'::int[], '{NULL,NULL}'::text[],
       ARRAY['${rows[0]?.id}', '${rows[0]?.id}']::uuid[], '{t,t}'::bool[], 2, 5, 30000, 300000, NULL, 'pending', '{t,t}'::bool[]`,
    );
    expect(record).not.toMatch(/Seq Scan on deliveries|deliveries_due_idx|Bitmap Heap Scan on deliveries/);
    // Promoting the successors of ordered deliveries reads only their keys' chains.
    const promote = await plan(
      'hookbox_promote_heads_v3',
      `'{p}'::text[], '{k}'::text[], '{1}'::bigint[], true, 60000, '{}'::uuid[], 100`,
    );
    expect(promote).toContain('deliveries_ordering_idx');
    expect(promote).toContain('events_pending_numbered_idx');
    expect(promote).not.toContain('events_pending_tenant_idx');
    expect(promote).not.toMatch(/Seq Scan on (deliveries|events)/);
  });

  it('fan-out reads pending events through the partial index while statistics still say all are pending', async () => {
    // A backlog analysed while every event was pending (a burst, then autovacuum), then
    // drained: the per-tenant pick must not walk events_tenant_id_idx past every fanned-out
    // event of the tenant (it did: ~340 buffers per tenant per batch after a 20,000-event
    // drain, since both indexes give (tenant_id, id) order and tie on those statistics).
    await db.pool.query(
      `INSERT INTO hookbox.events (tenant_id, type, payload)
       SELECT 'q' || (g % 8), 'message.new', jsonb_build_object('n', g) FROM generate_series(1, 40000) g`,
    );
    await db.pool.query('VACUUM ANALYZE hookbox.events');
    await db.pool.query('UPDATE hookbox.events SET fanned_out_at = now() WHERE payload @> \'{"n": 1}\' IS NOT TRUE');
    const fresh = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      for (let i = 0; i < 10; i++) await fanOut(fresh, 1, 60_000, { afterTenant: 'z' });
      const { rows } = await fresh.query(
        "EXPLAIN (COSTS OFF) EXECUTE hookbox_fan_out_v9(100, 60000, '{}', '', 0, '{}', NULL)",
      );
      const fan = rows.map((r) => r['QUERY PLAN']).join('\n');
      expect(fan).toContain('events_pending_tenant_idx');
      expect(fan).not.toContain('events_tenant_id_idx');
    } finally {
      await fresh.end();
    }
  });
  it('recording outcomes looks deliveries up by key after statistics said none was pending', async () => {
    // A drained table, analysed: statistics say no delivery is pending, so a generic plan
    // cached then costs the pending-only index at one row. Then a backlog builds up (an
    // endpoint that hangs): a plan that joined the batch against deliveries_due_idx read
    // every pending row for each batch of outcomes (seen: 20,014 rows for 14 outcomes).
    await db.pool.query("UPDATE hookbox.deliveries SET status = 'succeeded', completed_at = now()");
    await db.pool.query('VACUUM ANALYZE hookbox.deliveries');
    const fresh = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      const { rows: subs } = await db.pool.query<{ id: string }>('SELECT id FROM hookbox.subscriptions LIMIT 1');
      const sub = subs[0]?.id as string;
      const outcome = (id: number) => ({
        deliveryId: id,
        attempt: 1,
        subscriptionId: sub,
        status: 'succeeded' as const,
        delayMs: 0,
        statusCode: 200,
        errorClass: null,
        errorMessage: null,
        startedAt: new Date(),
        durationMs: 1,
        excerpt: null,
        attempted: true,
      });
      for (let i = 0; i < 10; i++) await recordOutcomes(fresh, [outcome(-1 - i), outcome(-100 - i)]);
      await db.pool.query(
        `INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, next_attempt_at)
         SELECT e.id, $1, 'p', now() FROM hookbox.events e WHERE e.tenant_id = 'p' LIMIT 20000`,
        [sub],
      );
      const { rows } = await fresh.query(
        `EXPLAIN (COSTS OFF) EXECUTE hookbox_record_v6(
           '{1,2}'::bigint[], '{1,1}'::int[], '{succeeded,succeeded}'::text[], '{0,0}'::bigint[], '{200,200}'::int[],
           '{NULL,NULL}'::text[], '{NULL,NULL}'::text[], ARRAY[now(), now()], '{1,1}'::int[], '{NULL,NULL}'::text[],
           ARRAY['${sub}', '${sub}']::uuid[], '{t,t}'::bool[], 2, 5, 30000, 300000, NULL, 'pending', '{t,t}'::bool[])`,
      );
      const record = rows.map((r) => r['QUERY PLAN']).join('\n');
      expect(record).toContain('deliveries_pkey on deliveries d');
      expect(record).not.toMatch(
        /Seq Scan on deliveries|deliveries_due_idx|deliveries_dead_idx|Bitmap Heap Scan on deliveries/,
      );
    } finally {
      await fresh.end();
    }
  });
});
