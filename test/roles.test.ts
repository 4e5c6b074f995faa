/**
 * docs/examples/roles.sql, as written: a relay role with its grants delivers (and records a
 * dead delivery, whose trigger writes an operational event); a service role with its grants
 * enqueues through the library and the SQL function, ordered and not, and reads nothing
 * else. docs/operations.md points at that file.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createOutbox, subscriptions } from '@hookbox/outbox';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useRelayFixture } from './harness/fixture.js';
import { enqueueEvents, startRelay, waitForAllFinal } from './harness/relay.js';

const { db, defer, tenant, receiver } = useRelayFixture();
const suffix = randomBytes(4).toString('hex');
const relayRole = `hookbox_relay_${suffix}`;
const serviceRole = `app_service_${suffix}`;
const PASSWORD = 'roles-test';

/** The file's database URL, as `role`. */
function urlAs(role: string): string {
  const u = new URL(db.url);
  u.username = role;
  u.password = PASSWORD;
  return u.toString();
}

beforeAll(async () => {
  for (const role of [relayRole, serviceRole]) {
    await db.pool.query(`CREATE ROLE ${role} LOGIN PASSWORD '${PASSWORD}'`);
  }
  const sql = readFileSync(new URL('../docs/examples/roles.sql', import.meta.url), 'utf8')
    .replaceAll('hookbox_relay', relayRole)
    .replaceAll('app_service', serviceRole);
  await db.pool.query(sql);
});
afterAll(async () => {
  for (const role of [relayRole, serviceRole]) {
    await db.pool.query(`DROP OWNED BY ${role}`).catch(() => {});
    await db.pool.query(`DROP ROLE IF EXISTS ${role}`);
  }
});

describe('docs/examples/roles.sql', () => {
  it('gives the relay what it needs: it delivers, retries, and records a dead delivery', async () => {
    const r = await receiver();
    r.on('/fail', { status: 500 });
    const t = tenant();
    await subscriptions.create(db.pool, { tenantId: t, url: r.url('/ok'), eventTypes: ['a.*'] });
    await subscriptions.create(db.pool, { tenantId: t, url: r.url('/fail'), eventTypes: ['a.*'] });
    await subscriptions.create(db.pool, { tenantId: t, url: r.url('/ops'), eventTypes: ['hookbox.*'] });
    const relay = startRelay(urlAs(relayRole));
    defer(() => relay.stop());
    const { rows: who } = await relay.pool.query('SELECT current_user');
    expect(who[0].current_user).toBe(relayRole);
    await enqueueEvents(db.pool, [{ tenantId: t, type: 'a.b', payload: { n: 1 } }]);
    // The failing one goes dead after its retries; its trigger enqueues hookbox.delivery.dead,
    // which the relay then delivers to /ops.
    await r.waitFor((all) => all.some((q) => q.path === '/ops'), { what: 'the operational event' });
    const rows = await waitForAllFinal(db.pool, { atLeast: 3, tenants: [t] });
    expect(rows.map((d) => d.status).sort()).toEqual(['dead', 'succeeded', 'succeeded']);
    const { rows: attempts } = await db.pool.query(
      'SELECT count(*)::int AS n FROM hookbox.delivery_attempts a JOIN hookbox.deliveries d ON d.id = a.delivery_id WHERE d.tenant_id = $1',
      [t],
    );
    expect(attempts[0].n).toBeGreaterThanOrEqual(5); // 1 + 3 attempts + 1
  });

  it('lets a service enqueue by every path, and read neither secrets nor the delivery log', async () => {
    const service = new pg.Pool({ connectionString: urlAs(serviceRole), max: 1 });
    defer(() => service.end());
    const { rows: who } = await service.query('SELECT current_user');
    expect(who[0].current_user).toBe(serviceRole);
    const t = tenant();
    const outbox = createOutbox({ preparedStatements: false });
    const client = await service.connect();
    try {
      await client.query('BEGIN');
      await outbox.enqueue(client, { tenantId: t, type: 'a.b', payload: { n: 1 } });
      await outbox.enqueue(client, { tenantId: t, type: 'a.b', payload: { n: 2 }, orderingKey: 'k' });
      await outbox.enqueueMany(client, [
        { tenantId: t, type: 'a.b', payload: { n: 3 }, orderingKey: 'k' },
        { tenantId: t, type: 'a.b', payload: { n: 4 }, idempotencyKey: 'once' },
      ]);
      const again = await outbox.enqueue(client, {
        tenantId: t,
        type: 'a.b',
        payload: { n: 4 },
        idempotencyKey: 'once',
      });
      expect(again.created).toBe(false);
      await client.query(`SELECT hookbox.enqueue($1, 'a.b', '{"n": 5}'::jsonb)`, [t]);
      await client.query(`SELECT hookbox.enqueue($1, 'a.b', '{"n": 6}'::jsonb, NULL, 'k')`, [t]);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM hookbox.events WHERE tenant_id = $1', [t]);
    expect(rows[0].n).toBe(6);
    for (const table of ['subscriptions', 'deliveries', 'delivery_attempts', 'api_keys']) {
      await expect(service.query(`SELECT 1 FROM hookbox.${table} LIMIT 1`)).rejects.toThrow(/permission denied/);
    }
  });
});
