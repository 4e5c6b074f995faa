/**
 * Bad input gets a ValidationError (stable code, field, rule) before any SQL is sent: no
 * row is written and the caller's transaction stays usable. The SQL function
 * `hookbox.enqueue` accepts and rejects the same tenant/type/key/size inputs.
 */
import { createOutbox, type EventInput, type Outbox, ValidationError } from '@hookbox/outbox';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { countEvents, inRolledBackTx as inTx, useTestDatabase } from './harness/db.js';

const db = useTestDatabase();
const SMALL_LIMIT = 64;
const outbox = createOutbox();
const small = createOutbox({ maxPayloadBytes: SMALL_LIMIT });

const inRolledBackTx = <T>(fn: (c: pg.PoolClient) => Promise<T>) => inTx(db.pool, fn);
const count = countEvents;

/** Wraps a client so a test can see whether any statement was sent. */
function spy(c: pg.PoolClient) {
  const s = {
    sent: [] as string[],
    query: (text: string, values?: unknown[]) => {
      s.sent.push(text);
      return c.query(text, values);
    },
  };
  return s;
}

/**
 * Expects `call` to throw a ValidationError naming `field` and `rule` without sending SQL,
 * then proves the transaction still works by writing a good event in it.
 */
async function expectRejected(
  call: (o: Outbox, ex: ReturnType<typeof spy>) => Promise<unknown>,
  field: string,
  rule: string,
  o: Outbox = outbox,
) {
  await inRolledBackTx(async (c) => {
    const ex = spy(c);
    const err = await call(o, ex).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ValidationError);
    expect(err).toMatchObject({ name: 'ValidationError', code: 'HOOKBOX_INVALID_INPUT', field, rule });
    expect((err as Error).message.startsWith(`${field}: `)).toBe(true);
    expect(ex.sent).toEqual([]);
    expect(await count(c)).toBe(0);
    await o.enqueue(c, { tenantId: 'ok', type: 'message.new', payload: {} });
    expect(await count(c)).toBe(1);
  });
}

const good = { tenantId: 'tenant-1', type: 'message.new', payload: { a: 1 } };
const cycle: Record<string, unknown> = { a: 1 };
cycle.self = cycle;
const deepCycle: { list: unknown[] } = { list: [] };
deepCycle.list.push({ back: deepCycle });

type Case = [string, Record<string, unknown>, string, string];
const cases: Case[] = [
  ['missing tenantId', { tenantId: undefined }, 'tenantId', 'required'],
  ['null tenantId', { tenantId: null }, 'tenantId', 'required'],
  ['non-string tenantId', { tenantId: 42 }, 'tenantId', 'required'],
  ['empty tenantId', { tenantId: '' }, 'tenantId', 'required'],
  ['whitespace tenantId', { tenantId: ' \t\n ' }, 'tenantId', 'required'],
  ['too-long tenantId', { tenantId: 't'.repeat(256) }, 'tenantId', 'max_length'],
  ['tenantId with NUL', { tenantId: 'a\u0000b' }, 'tenantId', 'nul'],
  ['tenantId with a lone surrogate', { tenantId: 'a\ud800' }, 'tenantId', 'unicode'],
  ['type Message.New', { type: 'Message.New' }, 'type', 'format'],
  ['type message..new', { type: 'message..new' }, 'type', 'format'],
  ['type message new', { type: 'message new' }, 'type', 'format'],
  ['type .x', { type: '.x' }, 'type', 'format'],
  ['type x.', { type: 'x.' }, 'type', 'format'],
  ['empty type', { type: '' }, 'type', 'format'],
  ['wildcard type', { type: 'message.*' }, 'type', 'format'],
  ['missing type', { type: undefined }, 'type', 'format'],
  ['type over 255 chars', { type: `${'a'.repeat(128)}.${'b'.repeat(127)}` }, 'type', 'max_length'],
  ['undefined payload', { payload: undefined }, 'payload', 'required'],
  ['BigInt payload', { payload: 10n }, 'payload', 'json'],
  ['BigInt inside', { payload: { n: 10n } }, 'payload.n', 'json'],
  ['a cycle', { payload: cycle }, 'payload.self', 'json'],
  ['a cycle through an array', { payload: deepCycle }, 'payload.list[0].back', 'json'],
  ['a function', { payload: { f: () => 1 } }, 'payload.f', 'json'],
  ['a function payload', { payload: () => 1 }, 'payload', 'json'],
  ['a symbol', { payload: { s: Symbol('x') } }, 'payload.s', 'json'],
  ['NaN', { payload: { n: Number.NaN } }, 'payload.n', 'json'],
  ['Infinity', { payload: { n: Number.POSITIVE_INFINITY } }, 'payload.n', 'json'],
  ['-Infinity in an array', { payload: [1, Number.NEGATIVE_INFINITY] }, 'payload[1]', 'json'],
  ['undefined in an array', { payload: [1, undefined] }, 'payload[1]', 'json'],
  ['a Map', { payload: new Map([['a', 1]]) }, 'payload', 'json'],
  ['a Set inside', { payload: { s: new Set([1]) } }, 'payload.s', 'json'],
  ['a class instance', { payload: { u: new URLSearchParams('a=1') } }, 'payload.u', 'json'],
  ['NUL in a value', { payload: { s: 'a\u0000b' } }, 'payload.s', 'nul'],
  ['NUL in a key', { payload: { 'k\u0000': 1 } }, 'payload.k\u0000', 'nul'],
  ['NUL in a top-level string', { payload: '\u0000' }, 'payload', 'nul'],
  ['a lone high surrogate', { payload: { s: 'x\ud83dy' } }, 'payload.s', 'unicode'],
  ['a lone low surrogate in a key', { payload: { '\ude00': 1 } }, 'payload.\ude00', 'unicode'],
  ['too-long idempotencyKey', { idempotencyKey: 'k'.repeat(256) }, 'idempotencyKey', 'max_length'],
  ['empty idempotencyKey', { idempotencyKey: '' }, 'idempotencyKey', 'max_length'],
  ['non-string idempotencyKey', { idempotencyKey: 7 }, 'idempotencyKey', 'type'],
  ['idempotencyKey with NUL', { idempotencyKey: 'k\u0000' }, 'idempotencyKey', 'nul'],
  ['non-string orderingKey', { orderingKey: 42 }, 'orderingKey', 'type'],
  ['empty orderingKey', { orderingKey: '' }, 'orderingKey', 'max_length'],
  // A misspelt key is refused, not ignored: the event would be written unordered, or
  // without idempotency.
  ['ordering_key (not a field)', { ordering_key: 'k1' }, 'ordering_key', 'unknown'],
  ['idempotencykey (not a field)', { idempotencykey: 'k1' }, 'idempotencykey', 'unknown'],
  ['an unknown key holding undefined', { tenant: undefined }, 'tenant', 'unknown'],
];

describe('enqueue rejects bad input before writing', () => {
  it.each(cases)('%s', async (_name, override, field, rule) => {
    const event = { ...good, ...override } as EventInput;
    await expectRejected((o, ex) => o.enqueue(ex, event), field, rule);
  });

  it('a non-object event', async () => {
    await expectRejected((o, ex) => o.enqueue(ex, null as never), 'event', 'required');
  });

  it('accepts the limits themselves', async () => {
    await inRolledBackTx(async (c) => {
      await outbox.enqueue(c, {
        tenantId: 't'.repeat(255),
        type: 'a'.repeat(255),
        payload: null,
        idempotencyKey: 'k'.repeat(255),
      });
      expect(await count(c)).toBe(1);
    });
  });
});

describe('payload size', () => {
  /** A payload whose JSON text is exactly `bytes` long: {"s":"…"} is 8 bytes plus the string. */
  const sized = (bytes: number, char = 'x') => ({ s: char.repeat((bytes - 8) / Buffer.byteLength(char)) });

  it('rejects a payload over maxPayloadBytes and accepts one at it', async () => {
    expect(Buffer.byteLength(JSON.stringify(sized(SMALL_LIMIT)))).toBe(SMALL_LIMIT);
    await inRolledBackTx(async (c) => {
      await small.enqueue(c, { ...good, payload: sized(SMALL_LIMIT) });
    });
    await expectRejected(
      (o, ex) => o.enqueue(ex, { ...good, payload: sized(SMALL_LIMIT + 1) }),
      'payload',
      'max_bytes',
      small,
    );
  });

  it('counts bytes, not characters', async () => {
    // 28 three-byte characters: 36 characters of JSON but 92 bytes.
    const wide = sized(8 + 28 * 3, '€');
    expect(JSON.stringify(wide).length).toBeLessThan(SMALL_LIMIT);
    await expectRejected((o, ex) => o.enqueue(ex, { ...good, payload: wide }), 'payload', 'max_bytes', small);
  });

  it('the default limit is 256 KiB', async () => {
    expect(outbox.options.maxPayloadBytes).toBe(262_144);
    await expectRejected((o, ex) => o.enqueue(ex, { ...good, payload: 'x'.repeat(262_144) }), 'payload', 'max_bytes');
  });
});

describe('createOutbox options', () => {
  it.each([
    ['an unknown option', { maxPayloadByte: 10 }, 'options.maxPayloadByte', 'unknown'],
    ['zero', { maxPayloadBytes: 0 }, 'options.maxPayloadBytes', 'positive_integer'],
    ['a fraction', { maxPayloadBytes: 1.5 }, 'options.maxPayloadBytes', 'positive_integer'],
    ['a string', { maxBatchSize: '10' }, 'options.maxBatchSize', 'positive_integer'],
  ])('rejects %s', (_name, options, field, rule) => {
    expect(() => createOutbox(options as never)).toThrow(ValidationError);
    expect(() => createOutbox(options as never)).toThrow(
      expect.objectContaining({ code: 'HOOKBOX_INVALID_INPUT', field, rule }),
    );
  });
});

describe('enqueueMany', () => {
  it('one bad event rejects the whole batch, naming events[i].field', async () => {
    const events = [good, { ...good, idempotencyKey: 'a' }, { ...good, type: 'Bad.Type' }, good];
    await expectRejected((o, ex) => o.enqueueMany(ex, events), 'events[2].type', 'format');
    const nested = [good, { ...good, payload: { deep: [{ n: 1n }] } }];
    await expectRejected((o, ex) => o.enqueueMany(ex, nested as EventInput[]), 'events[1].payload.deep[0].n', 'json');
  });

  it('an unknown key in one event rejects the whole batch, naming events[i].key', async () => {
    const events = [good, { ...good, orderingKey: 'k1' }, { ...good, ordering_key: 'k1' }, good];
    await expectRejected((o, ex) => o.enqueueMany(ex, events as EventInput[]), 'events[2].ordering_key', 'unknown');
    const typo = [good, { ...good, idempotencykey: 'k1' }];
    await expectRejected((o, ex) => o.enqueueMany(ex, typo as EventInput[]), 'events[1].idempotencykey', 'unknown');
  });

  it('rejects a batch over maxBatchSize', async () => {
    const events = Array.from({ length: 4 }, () => good);
    await expectRejected(
      (o, ex) => o.enqueueMany(ex, events),
      'events',
      'max_items',
      createOutbox({ maxBatchSize: 3 }),
    );
  });

  it('rejects a non-array', async () => {
    await expectRejected((o, ex) => o.enqueueMany(ex, good as never), 'events', 'type');
  });
});

/**
 * The same inputs through both paths. `field` null means accepted; otherwise the TypeScript
 * path names it in a ValidationError and SQL raises 22023 with a message naming it.
 */
type ParityCase = {
  name: string;
  tenantId?: string | null;
  type?: string;
  key?: string | null;
  orderingKey?: string | null;
  payload?: unknown;
  field: string | null;
};
const LIMIT = 100;
const ok = {
  tenantId: 'tenant-1',
  type: 'message.new',
  key: null as string | null,
  orderingKey: null as string | null,
  payload: { a: 1 } as unknown,
};
const parity: ParityCase[] = [
  { name: 'a good event', field: null },
  { name: 'null tenant', tenantId: null, field: 'tenantId' },
  { name: 'empty tenant', tenantId: '', field: 'tenantId' },
  { name: 'spaces tenant', tenantId: '   ', field: 'tenantId' },
  { name: 'tab/newline tenant', tenantId: '\t\n', field: 'tenantId' },
  { name: 'tenant at 255', tenantId: 't'.repeat(255), field: null },
  { name: 'tenant at 256', tenantId: 't'.repeat(256), field: 'tenantId' },
  { name: 'ideographic/no-break space tenant', tenantId: '\u3000\u00a0\ufeff', field: 'tenantId' },
  { name: 'zero-width space tenant (not whitespace)', tenantId: '\u200b', field: null },
  // Lengths count characters (code points), as Postgres's char_length does.
  { name: 'tenant of 255 emoji', tenantId: '😀'.repeat(255), field: null },
  { name: 'tenant of 256 emoji', tenantId: '😀'.repeat(256), field: 'tenantId' },
  { name: 'type Message.New', type: 'Message.New', field: 'type' },
  { name: 'type message..new', type: 'message..new', field: 'type' },
  { name: 'type message new', type: 'message new', field: 'type' },
  { name: 'type .x', type: '.x', field: 'type' },
  { name: 'empty type', type: '', field: 'type' },
  { name: 'type with a trailing newline', type: 'message.new\n', field: 'type' },
  { name: 'type with a non-ASCII letter', type: 'méssage.new', field: 'type' },
  { name: 'type with _ - and digits', type: 'flow_v2.step-1', field: null },
  { name: 'type at 255', type: `${'a'.repeat(127)}.${'b'.repeat(127)}`, field: null },
  { name: 'type at 256', type: `${'a'.repeat(128)}.${'b'.repeat(127)}`, field: 'type' },
  { name: 'key at 255', key: 'k'.repeat(255), field: null },
  { name: 'key at 256', key: 'k'.repeat(256), field: 'idempotencyKey' },
  { name: 'empty key', key: '', field: 'idempotencyKey' },
  { name: 'key of 255 emoji', key: '🔑'.repeat(255), field: null },
  { name: 'key of 256 emoji', key: '🔑'.repeat(256), field: 'idempotencyKey' },
  { name: 'ordering key', orderingKey: 'conversation:42', field: null },
  { name: 'ordering key at 255', orderingKey: 'k'.repeat(255), field: null },
  { name: 'ordering key of 255 emoji', orderingKey: '🔑'.repeat(255), field: null },
  { name: 'ordering key at 256', orderingKey: 'k'.repeat(256), field: 'orderingKey' },
  { name: 'ordering key of 256 emoji', orderingKey: '🔑'.repeat(256), field: 'orderingKey' },
  { name: 'empty ordering key', orderingKey: '', field: 'orderingKey' },
  { name: 'ordering key with a newline', orderingKey: 'a\nb', field: 'orderingKey' },
  { name: 'ordering key with DEL', orderingKey: 'a\u007fb', field: 'orderingKey' },
  { name: 'ordering key with a C1 control', orderingKey: 'a\u0085b', field: 'orderingKey' },
  { name: 'ordering key with a space and unicode', orderingKey: 'conversation 42 – ünïcode', field: null },
  // A JSON string has the same text in JSON.stringify and in jsonb's output.
  { name: `payload at ${LIMIT} bytes`, payload: 'x'.repeat(LIMIT - 2), field: null },
  { name: `payload over ${LIMIT} bytes`, payload: 'x'.repeat(LIMIT - 1), field: 'payload' },
  { name: 'payload far over the limit', payload: { list: Array.from({ length: 50 }, (_, i) => i) }, field: 'payload' },
];

/** Sends one input down both paths in one transaction; returns what each threw (null: accepted). */
async function bothPaths(c: pg.PoolClient, p: ParityCase) {
  const input = { ...ok, ...p };
  const tsErr = await createOutbox({ maxPayloadBytes: LIMIT })
    .enqueue(c, {
      tenantId: input.tenantId as string,
      type: input.type,
      payload: input.payload,
      idempotencyKey: input.key,
      orderingKey: input.orderingKey,
    })
    .then(
      () => null,
      (e: unknown) => e,
    );
  await c.query(`SET LOCAL hookbox.max_payload_bytes = '${LIMIT}'`);
  await c.query('SAVEPOINT before_sql');
  const sqlErr = await c
    .query('SELECT hookbox.enqueue($1, $2, $3::jsonb, $4, $5) AS id', [
      input.tenantId,
      input.type,
      JSON.stringify(input.payload),
      input.key,
      input.orderingKey,
    ])
    .then(
      () => null,
      (e: { code?: string; message: string }) => e,
    );
  await c.query('ROLLBACK TO SAVEPOINT before_sql');
  return { tsErr, sqlErr };
}

describe('the SQL function hookbox.enqueue validates like the TypeScript path', () => {
  it.each(parity)('$name', async (p) => {
    const { tsErr, sqlErr } = await inRolledBackTx((c) => bothPaths(c, p));
    if (p.field === null) {
      expect(tsErr).toBeNull();
      expect(sqlErr).toBeNull();
    } else {
      expect(tsErr).toMatchObject({ code: 'HOOKBOX_INVALID_INPUT', field: p.field });
      expect(sqlErr).toMatchObject({ code: '22023' });
      expect(sqlErr?.message).toContain(p.field);
    }
  });

  // Both paths measure compact JSON (the SQL side subtracts the spaces jsonb's text form
  // adds after ':' and ','), so an object exactly at the limit passes both.
  it('an object payload at the limit is accepted by both', async () => {
    const atLimit = { a: 'x'.repeat(LIMIT - 8) };
    expect(Buffer.byteLength(JSON.stringify(atLimit))).toBe(LIMIT);
    const { tsErr, sqlErr } = await inRolledBackTx((c) =>
      bothPaths(c, { name: 'at limit', payload: atLimit, field: null }),
    );
    expect(tsErr).toBeNull();
    expect(sqlErr).toBeNull();
  });
});
