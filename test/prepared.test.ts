/**
 * enqueue prepares its statement once per node-postgres connection (Postgres then skips
 * parse and plan on every call), and does not when told not to (PgBouncer < 1.21).
 */
import { createOutbox } from '@hookbox/outbox';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from './harness/db.js';

const db = useTestDatabase();

async function preparedOnConnection(useNamed: boolean): Promise<string[]> {
  const outbox = createOutbox({ preparedStatements: useNamed });
  const client = await db.pool.connect();
  try {
    await client.query('DEALLOCATE ALL');
    await client.query('BEGIN');
    const a = await outbox.enqueue(client, { tenantId: 'p', type: 'message.new', payload: { n: 1 } });
    const b = await outbox.enqueue(client, { tenantId: 'p', type: 'message.new', payload: { n: 2 } });
    await client.query('COMMIT');
    expect(a.id).not.toBe(b.id);
    const { rows } = await client.query<{ name: string }>('SELECT name FROM pg_prepared_statements ORDER BY name');
    return rows.map((r) => r.name);
  } finally {
    client.release(true);
  }
}

describe('prepared enqueue statement', () => {
  it('is prepared once on a pg connection by default and reused', async () => {
    expect(await preparedOnConnection(true)).toEqual(['hookbox_enqueue_v1']);
  });

  it('is not prepared with preparedStatements: false', async () => {
    expect(await preparedOnConnection(false)).toEqual([]);
  });

  it('rejects a non-boolean option', () => {
    expect(() => createOutbox({ preparedStatements: 'yes' as unknown as boolean })).toThrow(
      expect.objectContaining({ code: 'HOOKBOX_INVALID_INPUT', field: 'options.preparedStatements' }),
    );
  });
});
