/**
 * Subscription management against a real PostgreSQL: tenant scoping of every function,
 * every validation rule, secret rotation, keyset pagination and transaction behaviour.
 */
import { randomUUID } from 'node:crypto';
import {
  activeSecrets,
  type CreateSubscriptionInput,
  matchesAny,
  NotFoundError,
  parseSecret,
  type SubscriptionRecord,
  subscriptions,
  ValidationError,
} from '@hookbox/outbox';
import { drizzle } from 'drizzle-orm/node-postgres';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from './harness/db.js';

const db = useTestDatabase();

const SECRET_A = `whsec_${Buffer.alloc(32, 1).toString('base64')}`;
const SECRET_B = `whsec_${Buffer.alloc(32, 2).toString('base64')}`;

let tenantSeq = 0;
/** A tenant of its own per test, so tests never see each other's rows. */
const newTenant = () => `tenant-${++tenantSeq}-${randomUUID().slice(0, 8)}`;

const base = (tenantId: string, extra: Partial<CreateSubscriptionInput> = {}): CreateSubscriptionInput => ({
  tenantId,
  url: 'https://example.com/hooks',
  eventTypes: ['message.*'],
  ...extra,
});

/** The row as stored, read independently of the library. */
async function rawRow(id: string): Promise<Record<string, unknown> | undefined> {
  const { rows } = await db.pool.query('SELECT * FROM hookbox.subscriptions WHERE id = $1', [id]);
  return rows[0];
}

async function countRows(): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM hookbox.subscriptions');
  return rows[0]!.n;
}

async function expectValidation(p: Promise<unknown>, field: string, rule: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ValidationError ${field}/${rule}`).toBeInstanceOf(ValidationError);
  expect((err as ValidationError).code).toBe('HOOKBOX_INVALID_INPUT');
  expect({ field: (err as ValidationError).field, rule: (err as ValidationError).rule }).toEqual({ field, rule });
}

async function expectNotFound(p: Promise<unknown>): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(NotFoundError);
  expect((err as NotFoundError).code).toBe('HOOKBOX_NOT_FOUND');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('create and get', () => {
  it('stores the subscription and returns it with a generated whsec_ secret', async () => {
    const tenantId = newTenant();
    const before = Date.now();
    const sub = await subscriptions.create(db.pool, {
      tenantId,
      url: 'https://Example.com',
      eventTypes: ['message.*', 'contact.created', 'message.*'],
      description: 'CRM sync',
      headers: { 'X-Api-Key': 'abc 123' },
      maxInFlight: 4,
    });
    expect(sub.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(sub.tenantId).toBe(tenantId);
    expect(sub.url).toBe('https://example.com/'); // normalised
    expect(sub.eventTypes).toEqual(['message.*', 'contact.created']); // de-duplicated, in order
    expect(sub.description).toBe('CRM sync');
    expect(sub.headers).toEqual({ 'X-Api-Key': 'abc 123' });
    expect(sub.maxInFlight).toBe(4);
    expect(sub.active).toBe(true);
    expect(sub.failureStreak).toBe(0);
    expect(sub.previousSecret).toBeNull();
    expect(sub.previousSecretExpiresAt).toBeNull();
    expect(sub.secret).toMatch(/^whsec_/);
    expect(parseSecret(sub.secret)).toHaveLength(32);
    expect(sub.createdAt).toBeInstanceOf(Date);
    expect(sub.createdAt.getTime()).toBeGreaterThanOrEqual(before - 5_000);
    expect(sub.createdAt.getTime()).toBeLessThanOrEqual(Date.now() + 5_000);

    const row = await rawRow(sub.id);
    expect(row).toMatchObject({
      tenant_id: tenantId,
      url: 'https://example.com/',
      event_types: ['message.*', 'contact.created'],
      secret: sub.secret,
      headers: { 'X-Api-Key': 'abc 123' },
      max_in_flight: 4,
      active: true,
    });
    expect(await subscriptions.get(db.pool, { tenantId, id: sub.id })).toEqual(sub);
  });

  it('generates a different secret each time and keeps a given one', async () => {
    const tenantId = newTenant();
    const a = await subscriptions.create(db.pool, base(tenantId));
    const b = await subscriptions.create(db.pool, base(tenantId));
    expect(a.secret).not.toBe(b.secret);
    const c = await subscriptions.create(db.pool, base(tenantId, { secret: SECRET_A }));
    expect(c.secret).toBe(SECRET_A);
    expect(c.headers).toEqual({});
    expect(c.description).toBeNull();
    expect(c.maxInFlight).toBeNull();
  });

  it('get: another tenant, an unknown id and a non-uuid are all NotFoundError', async () => {
    const tenantId = newTenant();
    const sub = await subscriptions.create(db.pool, base(tenantId));
    await expectNotFound(subscriptions.get(db.pool, { tenantId: newTenant(), id: sub.id }));
    await expectNotFound(subscriptions.get(db.pool, { tenantId, id: randomUUID() }));
    await expectNotFound(subscriptions.get(db.pool, { tenantId, id: 'not-a-uuid' }));
    await expectNotFound(subscriptions.get(db.pool, { tenantId, id: "'; DROP TABLE x; --" }));
    // Upper-case spelling of the same uuid finds it.
    expect((await subscriptions.get(db.pool, { tenantId, id: sub.id.toUpperCase() })).id).toBe(sub.id);
  });
});

describe('executors and transactions', () => {
  it('works with a drizzle database and returns the same shapes (dates as Date)', async () => {
    const tenantId = newTenant();
    const d = drizzle(db.pool);
    const sub = await subscriptions.create(d, base(tenantId, { headers: { 'X-A': '1' } }));
    expect(sub.createdAt).toBeInstanceOf(Date);
    expect(Math.abs(sub.createdAt.getTime() - Date.now())).toBeLessThan(60_000);
    const viaPool = await subscriptions.get(db.pool, { tenantId, id: sub.id });
    expect(await subscriptions.get(d, { tenantId, id: sub.id })).toEqual(viaPool);
    const rotated = await subscriptions.rotateSecret(d, { tenantId, id: sub.id, previousSecretTtlMs: 60_000 });
    expect(rotated.previousSecretExpiresAt).toBeInstanceOf(Date);
    expect(rotated.previousSecretExpiresAt!.getTime() - rotated.updatedAt.getTime()).toBe(60_000);
  });

  it('a rolled-back pg transaction leaves no subscription', async () => {
    const tenantId = newTenant();
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      const sub = await subscriptions.create(client, base(tenantId));
      // Visible inside the transaction…
      expect((await subscriptions.get(client, { tenantId, id: sub.id })).id).toBe(sub.id);
      await client.query('ROLLBACK');
      // …and gone after the rollback.
      expect(await rawRow(sub.id)).toBeUndefined();
      await expectNotFound(subscriptions.get(db.pool, { tenantId, id: sub.id }));
    } finally {
      client.release();
    }
  });

  it('a rolled-back drizzle transaction leaves no subscription; a committed one stays', async () => {
    const tenantId = newTenant();
    const d = drizzle(db.pool);
    let createdId = '';
    await expect(
      d.transaction(async (tx) => {
        createdId = (await subscriptions.create(tx, base(tenantId))).id;
        throw new Error('business rule failed');
      }),
    ).rejects.toThrow('business rule failed');
    expect(createdId).not.toBe('');
    expect(await rawRow(createdId)).toBeUndefined();

    const kept = await d.transaction(async (tx) => subscriptions.create(tx, base(tenantId)));
    expect(await rawRow(kept.id)).toBeDefined();
    expect((await subscriptions.list(db.pool, { tenantId })).items.map((s) => s.id)).toEqual([kept.id]);
  });
});

describe('list', () => {
  it('walks every row exactly once across pages, ordered by id, and only the tenant’s', async () => {
    const tenantId = newTenant();
    const other = newTenant();
    const created: string[] = [];
    for (let i = 0; i < 23; i++) created.push((await subscriptions.create(db.pool, base(tenantId))).id);
    for (let i = 0; i < 4; i++) await subscriptions.create(db.pool, base(other));

    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    do {
      const page = await subscriptions.list(db.pool, { tenantId, limit: 5, after });
      expect(page.items.length).toBeLessThanOrEqual(5);
      for (const s of page.items) expect(s.tenantId).toBe(tenantId);
      seen.push(...page.items.map((s) => s.id));
      after = page.nextCursor;
      pages++;
    } while (after && pages < 20);
    expect(pages).toBe(5);
    expect(seen).toHaveLength(23);
    expect(new Set(seen).size).toBe(23);
    expect([...seen].sort()).toEqual([...created].sort());
    expect(seen).toEqual([...seen].sort()); // ordered by id

    // An exact fit has no next page; the default limit is 50.
    const all = await subscriptions.list(db.pool, { tenantId, limit: 23 });
    expect(all.items).toHaveLength(23);
    expect(all.nextCursor).toBeNull();
    expect((await subscriptions.list(db.pool, { tenantId })).items).toHaveLength(23);
  });

  it('filters by active', async () => {
    const tenantId = newTenant();
    const on = await subscriptions.create(db.pool, base(tenantId));
    const off = await subscriptions.create(db.pool, base(tenantId));
    await subscriptions.disable(db.pool, { tenantId, id: off.id, reason: 'maintenance' });
    const ids = async (active?: boolean) =>
      (await subscriptions.list(db.pool, { tenantId, ...(active === undefined ? {} : { active }) })).items.map(
        (s) => s.id,
      );
    expect(await ids(true)).toEqual([on.id]);
    expect(await ids(false)).toEqual([off.id]);
    expect((await ids()).sort()).toEqual([on.id, off.id].sort());
  });

  it('filters by event type with the same semantics as matchesAny', async () => {
    const tenantId = newTenant();
    const patternSets = [
      ['*'],
      ['message.*'],
      ['message.new'],
      ['message.status.*'],
      ['contact.created', 'message.read'],
      ['messages.*'],
      ['message_x.new'],
      ['hookbox.delivery.*'],
    ];
    const subs: SubscriptionRecord[] = [];
    for (const eventTypes of patternSets)
      subs.push(await subscriptions.create(db.pool, base(tenantId, { eventTypes })));
    // Another tenant's catch-all must never show up.
    await subscriptions.create(db.pool, base(newTenant(), { eventTypes: ['*'] }));

    const types = [
      'message.new',
      'message',
      'message.status.read',
      'contact.created',
      'messages.new',
      'flow.failed',
      'hookbox.delivery.dead',
    ];
    for (const type of types) {
      const got = (await subscriptions.list(db.pool, { tenantId, eventType: type })).items.map((s) => s.id).sort();
      const expected = subs
        .filter((s) => matchesAny(s.eventTypes, type))
        .map((s) => s.id)
        .sort();
      expect(got, type).toEqual(expected);
    }
    // Spot checks so the comparison above cannot pass vacuously.
    const by = async (type: string) =>
      (await subscriptions.list(db.pool, { tenantId, eventType: type })).items.map((s) => s.eventTypes.join(','));
    expect((await by('message.new')).sort()).toEqual(['*', 'message.*', 'message.new'].sort());
    expect(await by('message')).toEqual(['*']);
    expect((await by('message.status.read')).sort()).toEqual(['*', 'message.*', 'message.status.*'].sort());
    // `*` leaves out hookbox's operational events; only a pattern that names them matches.
    expect(await by('hookbox.delivery.dead')).toEqual(['hookbox.delivery.*']);
  });

  it('rejects bad list options', async () => {
    const tenantId = newTenant();
    await expectValidation(subscriptions.list(db.pool, { tenantId, limit: 0 }), 'limit', 'range');
    await expectValidation(subscriptions.list(db.pool, { tenantId, limit: 501 }), 'limit', 'range');
    await expectValidation(subscriptions.list(db.pool, { tenantId, limit: 2.5 }), 'limit', 'range');
    await expectValidation(subscriptions.list(db.pool, { tenantId, after: 'abc' }), 'after', 'format');
    await expectValidation(subscriptions.list(db.pool, { tenantId, eventType: 'message.*' }), 'eventType', 'format');
    await expectValidation(
      subscriptions.list(db.pool, { tenantId, active: 'yes' as unknown as boolean }),
      'active',
      'type',
    );
    await expectValidation(subscriptions.list(db.pool, { tenantId: '' }), 'tenantId', 'required');
    await expectValidation(
      subscriptions.list(db.pool, { tenantId, page: 2 } as unknown as { tenantId: string }),
      'page',
      'unknown',
    );
    expect((await subscriptions.list(db.pool, { tenantId, limit: 500 })).items).toEqual([]);
  });
});

describe('update, disable, enable, delete', () => {
  it('update changes only the given fields and bumps updatedAt', async () => {
    const tenantId = newTenant();
    const sub = await subscriptions.create(
      db.pool,
      base(tenantId, {
        description: 'old',
        headers: { 'X-A': '1' },
        maxInFlight: 3,
        rateLimit: 50,
        requestTimeoutMs: 5_000,
        retryScheduleMs: [5_000, 60_000],
      }),
    );
    expect(sub).toMatchObject({ rateLimit: 50, requestTimeoutMs: 5_000, retryScheduleMs: [5_000, 60_000] });
    await sleep(5);
    const u1 = await subscriptions.update(db.pool, {
      tenantId,
      id: sub.id,
      url: 'http://hooks.example.org:8080/in?x=1',
      eventTypes: ['contact.*'],
    });
    expect(u1.url).toBe('http://hooks.example.org:8080/in?x=1');
    expect(u1.eventTypes).toEqual(['contact.*']);
    expect(u1.description).toBe('old');
    expect(u1.headers).toEqual({ 'X-A': '1' });
    expect(u1.maxInFlight).toBe(3);
    expect(u1.rateLimit).toBe(50);
    expect(u1.secret).toBe(sub.secret);
    expect(u1.createdAt).toEqual(sub.createdAt);
    expect(u1.updatedAt.getTime()).toBeGreaterThan(sub.updatedAt.getTime());

    const u2 = await subscriptions.update(db.pool, {
      tenantId,
      id: sub.id,
      description: null,
      headers: {},
      maxInFlight: null,
      rateLimit: null,
      requestTimeoutMs: null,
      retryScheduleMs: null,
    });
    expect(u2).toMatchObject({
      description: null,
      headers: {},
      maxInFlight: null,
      rateLimit: null,
      requestTimeoutMs: null,
      retryScheduleMs: null,
      url: u1.url,
    });
    expect(await subscriptions.get(db.pool, { tenantId, id: sub.id })).toEqual(u2);
    await expectValidation(subscriptions.update(db.pool, { tenantId, id: sub.id }), 'update', 'required');
  });

  it('update active: false disables, true enables and resets the streak', async () => {
    const tenantId = newTenant();
    const sub = await subscriptions.create(db.pool, base(tenantId));
    const off = await subscriptions.update(db.pool, { tenantId, id: sub.id, active: false });
    expect(off.active).toBe(false);
    expect(off.disabledAt).toBeInstanceOf(Date);
    await db.pool.query('UPDATE hookbox.subscriptions SET failure_streak = 7 WHERE id = $1', [sub.id]);
    const on = await subscriptions.update(db.pool, { tenantId, id: sub.id, active: true });
    expect(on).toMatchObject({ active: true, disabledAt: null, disabledReason: null, failureStreak: 0 });
    // Setting active on an already active subscription leaves its streak alone.
    await db.pool.query('UPDATE hookbox.subscriptions SET failure_streak = 2 WHERE id = $1', [sub.id]);
    expect((await subscriptions.update(db.pool, { tenantId, id: sub.id, active: true })).failureStreak).toBe(2);
  });

  it('disable records the reason; enable clears it and the failure streak', async () => {
    const tenantId = newTenant();
    const sub = await subscriptions.create(db.pool, base(tenantId));
    // A lone surrogate is refused, not stored as U+FFFD.
    await expectValidation(
      subscriptions.disable(db.pool, { tenantId, id: sub.id, reason: 'a\ud800' }),
      'reason',
      'unicode',
    );
    expect(await rawRow(sub.id)).toMatchObject({ active: true, disabled_reason: null });
    const off = await subscriptions.disable(db.pool, { tenantId, id: sub.id, reason: 'endpoint retired' });
    expect(off).toMatchObject({ active: false, disabledReason: 'endpoint retired' });
    expect(off.disabledAt).toBeInstanceOf(Date);
    await sleep(5);
    // Disabling again updates the reason but keeps when it was first disabled.
    const again = await subscriptions.disable(db.pool, { tenantId, id: sub.id, reason: 'still retired' });
    expect(again.disabledReason).toBe('still retired');
    expect(again.disabledAt).toEqual(off.disabledAt);
    const noReason = await subscriptions.disable(db.pool, { tenantId, id: sub.id });
    expect(noReason.disabledReason).toBeNull();

    await db.pool.query('UPDATE hookbox.subscriptions SET failure_streak = 9 WHERE id = $1', [sub.id]);
    const on = await subscriptions.enable(db.pool, { tenantId, id: sub.id });
    expect(on).toMatchObject({ active: true, disabledReason: null, disabledAt: null, failureStreak: 0 });
    expect(await rawRow(sub.id)).toMatchObject({ active: true, disabled_reason: null, failure_streak: 0 });
  });

  it('delete removes the row; a second delete is NotFoundError', async () => {
    const tenantId = newTenant();
    const keep = await subscriptions.create(db.pool, base(tenantId));
    const sub = await subscriptions.create(db.pool, base(tenantId));
    expect(await subscriptions.delete(db.pool, { tenantId, id: sub.id })).toBeUndefined();
    expect(await rawRow(sub.id)).toBeUndefined();
    expect(await rawRow(keep.id)).toBeDefined();
    await expectNotFound(subscriptions.delete(db.pool, { tenantId, id: sub.id }));
    await expectNotFound(subscriptions.delete(db.pool, { tenantId, id: 'nope' }));
  });
});

describe('secret rotation', () => {
  it('keeps the previous secret signing until it expires, then only the new one', async () => {
    const tenantId = newTenant();
    const sub = await subscriptions.create(db.pool, base(tenantId, { secret: SECRET_A }));
    expect(activeSecrets(sub)).toEqual([SECRET_A]);

    const rotated = await subscriptions.rotateSecret(db.pool, { tenantId, id: sub.id, secret: SECRET_B });
    expect(rotated.secret).toBe(SECRET_B);
    expect(rotated.previousSecret).toBe(SECRET_A);
    // Default: 24 hours after the rotation (database clock).
    const expires = rotated.previousSecretExpiresAt!;
    expect(expires.getTime() - rotated.updatedAt.getTime()).toBe(24 * 60 * 60 * 1000);
    expect(await rawRow(sub.id)).toMatchObject({ secret: SECRET_B, previous_secret: SECRET_A });

    expect(activeSecrets(rotated)).toEqual([SECRET_B, SECRET_A]);
    expect(activeSecrets(rotated, new Date(expires.getTime() - 1))).toEqual([SECRET_B, SECRET_A]);
    expect(activeSecrets(rotated, expires)).toEqual([SECRET_B]);
    expect(activeSecrets(rotated, new Date(expires.getTime() + 60_000))).toEqual([SECRET_B]);
    expect(subscriptions.activeSecrets(rotated, new Date(expires.getTime() + 1))).toEqual([SECRET_B]);
  });

  it('a tiny ttl expires by the wall clock; a generated secret replaces the current one', async () => {
    const tenantId = newTenant();
    const sub = await subscriptions.create(db.pool, base(tenantId));
    const rotated = await subscriptions.rotateSecret(db.pool, { tenantId, id: sub.id, previousSecretTtlMs: 30 });
    expect(rotated.secret).not.toBe(sub.secret);
    expect(parseSecret(rotated.secret)).toHaveLength(32);
    expect(rotated.previousSecret).toBe(sub.secret);
    await sleep(60);
    const fresh = await subscriptions.get(db.pool, { tenantId, id: sub.id });
    expect(activeSecrets(fresh)).toEqual([rotated.secret]);
  });

  it('refuses rotating to the current secret and writes nothing', async () => {
    const tenantId = newTenant();
    const sub = await subscriptions.create(db.pool, base(tenantId, { secret: SECRET_A }));
    const before = await rawRow(sub.id);
    await expectValidation(
      subscriptions.rotateSecret(db.pool, { tenantId, id: sub.id, secret: SECRET_A }),
      'secret',
      'unchanged',
    );
    expect(await rawRow(sub.id)).toEqual(before);
  });

  it('rotating twice keeps only the latest previous secret', async () => {
    const tenantId = newTenant();
    const sub = await subscriptions.create(db.pool, base(tenantId, { secret: SECRET_A }));
    await subscriptions.rotateSecret(db.pool, { tenantId, id: sub.id, secret: SECRET_B });
    const twice = await subscriptions.rotateSecret(db.pool, { tenantId, id: sub.id });
    expect(twice.previousSecret).toBe(SECRET_B);
    expect(activeSecrets(twice)).toEqual([twice.secret, SECRET_B]);
  });
});

describe('tenant isolation: another tenant’s id is not found and the row is unchanged', () => {
  const cases: [string, (tenantId: string, id: string) => Promise<unknown>][] = [
    ['get', (tenantId, id) => subscriptions.get(db.pool, { tenantId, id })],
    ['update', (tenantId, id) => subscriptions.update(db.pool, { tenantId, id, url: 'https://evil.example/' })],
    ['update active', (tenantId, id) => subscriptions.update(db.pool, { tenantId, id, active: false })],
    ['disable', (tenantId, id) => subscriptions.disable(db.pool, { tenantId, id, reason: 'x' })],
    ['enable', (tenantId, id) => subscriptions.enable(db.pool, { tenantId, id })],
    ['delete', (tenantId, id) => subscriptions.delete(db.pool, { tenantId, id })],
    ['rotateSecret', (tenantId, id) => subscriptions.rotateSecret(db.pool, { tenantId, id, secret: SECRET_B })],
  ];
  for (const [name, call] of cases) {
    it(name, async () => {
      const owner = newTenant();
      const sub = await subscriptions.create(db.pool, base(owner, { secret: SECRET_A }));
      // A disabled row with a streak, so enable would visibly change it.
      await subscriptions.disable(db.pool, { tenantId: owner, id: sub.id, reason: 'owner' });
      await db.pool.query('UPDATE hookbox.subscriptions SET failure_streak = 3 WHERE id = $1', [sub.id]);
      const before = await rawRow(sub.id);
      await expectNotFound(call(newTenant(), sub.id));
      expect(await rawRow(sub.id)).toEqual(before);
      // The owner still reaches it with the same call shape.
      await call(owner, sub.id);
    });
  }

  it('list never returns another tenant’s subscriptions', async () => {
    const a = newTenant();
    const b = newTenant();
    await subscriptions.create(db.pool, base(a));
    expect((await subscriptions.list(db.pool, { tenantId: b })).items).toEqual([]);
    expect((await subscriptions.list(db.pool, { tenantId: b, eventType: 'message.new' })).items).toEqual([]);
  });
});

describe('validation: typed errors naming field and rule, nothing written', () => {
  const long = (n: number) => 'a'.repeat(n);
  const headers = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`X-H${i}`, 'v']));
  const createCases: [string, Partial<Record<keyof CreateSubscriptionInput | 'extra', unknown>>, string, string][] = [
    ['tenant missing', { tenantId: '' }, 'tenantId', 'required'],
    ['tenant too long', { tenantId: long(256) }, 'tenantId', 'max_length'],
    ['url missing', { url: undefined }, 'url', 'required'],
    ['url not a string', { url: 42 }, 'url', 'required'],
    ['url relative', { url: '/hooks' }, 'url', 'format'],
    ['url unparsable', { url: 'https://' }, 'url', 'format'],
    ['url with inner space', { url: 'https://exa mple.com/' }, 'url', 'format'],
    ['url with surrounding space', { url: ' https://example.com/' }, 'url', 'format'],
    ['url with newline', { url: 'https://example.com/\n' }, 'url', 'format'],
    ['url ftp', { url: 'ftp://example.com/x' }, 'url', 'scheme'],
    ['url javascript', { url: 'javascript:alert(1)' }, 'url', 'scheme'],
    ['url file', { url: 'file:///etc/passwd' }, 'url', 'scheme'],
    ['url with user', { url: 'https://user@example.com/' }, 'url', 'credentials'],
    ['url with user:pass', { url: 'https://user:pw@example.com/' }, 'url', 'credentials'],
    ['url too long', { url: `https://example.com/${long(2030)}` }, 'url', 'max_length'],
    ['events missing', { eventTypes: undefined }, 'eventTypes', 'required'],
    ['events empty', { eventTypes: [] }, 'eventTypes', 'required'],
    ['events not an array', { eventTypes: 'message.*' }, 'eventTypes', 'required'],
    ['event pattern uppercase', { eventTypes: ['message.*', 'Message.New'] }, 'eventTypes[1]', 'format'],
    ['event pattern inner star', { eventTypes: ['message.*.new'] }, 'eventTypes[0]', 'format'],
    ['event pattern bare prefix star', { eventTypes: ['message*'] }, 'eventTypes[0]', 'format'],
    ['event pattern not a string', { eventTypes: [3] }, 'eventTypes[0]', 'format'],
    ['too many patterns', { eventTypes: Array.from({ length: 101 }, (_, i) => `t${i}.x`) }, 'eventTypes', 'max_items'],
    ['secret without prefix', { secret: Buffer.alloc(32).toString('base64') }, 'secret', 'format'],
    ['secret not base64', { secret: 'whsec_!!!!' }, 'secret', 'format'],
    ['secret too short', { secret: `whsec_${Buffer.alloc(16).toString('base64')}` }, 'secret', 'key_length'],
    ['secret too long', { secret: `whsec_${Buffer.alloc(65).toString('base64')}` }, 'secret', 'key_length'],
    ['description too long', { description: long(1001) }, 'description', 'max_length'],
    ['description not a string', { description: 5 }, 'description', 'type'],
    ['description with NUL', { description: 'a\u0000b' }, 'description', 'nul'],
    // The driver wrote a lone surrogate as U+FFFD, silently.
    ['description with a lone surrogate', { description: 'a\ud800b' }, 'description', 'unicode'],
    ['headers not an object', { headers: ['X-A: 1'] }, 'headers', 'type'],
    ['header name not a token', { headers: { 'X A': '1' } }, 'headers.X A', 'name_format'],
    ['header name with colon', { headers: { 'X-A:': '1' } }, 'headers.X-A:', 'name_format'],
    ['header name too long', { headers: { [`X-${long(300)}`]: '1' } }, `headers.X-${long(300)}`, 'max_length'],
    [
      'header reserved webhook-*',
      { headers: { 'Webhook-Signature': 'v1,x' } },
      'headers.Webhook-Signature',
      'reserved',
    ],
    ['header reserved webhook-id lower', { headers: { 'webhook-id': 'x' } }, 'headers.webhook-id', 'reserved'],
    ['header reserved content-type', { headers: { 'Content-Type': 'text/plain' } }, 'headers.Content-Type', 'reserved'],
    ['header reserved content-length', { headers: { 'CONTENT-LENGTH': '1' } }, 'headers.CONTENT-LENGTH', 'reserved'],
    ['header reserved host', { headers: { Host: 'evil' } }, 'headers.Host', 'reserved'],
    ['header reserved user-agent', { headers: { 'User-Agent': 'x' } }, 'headers.User-Agent', 'reserved'],
    ['header reserved connection', { headers: { Connection: 'close' } }, 'headers.Connection', 'reserved'],
    [
      'header reserved transfer-encoding',
      { headers: { 'Transfer-Encoding': 'chunked' } },
      'headers.Transfer-Encoding',
      'reserved',
    ],
    ['header duplicate by case', { headers: { 'X-A': '1', 'x-a': '2' } }, 'headers.x-a', 'duplicate'],
    ['header value not a string', { headers: { 'X-A': 1 } }, 'headers.X-A', 'value_type'],
    ['header value CRLF', { headers: { 'X-A': 'a\r\nX-Evil: 1' } }, 'headers.X-A', 'invalid_char'],
    ['header value LF', { headers: { 'X-A': 'a\nb' } }, 'headers.X-A', 'invalid_char'],
    ['header value NUL', { headers: { 'X-A': 'a\u0000b' } }, 'headers.X-A', 'invalid_char'],
    // #11.6: said for what it is, not as a control character
    ['header value in CJK', { headers: { 'X-Name': '東京' } }, 'headers.X-Name', 'latin1'],
    ['header value with an emoji', { headers: { 'X-Mood': 'ok 👍' } }, 'headers.X-Mood', 'latin1'],
    ['a __proto__ header', { headers: JSON.parse('{"__proto__": "x"}') }, 'headers.__proto__', 'reserved'],
    ['header value too big', { headers: { 'X-A': long(4097) } }, 'headers.X-A', 'max_bytes'],
    ['too many headers', { headers: headers(21) }, 'headers', 'max_items'],
    ['maxInFlight zero', { maxInFlight: 0 }, 'maxInFlight', 'range'],
    ['maxInFlight too big', { maxInFlight: 1001 }, 'maxInFlight', 'range'],
    ['maxInFlight fractional', { maxInFlight: 1.5 }, 'maxInFlight', 'range'],
    ['maxInFlight string', { maxInFlight: '4' }, 'maxInFlight', 'range'],
    ['rateLimit zero', { rateLimit: 0 }, 'rateLimit', 'range'],
    ['rateLimit too big', { rateLimit: 10_001 }, 'rateLimit', 'range'],
    ['rateLimit fractional', { rateLimit: 0.5 }, 'rateLimit', 'range'],
    ['requestTimeoutMs zero', { requestTimeoutMs: 0 }, 'requestTimeoutMs', 'range'],
    ['requestTimeoutMs over an hour', { requestTimeoutMs: 3_600_001 }, 'requestTimeoutMs', 'range'],
    ['retryScheduleMs not an array', { retryScheduleMs: '5s,1m' }, 'retryScheduleMs', 'type'],
    ['retryScheduleMs negative delay', { retryScheduleMs: [1000, -1] }, 'retryScheduleMs[1]', 'range'],
    ['retryScheduleMs too long', { retryScheduleMs: Array(51).fill(1000) }, 'retryScheduleMs', 'max_items'],
    ['unknown field', { extra: 1 }, 'extra', 'unknown'],
  ];
  for (const [name, patch, field, rule] of createCases) {
    it(`create: ${name} → ${field}/${rule}`, async () => {
      const before = await countRows();
      const input = { ...base(newTenant()), ...patch } as CreateSubscriptionInput;
      await expectValidation(subscriptions.create(db.pool, input), field, rule);
      expect(await countRows()).toBe(before);
    });
  }

  it('accepts the limits exactly', async () => {
    const tenantId = newTenant();
    const sub = await subscriptions.create(db.pool, {
      tenantId,
      url: `https://example.com/${long(2048 - 'https://example.com/'.length)}`,
      eventTypes: ['*', 'message.new', 'message.*'],
      description: long(1000),
      headers: { ...headers(18), 'X-Big': long(4096), 'X-Tab': 'a\tb' },
      maxInFlight: 1000,
      secret: `whsec_${Buffer.alloc(24, 7).toString('base64')}`,
    });
    expect(sub.url).toHaveLength(2048);
    expect(Object.keys(sub.headers)).toHaveLength(20);
    expect(sub.headers['X-Tab']).toBe('a\tb');
    expect(sub.maxInFlight).toBe(1000);
    const min = await subscriptions.create(db.pool, base(tenantId, { maxInFlight: 1 }));
    expect(min.maxInFlight).toBe(1);
  });

  it('update, disable and rotateSecret validate before writing', async () => {
    const tenantId = newTenant();
    const sub = await subscriptions.create(db.pool, base(tenantId, { secret: SECRET_A }));
    const before = await rawRow(sub.id);
    const id = sub.id;
    await expectValidation(subscriptions.update(db.pool, { tenantId, id, url: 'ftp://x/' }), 'url', 'scheme');
    await expectValidation(subscriptions.update(db.pool, { tenantId, id, eventTypes: [] }), 'eventTypes', 'required');
    await expectValidation(
      subscriptions.update(db.pool, { tenantId, id, description: 'ok', headers: { Host: 'x' } }),
      'headers.Host',
      'reserved',
    );
    await expectValidation(
      subscriptions.update(db.pool, { tenantId, id, maxInFlight: 0, url: 'https://fine.example/' }),
      'maxInFlight',
      'range',
    );
    await expectValidation(
      subscriptions.update(db.pool, { tenantId, id, active: 1 as unknown as boolean }),
      'active',
      'type',
    );
    await expectValidation(
      subscriptions.update(db.pool, { tenantId, id, secret: SECRET_B } as unknown as { tenantId: string; id: string }),
      'secret',
      'unknown',
    );
    await expectValidation(
      subscriptions.disable(db.pool, { tenantId, id, reason: long(1001) }),
      'reason',
      'max_length',
    );
    await expectValidation(
      subscriptions.rotateSecret(db.pool, { tenantId, id, secret: 'whsec_short' }),
      'secret',
      'format',
    );
    await expectValidation(
      subscriptions.rotateSecret(db.pool, { tenantId, id, previousSecretTtlMs: -1 }),
      'previousSecretTtlMs',
      'range',
    );
    await expectValidation(
      subscriptions.rotateSecret(db.pool, { tenantId, id, previousSecretTtlMs: 31 * 24 * 3600 * 1000 }),
      'previousSecretTtlMs',
      'range',
    );
    expect(await rawRow(sub.id)).toEqual(before);
  });

  it('every id-taking function refuses a malformed tenant before anything else', async () => {
    const id = randomUUID();
    await expectValidation(subscriptions.get(db.pool, { tenantId: '', id }), 'tenantId', 'required');
    await expectValidation(subscriptions.update(db.pool, { tenantId: '', id, active: true }), 'tenantId', 'required');
    await expectValidation(subscriptions.disable(db.pool, { tenantId: '', id }), 'tenantId', 'required');
    await expectValidation(subscriptions.enable(db.pool, { tenantId: '', id }), 'tenantId', 'required');
    await expectValidation(subscriptions.delete(db.pool, { tenantId: '', id }), 'tenantId', 'required');
    await expectValidation(subscriptions.rotateSecret(db.pool, { tenantId: '', id }), 'tenantId', 'required');
  });
});
