/**
 * The example CRM end to end: a real Nest app on a real PostgreSQL, driven over HTTP with
 * supertest; the real `hookbox relay` binary beside it delivers to a real receiver that
 * verifies every signature. Covers all 22 event types, a rolled-back business transaction,
 * and two tenants that see only their own events.
 */
import 'reflect-metadata';
import { existsSync, readFileSync } from 'node:fs';
import { subscriptions, verify } from '@hookbox/outbox';
import type { INestApplication } from '@nestjs/common';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../../../test/harness/db.js';
import { type Receiver, startReceiver } from '../../../test/harness/receiver.js';
import { type CliRelay, spawnRelayCli, waitForAllFinal } from '../../../test/harness/relay.js';
import type { CrmEventType } from '../src/events.js';
import { MessagesService } from '../src/messages.service.js';
import { createExampleApp } from './app.js';

const ALL_TYPES: CrmEventType[] = [
  'message.new',
  'message.sent',
  'message.delivered',
  'message.read',
  'message.failed',
  'conversation.created',
  'conversation.updated',
  'conversation.assigned',
  'conversation.resolved',
  'conversation.closed',
  'contact.created',
  'contact.updated',
  'campaign.started',
  'campaign.completed',
  'campaign.failed',
  'flow.started',
  'flow.completed',
  'flow.failed',
  'automation.triggered',
  'automation.completed',
  'template.approved',
  'template.rejected',
];

// The walk sends two replies, starts two campaigns and two flow runs: three types fire twice.
const ACME_EVENTS = ALL_TYPES.length + 3;

const CATALOG = new URL('../catalog/', import.meta.url);

const db = useTestDatabase();
let app: INestApplication;
let receiver: Receiver;
let relay: CliRelay | undefined;
const secrets: Record<string, string> = {};

const api = (tenant: string) => {
  const agent = request(app.getHttpServer());
  return {
    post: (path: string, body: object = {}) => agent.post(path).set('x-tenant-id', tenant).send(body),
    patch: (path: string, body: object) => agent.patch(path).set('x-tenant-id', tenant).send(body),
  };
};

beforeAll(async () => {
  app = await createExampleApp(db.url);
  await app.init();
  receiver = await startReceiver();
  for (const [tenant, events] of [
    ['acme', ['*']],
    ['globex', ['message.*']],
  ] as const) {
    const sub = await subscriptions.create(db.pool, {
      tenantId: tenant,
      url: receiver.url(`/${tenant}`),
      eventTypes: events,
    });
    secrets[tenant] = sub.secret;
  }
});

afterAll(async () => {
  await relay?.kill();
  await app?.close();
  await receiver?.close();
});

const events = async (tenant: string) =>
  (
    await db.pool.query<{ type: string; payload: Record<string, unknown> }>(
      'SELECT type, payload FROM hookbox.events WHERE tenant_id = $1 ORDER BY id',
      [tenant],
    )
  ).rows;

/** Walks the CRM's API so that every event type fires once for `tenant`. */
async function walkEveryEvent(tenant: string, phoneNumber: string) {
  const c = api(tenant);
  const ok = (r: request.Response, status = 201) => {
    expect(r.status, JSON.stringify(r.body)).toBe(status);
    return r.body as Record<string, string>;
  };
  // An inbound message from a new number: contact.created, conversation.created, message.new.
  const inbound = ok(await c.post('/inbound', { from: phoneNumber, text: 'Hi, is my order on its way?' }));
  const { conversationId, contactId } = inbound as { conversationId: string; contactId: string };
  ok(await c.patch(`/contacts/${contactId}`, { name: 'Ada Lovelace', email: 'ada@example.com', tags: ['vip'] }), 200);
  ok(await c.patch(`/conversations/${conversationId}`, { labels: ['shipping'] }), 200);
  ok(await c.post(`/conversations/${conversationId}/assign`, { assigneeId: 'agent_17', agentId: 'agent_1' }), 200);
  const reply = ok(
    await c.post(`/conversations/${conversationId}/messages`, { text: 'It ships today.', agentId: 'agent_17' }),
  );
  ok(await c.post(`/messages/${reply.id}/status`, { status: 'delivered' }), 200);
  ok(await c.post(`/messages/${reply.id}/status`, { status: 'read' }), 200);
  const second = ok(
    await c.post(`/conversations/${conversationId}/messages`, { text: 'Anything else?', agentId: 'agent_17' }),
  );
  ok(
    await c.post(`/messages/${second.id}/status`, {
      status: 'failed',
      error: { code: '131047', message: 'Re-engagement' },
    }),
    200,
  );
  ok(await c.post(`/conversations/${conversationId}/resolve`, { agentId: 'agent_17' }), 200);
  ok(await c.post(`/conversations/${conversationId}/close`, { reason: 'inactive for 7 days' }), 200);
  const campaign = ok(await c.post('/campaigns', { name: 'Spring sale', audienceSize: 1200 }));
  ok(
    await c.post(`/campaigns/${campaign.id}/complete`, {
      stats: { sent: 1187, delivered: 1150, read: 802, failed: 13 },
    }),
    200,
  );
  const failing = ok(await c.post('/campaigns', { name: 'Summer sale', audienceSize: 10 }));
  ok(
    await c.post(`/campaigns/${failing.id}/fail`, { error: { code: 'template_paused', message: 'Paused by Meta' } }),
    200,
  );
  const flowId = '0191f600-aaaa-7bbb-8ccc-dddddddddddd';
  const run1 = ok(await c.post(`/flows/${flowId}/executions`, { contactId, trigger: 'keyword:order' }));
  ok(await c.post(`/flow-executions/${run1.id}/complete`), 200);
  const run2 = ok(await c.post(`/flows/${flowId}/executions`, { contactId, trigger: 'keyword:order' }));
  ok(
    await c.post(`/flow-executions/${run2.id}/fail`, {
      failedStep: 'lookup_order',
      error: { code: 'http_502', message: 'Bad gateway' },
    }),
    200,
  );
  const automationId = '0191f700-1234-7567-89ab-cdef01234567';
  const auto = ok(
    await c.post(`/automations/${automationId}/runs`, { event: 'conversation.created', resourceId: conversationId }),
  );
  ok(await c.post(`/automation-runs/${auto.id}/complete`, { actionsRun: 2 }), 200);
  const t1 = ok(await c.post('/templates', { name: 'order_shipped', language: 'en_US', category: 'utility' }));
  ok(await c.post(`/templates/${t1.id}/review`, { approved: true }), 200);
  const t2 = ok(await c.post('/templates', { name: 'spring_promo', language: 'en_US', category: 'marketing' }));
  ok(await c.post(`/templates/${t2.id}/review`, { approved: false, reason: 'INVALID_FORMAT' }), 200);
}

describe('example CRM', () => {
  it('emits every one of the 22 event types from its business transactions', async () => {
    await walkEveryEvent('acme', '+4915112345678');
    const rows = await events('acme');
    expect(new Set(rows.map((r) => r.type))).toEqual(new Set(ALL_TYPES));
    expect(rows).toHaveLength(ACME_EVENTS);
  }, 60_000);

  it('a second tenant gets its own rows, and the same phone number is a different contact there', async () => {
    await api('globex').post('/inbound', { from: '+4915112345678', text: 'Hello from Globex' }).expect(201);
    const rows = await events('globex');
    expect(rows.map((r) => r.type).sort()).toEqual(['contact.created', 'conversation.created', 'message.new']);
    const acmeContact = (await events('acme')).find((r) => r.type === 'contact.created')?.payload.contactId;
    expect(rows.find((r) => r.type === 'contact.created')?.payload.contactId).not.toBe(acmeContact);
    // globex cannot touch acme's rows: another tenant's id is "not found".
    const acmeConversation = (await events('acme')).find((r) => r.type === 'conversation.created')?.payload
      .conversationId as string;
    await api('globex').post(`/conversations/${acmeConversation}/resolve`, { agentId: 'x' }).expect(404);
    expect(await events('globex')).toHaveLength(3);
  });

  it('a business transaction that fails after writing events leaves neither rows nor events', async () => {
    const messages = app.get(MessagesService);
    // A new number: contact.created and conversation.created are written, then the message
    // insert fails (text over WhatsApp's 4,096 characters) and the transaction rolls back.
    await expect(messages.receive('acme', { from: '+4915199999999', text: 'x'.repeat(5000) })).rejects.toThrow();
    const contacts = await db.pool.query('SELECT 1 FROM contacts WHERE phone = $1', ['+4915199999999']);
    expect(contacts.rowCount).toBe(0);
    expect(await events('acme')).toHaveLength(ACME_EVENTS);
  });

  it('bad input is a 400 and writes nothing', async () => {
    await api('acme').post('/inbound', { from: 'not-a-phone', text: 'x' }).expect(400);
    await request(app.getHttpServer()).post('/inbound').send({ from: '+4915100000001' }).expect(400); // no tenant
    await api('acme').post('/conversations/not-a-uuid/resolve', { agentId: 'a' }).expect(400);
    expect(await events('acme')).toHaveLength(ACME_EVENTS);
  });

  it('a run finishes once: a repeated or concurrent complete/fail is a 409 and emits nothing', async () => {
    // initech has no subscription: its events add no deliveries to the counts below.
    const c = api('initech');
    const ok = (r: request.Response, status = 201) => {
      expect(r.status, JSON.stringify(r.body)).toBe(status);
      return r.body as Record<string, string>;
    };
    const contact = ok(await c.post('/inbound', { from: '+4915100000042', text: 'hi' }), 201);
    const flowId = '0191f600-aaaa-7bbb-8ccc-dddddddddddd';
    const run = ok(await c.post(`/flows/${flowId}/executions`, { contactId: contact.contactId, trigger: 'x' }));
    // Two at once: the row lock makes one wait, then see the other's completion.
    const both = await Promise.all([
      c.post(`/flow-executions/${run.id}/complete`),
      c.post(`/flow-executions/${run.id}/complete`),
    ]);
    expect(both.map((r) => r.status).sort()).toEqual([200, 409]);
    await c
      .post(`/flow-executions/${run.id}/fail`, { failedStep: 's', error: { code: 'x', message: 'y' } })
      .expect(409);
    const campaign = ok(await c.post('/campaigns', { name: 'Once', audienceSize: 1 }));
    const stats = { sent: 1, delivered: 1, read: 1, failed: 0 };
    ok(await c.post(`/campaigns/${campaign.id}/complete`, { stats }), 200);
    await c.post(`/campaigns/${campaign.id}/fail`, { error: { code: 'x', message: 'y' } }).expect(409);
    const automationId = '0191f700-1234-7567-89ab-cdef01234567';
    const auto = ok(
      await c.post(`/automations/${automationId}/runs`, { event: 'contact.created', resourceId: run.id }),
    );
    ok(await c.post(`/automation-runs/${auto.id}/complete`, { actionsRun: 1 }), 200);
    await c.post(`/automation-runs/${auto.id}/complete`, { actionsRun: 1 }).expect(409);
    const types = (await events('initech')).map((e) => e.type);
    for (const type of ['flow.completed', 'campaign.completed', 'automation.completed']) {
      expect(
        types.filter((t) => t === type),
        type,
      ).toHaveLength(1);
    }
    expect(types).not.toContain('flow.failed');
    expect(types).not.toContain('campaign.failed');
  });

  it('the hookbox relay delivers each event, signed, to its own tenant only; payloads match the catalog', async () => {
    relay = spawnRelayCli(db.url);
    await waitForAllFinal(db.pool, { atLeast: ACME_EVENTS + 1, timeoutMs: 60_000 });
    // At-least-once: on a loaded machine a slow answer can be retried, so count each
    // webhook-id once (receivers de-duplicate on it).
    const once = (reqs: ReturnType<Receiver['requests']>) => [
      ...new Map(reqs.map((r) => [String(r.headers['webhook-id']), r])).values(),
    ];
    const acme = once(receiver.requests('/acme'));
    const globex = once(receiver.requests('/globex'));
    expect(acme).toHaveLength(ACME_EVENTS);
    expect(globex).toHaveLength(1); // globex subscribes to message.* only
    const delivered: Record<string, { type: string; data: Record<string, unknown> }[]> = {};
    for (const [tenant, reqs] of [
      ['acme', acme],
      ['globex', globex],
    ] as const) {
      delivered[tenant] = reqs.map((r) => {
        const body = verify(secrets[tenant] as string, r.headers as Record<string, string>, r.body) as {
          type: string;
          data: Record<string, unknown>;
        };
        // The other tenant's secret does not verify it.
        const other = tenant === 'acme' ? 'globex' : 'acme';
        expect(() => verify(secrets[other] as string, r.headers as Record<string, string>, r.body)).toThrow();
        return body;
      });
    }
    expect(new Set(delivered.acme?.map((b) => b.type))).toEqual(new Set(ALL_TYPES));
    expect(delivered.globex?.map((b) => b.type)).toEqual(['message.new']);
    expect(delivered.globex?.[0]?.data.text).toBe('Hello from Globex');

    // Each payload against its catalog schema: every type the CRM emits has one.
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats.default(ajv);
    let checked = 0;
    const all = [...(delivered.acme ?? []), ...(delivered.globex ?? [])];
    for (const body of all) {
      const file = new URL(`${body.type}.json`, CATALOG);
      expect(existsSync(file), `${body.type} has no entry in the catalog`).toBe(true);
      const { schema } = JSON.parse(readFileSync(file, 'utf8')) as { schema: { $id?: string } };
      const validate = (schema.$id && ajv.getSchema(schema.$id)) || ajv.compile(schema);
      expect(validate(body.data), `${body.type}: ${ajv.errorsText(validate.errors)}`).toBe(true);
      checked++;
    }
    expect(checked).toBe(ACME_EVENTS + 1);
    console.log(`example-crm: ${checked} delivered payloads validated against catalog schemas`);
  }, 120_000);

  describe('webhook REST API (HookboxApiModule at /webhooks)', () => {
    const as = (tenant: string | null) => {
      const agent = request(app.getHttpServer());
      const set = (r: request.Test) => (tenant ? r.set('x-tenant-id', tenant) : r);
      return {
        get: (path: string) => set(agent.get(`/webhooks${path}`)),
        post: (path: string, body?: object) => set(agent.post(`/webhooks${path}`)).send(body),
      };
    };

    it('answers 401 without a tenant; the OpenAPI document is public', async () => {
      const r = await as(null).get('/v1/subscriptions').expect(401);
      expect(r.body.error.code).toBe('unauthorized');
      const doc = await as(null).get('/openapi.json').expect(200);
      expect(Object.keys(doc.body.paths)).toContain('/v1/subscriptions');
    });

    it("manages a tenant's subscriptions; another tenant cannot see or touch them", async () => {
      const created = await as('acme')
        .post('/v1/subscriptions', { url: receiver.url('/acme-api'), eventTypes: ['contact.*'] })
        .expect(201);
      expect(created.body.secret).toMatch(/^whsec_/);
      const id = created.body.subscription.id as string;
      const list = await as('acme').get('/v1/subscriptions').expect(200);
      expect(list.body.items.map((i: { id: string }) => i.id)).toContain(id);
      await as('globex').get(`/v1/subscriptions/${id}`).expect(404);
      await as('globex').post(`/v1/subscriptions/${id}/disable`, {}).expect(404);
      const other = await as('globex').get('/v1/subscriptions').expect(200);
      expect(other.body.items.map((i: { id: string }) => i.id)).not.toContain(id);
      await as('acme').post(`/v1/subscriptions/${id}/disable`, {}).expect(200);
      await as('acme').post(`/v1/subscriptions/${id}/enable`, {}).expect(200);
      const rotated = await as('acme').post(`/v1/subscriptions/${id}/rotate-secret`, {}).expect(200);
      expect(JSON.stringify(rotated.body)).toMatch(/whsec_/);
    });

    it('bad input is 400, an unknown id 404, malformed JSON 400 — never 500', async () => {
      const bad = await as('acme')
        .post('/v1/subscriptions', { url: 'ftp://nope', eventTypes: ['*'] })
        .expect(400);
      expect(bad.body.error).toMatchObject({ code: 'invalid_input', field: 'url' });
      await as('acme').get('/v1/subscriptions/0191f4a2-7b1c-7e3a-9c41-2f6e8d0a1b01').expect(404);
      await as('acme').get('/v1/subscriptions/not-a-uuid').expect(404);
      await request(app.getHttpServer())
        .post('/webhooks/v1/subscriptions')
        .set('x-tenant-id', 'acme')
        .set('content-type', 'application/json')
        .send('{"url": ')
        .expect(400);
      await as('acme').get('/v1/nothing-here').expect(404);
    });

    it("lists only the tenant's own deliveries, with their attempts", async () => {
      const acme = await as('acme').get('/v1/deliveries?limit=100').expect(200);
      expect(acme.body.items.length).toBe(ACME_EVENTS);
      const globex = await as('globex').get('/v1/deliveries').expect(200);
      expect(globex.body.items).toHaveLength(1);
      const one = await as('acme').get(`/v1/deliveries/${acme.body.items[0].id}`).expect(200);
      expect(JSON.stringify(one.body)).toContain('attempts');
      await as('globex').get(`/v1/deliveries/${acme.body.items[0].id}`).expect(404);
    });

    it('the event catalog and the swagger document', async () => {
      const types = await as('acme').get('/v1/event-types').expect(200);
      expect(Array.isArray(types.body.items)).toBe(true);
      const doc = await request(app.getHttpServer()).get('/docs-json').expect(200);
      expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/inbound', '/webhooks/v1/subscriptions']));
      // The merged document (Nest's routes and hookbox's) is valid OpenAPI, every $ref resolving.
      const validator = new Validator();
      const result = await validator.validate(doc.body);
      expect(result.errors ?? []).toEqual([]);
      expect(result.valid).toBe(true);
    });
  });
});
