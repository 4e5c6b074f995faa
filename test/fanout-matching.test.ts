/**
 * The relay's fan-out matches patterns in SQL (hookbox.matches_any) so that claiming,
 * matching and inserting deliveries is one statement. That function must agree with the
 * library's matchesEventType on every case — this test holds them together.
 */
import { matchesAny, matchesEventType } from '@hookbox/outbox';
import { describe, expect, it } from 'vitest';
import { catalogTypes } from './harness/catalog.js';
import { useTestDatabase } from './harness/db.js';

const db = useTestDatabase();

const patterns = [
  '*',
  'message.*',
  'message.new',
  'message.status.*',
  'conversation.*',
  'a.*',
  'a',
  'message',
  'messages.*',
  'x_y-z.*',
  'flow.completed',
];
const types = [
  ...catalogTypes(),
  'message',
  'messages.new',
  'message.status.read',
  'message.status',
  'a',
  'a.b',
  'ab.c',
  'x_y-z.q',
  'x_y-z',
  'hookbox.ping',
];

describe('hookbox.matches_any agrees with matchesEventType', () => {
  it('for every single pattern × type pair', async () => {
    const pairs = patterns.flatMap((p) => types.map((t) => [p, t] as const));
    const { rows } = await db.pool.query<{ p: string; t: string; m: boolean }>(
      `SELECT p, t, hookbox.matches_any(ARRAY[p], t) AS m FROM unnest($1::text[], $2::text[]) AS x(p, t)`,
      [pairs.map(([p]) => p), pairs.map(([, t]) => t)],
    );
    expect(rows).toHaveLength(pairs.length);
    const disagreements = rows.filter((r) => r.m !== matchesEventType(r.p, r.t));
    expect(disagreements).toEqual([]);
    // Both sides say yes sometimes and no sometimes (the comparison is not vacuous).
    expect(rows.some((r) => r.m)).toBe(true);
    expect(rows.some((r) => !r.m)).toBe(true);
  });

  it('for pattern lists, including the empty list', async () => {
    const lists = [[], ['message.new', 'contact.*'], ['*'], ['conversation.*', 'flow.completed'], ['message']];
    for (const list of lists) {
      const { rows } = await db.pool.query<{ t: string; m: boolean }>(
        'SELECT t, hookbox.matches_any($1::text[], t) AS m FROM unnest($2::text[]) AS t',
        [list, types],
      );
      for (const r of rows) expect({ list, t: r.t, m: r.m }).toEqual({ list, t: r.t, m: matchesAny(list, r.t) });
    }
  });
});
