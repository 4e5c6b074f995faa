/**
 * Hostile payloads (issue #11 items 1–3, 6; #13's class instances): every one gets a
 * ValidationError naming the field and the rule, in bounded work, with nothing written.
 * The depth limit is the same in the TypeScript path and the SQL function; entities and
 * DTOs serialise as JSON.stringify writes them.
 */
import { createOutbox, MAX_PAYLOAD_DEPTH, ValidationError } from '@hookbox/outbox';
import { deliveryLog, recoverDead, stats } from '@hookbox/outbox/admin';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { countEvents, inRolledBackTx as inTx, useTestDatabase } from './harness/db.js';

const db = useTestDatabase();
const outbox = createOutbox();
const base = { tenantId: 't', type: 'a.b' };

/** `{"a":{"a":…1…}}` with the 1 `n` levels below the root; built without recursion. */
function deep(n: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < n; i++) v = { a: v };
  return v;
}
/** The same as JSON text, for the SQL path (JSON.stringify would overflow on very deep input). */
const deepJson = (n: number, inner = '1') => `${'{"a":'.repeat(n)}${inner}${'}'.repeat(n)}`;
const deepArrayJson = (n: number, inner = '1') => `${'['.repeat(n)}${inner}${']'.repeat(n)}`;

const inRolledBackTx = <T>(fn: (c: pg.PoolClient) => Promise<T>) => inTx(db.pool, fn);
const count = countEvents;

/** What `call` throws, and how many statements reached the database meanwhile. */
async function rejection(call: (ex: { query: pg.PoolClient['query'] }) => Promise<unknown>) {
  return inRolledBackTx(async (c) => {
    let sent = 0;
    const ex = {
      query: ((text: string, values?: unknown[]) => {
        sent++;
        return c.query(text, values);
      }) as pg.PoolClient['query'],
    };
    const err = await call(ex).then(
      () => undefined,
      (e: unknown) => e,
    );
    return { err, sent, rows: await count(c) };
  });
}

/** hookbox.enqueue's answer to `json` (null: accepted), in a rolled-back transaction. */
async function sqlEnqueue(json: string, maxBytes?: number): Promise<{ code?: string; message: string } | null> {
  return inRolledBackTx(async (c) => {
    if (maxBytes !== undefined) await c.query(`SET LOCAL hookbox.max_payload_bytes = '${maxBytes}'`);
    return c.query("SELECT hookbox.enqueue('t', 'a.b', $1::jsonb)", [json]).then(
      () => null,
      (e: { code?: string; message: string }) => e,
    );
  });
}

describe('deep nesting (#11.1)', () => {
  it(`the limit is ${MAX_PAYLOAD_DEPTH} levels, the same in TypeScript and SQL`, async () => {
    expect(MAX_PAYLOAD_DEPTH).toBe(64);
    await inRolledBackTx(async (c) => {
      await outbox.enqueue(c, { ...base, payload: deep(64) });
      await outbox.enqueue(c, { ...base, payload: [deep(63)] });
      expect(await count(c)).toBe(2);
    });
    expect(await sqlEnqueue(deepJson(64))).toBeNull();
    expect(await sqlEnqueue(deepArrayJson(64, '{}'))).toBeNull();

    const { err } = await rejection((ex) => outbox.enqueue(ex, { ...base, payload: deep(65) }));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err).toMatchObject({ rule: 'max_depth', field: `payload${'.a'.repeat(64)}` });
    expect((err as Error).message).toContain('64 levels');
    const sqlErr = await sqlEnqueue(deepJson(65));
    expect(sqlErr).toMatchObject({ code: '22023' });
    expect(sqlErr?.message).toContain('payload must not nest values more than 64 levels');
    expect(await sqlEnqueue(deepArrayJson(65))).toMatchObject({ code: '22023' });
  });

  it.each([5_000, 100_000])('%i levels: a ValidationError, not a stack overflow, nothing sent', async (n) => {
    const { err, sent, rows } = await rejection((ex) => outbox.enqueue(ex, { ...base, payload: deep(n) }));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err).toMatchObject({ code: 'HOOKBOX_INVALID_INPUT', rule: 'max_depth' });
    expect(sent).toBe(0);
    expect(rows).toBe(0);
  });

  it('deep arrays and deep toJSON results are measured too', async () => {
    let arr: unknown = 1;
    for (let i = 0; i < 10_000; i++) arr = [arr];
    const viaToJson = { toJSON: () => deep(100) };
    for (const payload of [arr, { x: viaToJson }]) {
      const { err } = await rejection((ex) => outbox.enqueue(ex, { ...base, payload }));
      expect(err).toMatchObject({ rule: 'max_depth' });
    }
  });

  it('the SQL function refuses 10,000 levels (it accepted them before)', async () => {
    for (const json of [deepJson(10_000), deepArrayJson(10_000, JSON.stringify('x'.repeat(1000)))]) {
      const err = await sqlEnqueue(json);
      expect(err).toMatchObject({ code: '22023' });
      expect(err?.message).toContain('64 levels');
    }
  });
});

describe('the SQL size check (#11.3)', () => {
  it("the issue's CPU-amplification payloads are refused for their depth", async () => {
    const big = JSON.stringify('x'.repeat(200_000));
    expect((await sqlEnqueue(deepJson(9000, big)))?.message).toContain('64 levels');
    expect((await sqlEnqueue(deepArrayJson(9000, big)))?.message).toContain('64 levels');
  });

  // The size check skips exact counting when jsonb's text form fits, and counts the spaces
  // outside strings only near the limit: strings holding ", " and ": " must not fool it.
  it.each([
    ['separators inside strings', (n: number) => ({ s: 'a, b: c'.repeat(n), l: [1, 2, 3] })],
    ['many members', (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]))],
    ['many elements', (n: number) => Array.from({ length: n }, (_, i) => i % 10)],
    ['quotes and backslashes', (n: number) => ({ s: '\\", "\\'.repeat(n), t: ['"', '\\'] })],
  ])('agrees with JSON.stringify byte for byte at the limit: %s', async (_name, make) => {
    const payload = make(30);
    const bytes = Buffer.byteLength(JSON.stringify(payload));
    const json = JSON.stringify(payload);
    expect(await sqlEnqueue(json, bytes)).toBeNull();
    const over = await sqlEnqueue(json, bytes - 1);
    expect(over).toMatchObject({ code: '22023' });
    expect(over?.message).toContain(`payload must be at most ${bytes - 1} bytes`);
    const ts = await rejection((ex) => createOutbox({ maxPayloadBytes: bytes - 1 }).enqueue(ex, { ...base, payload }));
    expect(ts.err).toMatchObject({ rule: 'max_bytes' });
    await inRolledBackTx((c) => createOutbox({ maxPayloadBytes: bytes }).enqueue(c, { ...base, payload }));
  });
});

describe('batch size in bytes (#11.2)', () => {
  it('maxBatchBytes is checked before anything is sent, and is documented in the error', async () => {
    const o = createOutbox({ maxBatchBytes: 1000 });
    const events = Array.from({ length: 10 }, () => ({ ...base, payload: { s: 'x'.repeat(142) } })); // 150 bytes each
    const { err, sent, rows } = await rejection((ex) => o.enqueueMany(ex, events));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err).toMatchObject({ field: 'events', rule: 'max_batch_bytes' });
    expect((err as Error).message).toContain('at most 1000 bytes');
    expect(sent).toBe(0);
    expect(rows).toBe(0);
    await inRolledBackTx(async (c) => {
      await o.enqueueMany(c, events.slice(0, 6));
      expect(await count(c)).toBe(6);
    });
  });

  it('the default is 32 MiB: 2,100 payloads of 262,000 bytes are refused without building them all', async () => {
    expect(outbox.options.maxBatchBytes).toBe(32 * 1024 * 1024);
    const payload = 'x'.repeat(262_000 - 2);
    const events = Array.from({ length: 2100 }, () => ({ ...base, payload }));
    const { err, sent } = await rejection((ex) => outbox.enqueueMany(ex, events));
    expect(err).toMatchObject({ rule: 'max_batch_bytes' });
    // The running total stops at the first event over the limit (128 × 262,000 > 32 MiB).
    expect((err as Error).message).toContain('events[0..128]');
    expect(sent).toBe(0);
  });

  it('rejects a bad maxBatchBytes option', () => {
    expect(() => createOutbox({ maxBatchBytes: 0 })).toThrow(
      expect.objectContaining({ field: 'options.maxBatchBytes', rule: 'positive_integer' }),
    );
  });
});

class Money {
  constructor(
    private readonly cents: number,
    private readonly currency: string,
  ) {}
  toJSON() {
    return `${(this.cents / 100).toFixed(2)} ${this.currency}`;
  }
}
class MessageEntity {
  id = 'm_1';
  body = 'hello';
  sentAt = new Date('2024-05-01T12:00:00Z');
  price = new Money(1250, 'EUR');
  attachments = [{ name: 'a.png' }];
  draft: string | undefined = undefined;
  get preview() {
    return this.body.slice(0, 2);
  }
  reply() {
    return 'not data';
  }
}
class ContactDto {
  constructor(
    public name: string,
    public tags: string[],
  ) {}
}

describe('class instances serialise as JSON.stringify writes them (#13.4)', () => {
  it('entities and DTOs: own enumerable properties, toJSON honoured, stored exactly as JSON.stringify writes', async () => {
    const payload = { message: new MessageEntity(), contact: new ContactDto('Ada', ['vip']) };
    await inRolledBackTx(async (c) => {
      const { id } = await outbox.enqueue(c, { ...base, payload });
      const stored = (await c.query('SELECT payload FROM hookbox.events WHERE id = $1', [id])).rows[0]?.payload;
      expect(stored).toEqual(JSON.parse(JSON.stringify(payload)));
      expect(stored).toEqual({
        message: {
          id: 'm_1',
          body: 'hello',
          sentAt: '2024-05-01T12:00:00.000Z',
          price: '12.50 EUR',
          attachments: [{ name: 'a.png' }],
        },
        contact: { name: 'Ada', tags: ['vip'] },
      });
    });
  });

  it('a class instance as the whole payload, and in enqueueMany', async () => {
    await inRolledBackTx(async (c) => {
      await outbox.enqueue(c, { ...base, payload: new ContactDto('Bo', []) });
      await outbox.enqueueMany(c, [{ ...base, payload: new MessageEntity() }]);
      expect(await count(c)).toBe(2);
    });
  });

  it('toJSON receives its key, as JSON.stringify passes it', async () => {
    const keyed = { toJSON: (key: string) => `key=${key}` };
    await inRolledBackTx(async (c) => {
      const { id } = await outbox.enqueue(c, { ...base, payload: { k: keyed, list: [keyed] } });
      const stored = (await c.query('SELECT payload FROM hookbox.events WHERE id = $1', [id])).rows[0]?.payload;
      expect(stored).toEqual({ k: 'key=k', list: ['key=0'] });
    });
  });

  class Holder {
    constructor(public value: unknown) {}
  }
  const cyclic = new Holder(null);
  cyclic.value = { back: cyclic };
  it.each([
    ['BigInt in an entity', new Holder(10n), 'payload.value', 'json'],
    ['a cycle through entities', cyclic, 'payload.value.back', 'json'],
    ['a function property', new Holder(() => 1), 'payload.value', 'json'],
    ['NaN in an entity', new Holder(Number.NaN), 'payload.value', 'json'],
    ['Infinity', new Holder(Number.POSITIVE_INFINITY), 'payload.value', 'json'],
    ['an invalid Date (#11.6)', { at: new Date('x') }, 'payload.at', 'json'],
    ['an invalid Date in an entity', new Holder(new Date(Number.NaN)), 'payload.value', 'json'],
    ['a Map in an entity', new Holder(new Map([['a', 1]])), 'payload.value', 'json'],
    ['a typed array', { bytes: new Uint8Array([1, 2]) }, 'payload.bytes', 'json'],
    ['toJSON returning undefined', { x: { toJSON: () => undefined } }, 'payload.x', 'json'],
    ['toJSON returning BigInt', { x: { toJSON: () => 1n } }, 'payload.x', 'json'],
  ])('still refused: %s', async (_name, payload, field, rule) => {
    const { err, sent } = await rejection((ex) => outbox.enqueue(ex, { ...base, payload }));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err).toMatchObject({ field, rule });
    expect(sent).toBe(0);
  });

  it('an invalid Date says so', async () => {
    const { err } = await rejection((ex) => outbox.enqueue(ex, { ...base, payload: { at: new Date('x') } }));
    expect((err as Error).message).toBe(
      'payload.at: must be JSON-serialisable: an invalid Date (JSON would write null)',
    );
  });
});

describe('time input: one behaviour everywhere (#11.6, #12.3)', () => {
  it.each([
    ['2024-02-30', '2024-02-30 does not exist'],
    ['2023-02-29T00:00:00Z', '2023-02-29 does not exist'],
    ['2024-04-31', '2024-04-31 does not exist'],
    ['275760-09-13T00:00:00Z', 'year must be from 0001 to 9999'],
    // Written in 9999 and 0001, but the zone carries them over the edge in UTC.
    ['9999-12-31T23:00:00-05:00', 'in UTC it falls outside the years 0001 to 9999'],
    ['0001-01-01T00:00:00+01:00', 'in UTC it falls outside the years 0001 to 9999'],
    ['2024-05-01T24:00:00Z', 'is not a time'],
  ])('%s is refused as a date by every reader', async (since, says) => {
    for (const call of [
      () => deliveryLog.listDeliveries(db.pool, { tenantId: 't', since }),
      () => deliveryLog.listEvents(db.pool, { tenantId: 't', since }),
      () => stats(db.pool, { tenantId: 't', since }),
      () => recoverDead(db.pool, { tenantId: 't', since, dryRun: true }),
    ]) {
      const err = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ValidationError);
      expect(err).toMatchObject({ field: 'since', rule: 'format' });
      expect((err as Error).message).toContain(says);
    }
  });

  it('recoverDead takes ISO strings as the log readers do, and the same order rule', async () => {
    const ok = await recoverDead(db.pool, {
      tenantId: 't',
      since: '2024-02-29',
      until: '2024-03-01T00:00:00Z',
      dryRun: true,
    });
    expect(ok.matched).toBe(0);
    const err = await recoverDead(db.pool, {
      tenantId: 't',
      since: '2024-03-02',
      until: '2024-03-01',
      dryRun: true,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ field: 'since', rule: 'order' });
  });
});
