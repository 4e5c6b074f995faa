/**
 * The framework-free API handlers (`@hookbox/outbox/api`) against a real PostgreSQL, with
 * a real relay and receivers producing the delivery log. Every answer is validated against
 * the OpenAPI 3.1 document the API serves, and the document itself against the OpenAPI 3.1
 * schema. Every route is tried with another tenant's credentials.
 */
import { randomUUID } from 'node:crypto';
import { type ApiAuth, type ApiRequest, type ApiResponse, createApi, ROUTES } from '@hookbox/outbox/api';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from './harness/db.js';
import { type Receiver, startReceiver } from './harness/receiver.js';
import { enqueueEvents, startRelay, waitForAllFinal } from './harness/relay.js';

const db = useTestDatabase();
const A = `a-${randomUUID().slice(0, 8)}`;
const B = `b-${randomUUID().slice(0, 8)}`;
const asA: ApiAuth = { tenantId: A };
const asB: ApiAuth = { tenantId: B };
const operator: ApiAuth = { operator: true };
const CATALOG = [
  { type: 'message.new', description: 'A message arrived', schema: { type: 'object' } },
  { type: 'contact.created', description: 'A contact was created' },
];

let api: ReturnType<typeof createApi>;
let receiver: Receiver;
const seeded = {} as Record<'okSub' | 'failSub' | 'bSub' | 'eventA' | 'eventB', string> & {
  okDelivery: number;
  deadDelivery: number;
  bDelivery: number;
};

// Every answer is checked against the document's schema for that route and status.
const ajv = new Ajv2020({ strict: false, allErrors: true });
(addFormats as unknown as (a: Ajv2020) => void)(ajv);
const compiledRoutes = ROUTES.map((r) => ({
  r,
  re: new RegExp(`^${r.path.replace(/\{\w+\}/g, '[^/]+')}$`),
}));

function check(req: ApiRequest, res: ApiResponse): void {
  const route = compiledRoutes.find((c) => c.r.method === req.method && c.re.test(req.path))?.r;
  if (!route) return;
  const doc = api.openapi as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
  const responses = doc.paths[route.path]?.[route.method.toLowerCase()]?.responses ?? {};
  const declared = responses[String(res.status)] as { content?: { 'application/json': { schema: unknown } } };
  expect(declared, `${req.method} ${req.path} answered ${res.status}, not in the document`).toBeDefined();
  const schema = declared.content?.['application/json'].schema as { $ref: string } | undefined;
  if (!schema) {
    expect(res.body).toBeUndefined();
    return;
  }
  const validate = ajv.getSchema(`hookbox${schema.$ref}`);
  if (!validate) throw new Error(`no schema ${schema.$ref}`);
  const valid = validate(res.body);
  expect(valid, `${req.method} ${req.path}: ${JSON.stringify(validate.errors)}\n${JSON.stringify(res.body)}`).toBe(
    true,
  );
}

async function call(
  auth: ApiAuth | undefined,
  method: string,
  path: string,
  { query, body }: { query?: Record<string, string>; body?: unknown } = {},
  // biome-ignore lint/suspicious/noExplicitAny: answers are checked against the OpenAPI schema above
): Promise<ApiResponse & { body: any }> {
  const req = {
    method,
    path,
    auth,
    ...(query ? { query } : {}),
    ...(body !== undefined ? { body } : {}),
  } as ApiRequest;
  const res = await api.handle(req);
  check(req, res);
  // biome-ignore lint/suspicious/noExplicitAny: as above
  return res as ApiResponse & { body: any };
}

beforeAll(async () => {
  api = createApi({ db: db.pool, catalog: CATALOG });
  ajv.addSchema({ $id: 'hookbox', components: (api.openapi as { components: unknown }).components });
  receiver = await startReceiver();
  receiver.on('/fail', { status: 500, body: 'nope' });
  const create = async (auth: ApiAuth, url: string, eventTypes = ['*']) =>
    (
      await call(auth, 'POST', '/v1/subscriptions', {
        body: { url, eventTypes, headers: { authorization: 'Bearer s3cr3t' } },
      })
    ).body.subscription.id as string;
  seeded.okSub = await create(asA, receiver.url('/ok'), ['message.*']);
  seeded.failSub = await create(asA, receiver.url('/fail'), ['message.*']);
  seeded.bSub = await create(asB, receiver.url('/b'));
  seeded.eventA = (
    await enqueueEvents(db.pool, [{ tenantId: A, type: 'message.new', payload: { n: 1 } }])
  )[0] as string;
  seeded.eventB = (
    await enqueueEvents(db.pool, [{ tenantId: B, type: 'contact.updated', payload: { n: 2 } }])
  )[0] as string;
  // A generous request timeout (the lease must outlast it): on a loaded machine a 1 s one
  // turns the 500s into timeouts.
  const relay = startRelay(db.url, { requestTimeoutMs: 10_000, leaseMs: 30_000 });
  try {
    await waitForAllFinal(db.pool, { atLeast: 3, timeoutMs: 60_000 });
  } finally {
    await relay.stop();
  }
  const { rows } = await db.pool.query('SELECT id, subscription_id, status FROM hookbox.deliveries');
  seeded.okDelivery = Number(rows.find((r) => r.subscription_id === seeded.okSub).id);
  seeded.deadDelivery = Number(rows.find((r) => r.subscription_id === seeded.failSub && r.status === 'dead').id);
  seeded.bDelivery = Number(rows.find((r) => r.subscription_id === seeded.bSub).id);
}, 120_000);

afterAll(async () => {
  await receiver?.close();
});

describe('OpenAPI document', () => {
  it('is a valid OpenAPI 3.1 document, served at /openapi.json without credentials', async () => {
    const res = await api.handle({ method: 'GET', path: '/openapi.json' });
    expect(res.status).toBe(200);
    const validator = new Validator();
    const result = await validator.validate(res.body as Parameters<Validator['validate']>[0]);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('documents every route with its operation id', () => {
    const paths = (api.openapi as { paths: Record<string, Record<string, { operationId: string }>> }).paths;
    for (const r of ROUTES) expect(paths[r.path]?.[r.method.toLowerCase()]?.operationId).toBe(r.operationId);
  });
});

describe('subscriptions', () => {
  it('creates with the secret shown once; get and list never show it', async () => {
    const created = await call(asA, 'POST', '/v1/subscriptions', {
      body: { url: receiver.url('/x'), eventTypes: ['contact.created'], description: 'CRM' },
    });
    expect(created.status).toBe(201);
    expect(created.body.secret).toMatch(/^whsec_/);
    const id = created.body.subscription.id;
    const got = await call(asA, 'GET', `/v1/subscriptions/${id}`);
    expect(got.status).toBe(200);
    expect(JSON.stringify(got.body)).not.toContain(created.body.secret);
    const listed = await call(asA, 'GET', '/v1/subscriptions');
    expect(JSON.stringify(listed.body)).not.toContain('whsec_');
    const rotated = await call(asA, 'POST', `/v1/subscriptions/${id}/rotate-secret`, { body: {} });
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).toMatch(/^whsec_/);
    expect(rotated.body.secret).not.toBe(created.body.secret);
    expect(rotated.body.subscription.rotating).toBe(true);
    const patched = await call(asA, 'PATCH', `/v1/subscriptions/${id}`, { body: { description: null } });
    expect(patched.body.description).toBeNull();
    const disabled = await call(asA, 'POST', `/v1/subscriptions/${id}/disable`, { body: { reason: 'maintenance' } });
    expect(disabled.body).toMatchObject({ active: false, disabledReason: 'maintenance' });
    const enabled = await call(asA, 'POST', `/v1/subscriptions/${id}/enable`);
    expect(enabled.body).toMatchObject({ active: true, disabledReason: null });
    const deleted = await call(asA, 'DELETE', `/v1/subscriptions/${id}`);
    expect(deleted).toEqual({ status: 204 });
    expect((await call(asA, 'GET', `/v1/subscriptions/${id}`)).body.error.code).toBe('not_found');
  });

  it("shows custom headers' names but never their values, and refuses the placeholder as a value", async () => {
    const got = await call(asA, 'GET', `/v1/subscriptions/${seeded.okSub}`);
    expect(got.body.headers).toEqual({ authorization: '[redacted]' });
    const listed = await call(asA, 'GET', '/v1/subscriptions');
    const patched = await call(asA, 'PATCH', `/v1/subscriptions/${seeded.okSub}`, { body: { description: 'ok' } });
    expect(patched.status).toBe(200);
    for (const res of [got, listed, patched]) expect(JSON.stringify(res.body)).not.toContain('s3cr3t');
    // Sending back what was read would replace the endpoint's token with the placeholder.
    const back = await call(asA, 'PATCH', `/v1/subscriptions/${seeded.okSub}`, { body: { headers: got.body.headers } });
    expect(back.status).toBe(400);
    expect(back.body.error).toMatchObject({ field: 'headers.authorization', rule: 'redacted' });
    // The value itself is kept for the relay to send (relay-delivery.test.ts: custom headers arrive).
    const { rows } = await db.pool.query('SELECT headers FROM hookbox.subscriptions WHERE id = $1', [seeded.okSub]);
    expect(rows[0].headers).toEqual({ authorization: 'Bearer s3cr3t' });
  });

  it('pages with a keyset cursor that walks every row once', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: { body: { items: { id: string }[]; nextCursor: string | null } } = await call(
        asA,
        'GET',
        '/v1/subscriptions',
        { query: { limit: '1', ...(cursor ? { cursor } : {}) } },
      );
      seen.push(...res.body.items.map((s) => s.id));
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(seen.sort()).toEqual([seeded.okSub, seeded.failSub].sort());
  });

  it('refuses bad input with invalid_input naming the field and the rule, and writes nothing', async () => {
    const before = (await call(asA, 'GET', '/v1/subscriptions')).body.items.length;
    const cases: [unknown, string, string][] = [
      [{ url: 'ftp://x', eventTypes: ['*'] }, 'url', 'scheme'],
      [{ url: receiver.url('/y'), eventTypes: [] }, 'eventTypes', 'required'],
      [{ url: receiver.url('/y'), eventTypes: ['*'], colour: 'red' }, 'colour', 'unknown'],
      [{ url: receiver.url('/y'), eventTypes: ['*'], tenantId: B }, 'tenantId', 'unknown'],
      [[1, 2], 'body', 'type'],
    ];
    for (const [body, field, rule] of cases) {
      const res = await call(asA, 'POST', '/v1/subscriptions', { body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'invalid_input', field });
      if (rule !== 'scheme') expect(res.body.error.rule).toBe(rule);
    }
    const limit = await call(asA, 'GET', '/v1/subscriptions', { query: { limit: 'lots' } });
    expect(limit.body.error).toMatchObject({ code: 'invalid_input', field: 'limit', rule: 'type' });
    const unknown = await call(asA, 'GET', '/v1/subscriptions', { query: { actve: 'true' } });
    expect(unknown.body.error).toMatchObject({ code: 'invalid_input', field: 'actve', rule: 'unknown' });
    // The error names the query parameter the caller sent, as the other lists do.
    const cursor = await call(asA, 'GET', '/v1/subscriptions', { query: { cursor: 'nope' } });
    expect(cursor.status).toBe(400);
    expect(cursor.body.error).toMatchObject({ code: 'invalid_input', field: 'cursor', rule: 'format' });
    expect((await call(asA, 'GET', '/v1/subscriptions')).body.items.length).toBe(before);
  });
});

describe('delivery log', () => {
  it('lists deliveries with filters and shows attempts with request headers minus secrets', async () => {
    const dead = await call(asA, 'GET', '/v1/deliveries', { query: { status: 'dead' } });
    expect(dead.body.items.map((d: { id: number }) => d.id)).toEqual([seeded.deadDelivery]);
    const bySub = await call(asA, 'GET', '/v1/deliveries', { query: { subscriptionId: seeded.okSub } });
    expect(bySub.body.items.map((d: { id: number }) => d.id)).toEqual([seeded.okDelivery]);
    const detail = await call(asA, 'GET', `/v1/deliveries/${seeded.deadDelivery}`);
    expect(detail.body.delivery.status).toBe('dead');
    expect(detail.body.attempts.length).toBe(3);
    const first = detail.body.attempts[0];
    expect(first).toMatchObject({ statusCode: 500, errorClass: 'http_status', responseExcerpt: 'nope' });
    expect(first.request.headers).toMatchObject({
      'webhook-id': seeded.eventA,
      'webhook-signature': '[redacted]',
      authorization: '[redacted]',
    });
    expect(JSON.stringify(detail.body)).not.toContain('s3cr3t');
  });

  it('retries a dead delivery as a new pending one, and replays an event', async () => {
    const retried = await call(asA, 'POST', `/v1/deliveries/${seeded.deadDelivery}/retry`);
    expect(retried.status).toBe(202);
    expect(retried.body).toMatchObject({
      created: true,
      delivery: { status: 'pending', replayOf: seeded.deadDelivery },
    });
    const again = await call(asA, 'POST', `/v1/deliveries/${seeded.okDelivery}/retry`);
    expect(again.body.error).toMatchObject({ code: 'invalid_input', field: 'id', rule: 'succeeded' });
    const replay = await call(asA, 'POST', `/v1/events/${seeded.eventA}/replay`, {
      body: { subscriptionId: seeded.okSub },
    });
    expect(replay.status).toBe(202);
    expect(replay.body.created).toHaveLength(1);
    const recover = await call(asA, 'POST', '/v1/recover', { body: { dryRun: true } });
    expect(recover.body).toMatchObject({ dryRun: true, alreadyReplayed: 1, replayed: 0 });
    // "true" as a string is neither a dry run nor a real one: 400 (replay.test.ts shows nothing is replayed).
    const loose = await call(asA, 'POST', '/v1/recover', { body: { dryRun: 'true' } });
    expect(loose.status).toBe(400);
    expect(loose.body.error).toMatchObject({ code: 'invalid_input', field: 'dryRun', rule: 'type' });
  });

  it('lists events and one event with its payload; sends a test to one endpoint', async () => {
    const events = await call(asA, 'GET', '/v1/events');
    expect(events.body.items.map((e: { id: string }) => e.id)).toContain(seeded.eventA);
    const one = await call(asA, 'GET', `/v1/events/${seeded.eventA}`);
    expect(one.body.event.payload).toEqual({ n: 1 });
    const test = await call(asA, 'POST', `/v1/subscriptions/${seeded.okSub}/test`, { body: {} });
    expect(test.status).toBe(202);
    expect(test.body.deliveryId).toBeGreaterThan(0);
  });

  it('offers the catalog plus the types seen, and statistics with a series for charts', async () => {
    const types = await call(asA, 'GET', '/v1/event-types');
    expect(types.body.items).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'message.new', inCatalog: true, seen: true }),
        expect.objectContaining({ type: 'contact.created', inCatalog: true, seen: false }),
      ]),
    );
    expect(types.body.items.map((t: { type: string }) => t.type)).not.toContain('contact.updated'); // B's
    const stats = await call(asA, 'GET', '/v1/stats');
    expect(stats.body.tenants.map((t: { tenantId: string }) => t.tenantId)).toEqual([A]);
    const series = await call(asA, 'GET', '/v1/stats/series', { query: { subscriptionId: seeded.failSub } });
    const total = series.body.points.reduce((n: number, p: { failures: number }) => n + p.failures, 0);
    expect(total).toBe(3);
    expect(series.body.bucket).toBe('15m');
    const all = await call(operator, 'GET', '/v1/stats/series', { query: { bucket: '1h' } });
    expect(all.body.points.reduce((n: number, p: { attempts: number }) => n + p.attempts, 0)).toBeGreaterThanOrEqual(5);
  });
});

describe('errors and auth', () => {
  it('answers JSON errors with stable codes', async () => {
    expect((await call(undefined, 'GET', '/v1/subscriptions')).body.error.code).toBe('unauthorized');
    expect((await call({ tenantId: '' } as ApiAuth, 'GET', '/v1/subscriptions')).status).toBe(401);
    expect((await call(asA, 'GET', '/v1/nothing')).body.error.code).toBe('route_not_found');
    const wrong = await call(asA, 'PUT', '/v1/subscriptions');
    expect(wrong.status).toBe(405);
    expect(wrong.body.error.code).toBe('method_not_allowed');
    expect((await call(operator, 'GET', '/v1/subscriptions')).body.error).toMatchObject({
      code: 'tenant_required',
      field: 'tenant',
    });
    expect((await call(asA, 'GET', '/v1/deliveries/not-a-number')).body.error.code).toBe('not_found');
  });

  it('refuses nested query values (a qs-style parser: ?status[x]=dead) with 400 naming the parameter', async () => {
    for (const query of [{ status: { x: 'dead' } }, { status: ['dead', { x: '1' }] }, { type: [['message.new']] }]) {
      const res = await api.handle({ method: 'GET', path: '/v1/deliveries', query: query as never, auth: asA });
      expect(res.status, JSON.stringify(query)).toBe(400);
      expect(res.body).toMatchObject({ error: { code: 'invalid_input', rule: 'type' } });
      expect(['status', 'type']).toContain((res.body as { error: { field: string } }).error.field);
    }
  });

  it('lets an operator act on any tenant with ?tenant= and read across tenants without it', async () => {
    const subs = await call(operator, 'GET', '/v1/subscriptions', { query: { tenant: B } });
    expect(subs.body.items.map((s: { id: string }) => s.id)).toEqual([seeded.bSub]);
    const deliveries = await call(operator, 'GET', '/v1/deliveries');
    const tenants = new Set(deliveries.body.items.map((d: { tenantId: string }) => d.tenantId));
    expect(tenants).toEqual(new Set([A, B]));
  });
});

/**
 * Tenant B's credentials against tenant A's rows, route by route: an id route answers
 * not_found (never A's row), a list answers B's rows only, and naming A in ?tenant= is
 * forbidden. A route added to the table without a case here fails the coverage test.
 */
describe('tenant isolation, every route', () => {
  type Case = {
    path: () => string;
    body?: unknown;
    query?: () => Record<string, string>;
    expect: 'not_found' | 'own' | 'none';
  };
  const cases: Record<string, Case> = {
    health: { path: () => '/v1/health', expect: 'none' },
    listEventTypes: { path: () => '/v1/event-types', expect: 'own' },
    listSubscriptions: { path: () => '/v1/subscriptions', expect: 'own' },
    createSubscription: {
      path: () => '/v1/subscriptions',
      body: { url: 'http://127.0.0.1:9/b', eventTypes: ['*'] },
      expect: 'own',
    },
    getSubscription: { path: () => `/v1/subscriptions/${seeded.okSub}`, expect: 'not_found' },
    updateSubscription: {
      path: () => `/v1/subscriptions/${seeded.okSub}`,
      body: { description: 'B was here' },
      expect: 'not_found',
    },
    deleteSubscription: { path: () => `/v1/subscriptions/${seeded.okSub}`, expect: 'not_found' },
    disableSubscription: { path: () => `/v1/subscriptions/${seeded.okSub}/disable`, body: {}, expect: 'not_found' },
    enableSubscription: { path: () => `/v1/subscriptions/${seeded.okSub}/enable`, expect: 'not_found' },
    rotateSecret: { path: () => `/v1/subscriptions/${seeded.okSub}/rotate-secret`, body: {}, expect: 'not_found' },
    sendTest: { path: () => `/v1/subscriptions/${seeded.okSub}/test`, body: {}, expect: 'not_found' },
    listEvents: { path: () => '/v1/events', expect: 'own' },
    getEvent: { path: () => `/v1/events/${seeded.eventA}`, expect: 'not_found' },
    replayEvent: { path: () => `/v1/events/${seeded.eventA}/replay`, body: {}, expect: 'not_found' },
    listDeliveries: { path: () => '/v1/deliveries', expect: 'own' },
    getDelivery: { path: () => `/v1/deliveries/${seeded.deadDelivery}`, expect: 'not_found' },
    retryDelivery: { path: () => `/v1/deliveries/${seeded.deadDelivery}/retry`, expect: 'not_found' },
    recoverDead: { path: () => '/v1/recover', body: () => ({ subscriptionId: seeded.failSub }), expect: 'not_found' },
    getStats: { path: () => '/v1/stats', expect: 'own' },
    getSeries: {
      path: () => '/v1/stats/series',
      query: () => ({ subscriptionId: seeded.failSub }),
      expect: 'not_found',
    },
  };

  it('has a case for every route', () => {
    expect(Object.keys(cases).sort()).toEqual(ROUTES.map((r) => r.operationId).sort());
  });

  const snapshot = async () =>
    (
      await db.pool.query(
        `SELECT (SELECT json_agg(s ORDER BY id) FROM hookbox.subscriptions s WHERE tenant_id = $1) AS subs,
                (SELECT count(*) FROM hookbox.deliveries WHERE tenant_id = $1) AS deliveries`,
        [A],
      )
    ).rows[0];

  for (const route of ROUTES) {
    it(`${route.method} ${route.path} (${route.operationId})`, async () => {
      const c = cases[route.operationId] as Case;
      const before = await snapshot();
      const body = typeof c.body === 'function' ? c.body() : c.body;
      const query = c.query?.() ?? {};
      const res = await call(asB, route.method, c.path(), { query, ...(body !== undefined ? { body } : {}) });
      if (c.expect === 'not_found') {
        expect(res.status).toBe(404);
        expect(res.body.error.code).toBe('not_found');
      } else {
        expect(res.status).toBeLessThan(300);
      }
      // Nothing of A's leaks: its tenant id, or ids B did not send itself.
      const text = JSON.stringify(res.body ?? {});
      expect(text).not.toContain(A);
      if (c.expect !== 'not_found') {
        for (const id of [seeded.okSub, seeded.failSub, seeded.eventA]) expect(text).not.toContain(id);
      }
      expect(await snapshot()).toEqual(before);
      if (route.tenant !== 'none') {
        const named = await call(asB, route.method, c.path(), { query: { ...query, tenant: A } });
        expect(named.status).toBe(403);
        expect(named.body.error.code).toBe('forbidden');
      }
    });
  }
});
