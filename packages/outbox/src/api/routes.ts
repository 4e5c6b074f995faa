/**
 * The API's routes: one table that the router, the OpenAPI document and the tests all read.
 * Each handler turns a `RouteRequest` into the library's input (tenant from the
 * credentials), calls the library, and shapes the JSON. Secrets leave only in the answers
 * to create and rotate-secret: reveal once, never listed or fetched again.
 */
import { deliveryLog } from '../delivery-log.js';
import { ValidationError } from '../errors.js';
import { type Executor, runQuery } from '../executor.js';
import { recoverDead, replayEvent, retryDelivery } from '../replay.js';
import { sendTest } from '../send-test.js';
import { WEBHOOK_HEADERS } from '../signing.js';
import { stats } from '../stats.js';
import { REDACTED, validateCursor } from '../subscription-validate.js';
import { circuitState, type SubscriptionRecord, subscriptions } from '../subscriptions.js';
import { validateTime } from '../time.js';
import { boolParam, checkQuery, intParam, listParam, objectBody, resolveTenant, single } from './params.js';
import { attemptSeries, seenEventTypes } from './series.js';
import type { ApiResponse, CatalogEntry, RouteRequest } from './types.js';

export interface ApiContext {
  db: Executor;
  /** The event catalog offered to tenants; types seen in the database are added to it. */
  catalog: readonly CatalogEntry[];
}

/** A query parameter as documented in OpenAPI. */
export interface QueryParam {
  name: string;
  description: string;
  schema: Record<string, unknown>;
}

export interface Route {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** OpenAPI style: `/v1/subscriptions/{id}`. */
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  /** Whose data: `required` needs one tenant (operators give ?tenant=), `optional` reads all tenants for operators, `none` is public. */
  tenant: 'required' | 'optional' | 'none';
  query?: QueryParam[];
  /** Component schema name of the JSON body. */
  body?: string;
  /** Success status and component schema name (none for 204). */
  response: { status: number; schema?: string; description: string };
  handler(ctx: ApiContext, req: RouteRequest): Promise<ApiResponse>;
}

const q = (name: string, description: string, schema: Record<string, unknown> = { type: 'string' }): QueryParam => ({
  name,
  description,
  schema,
});

const PAGE_QUERY = [
  q('limit', 'Page size, 1..500 (default 50).', { type: 'integer', minimum: 1, maximum: 500 }),
  q('cursor', '`nextCursor` of the previous page.'),
];
const TIME_QUERY = [
  q('since', 'Created at or after this ISO 8601 time.', { type: 'string' }),
  q('until', 'Created before this ISO 8601 time.', { type: 'string' }),
];

/**
 * A subscription as the API shows it: without its secrets, and with its custom headers'
 * names but not their values (they often hold the receiver's own tokens; the CLI shows them
 * only with --reveal-headers).
 */
export function subscriptionView(s: SubscriptionRecord): Record<string, unknown> {
  const { secret: _secret, previousSecret, ...rest } = s;
  const rotating =
    previousSecret !== null && s.previousSecretExpiresAt !== null && s.previousSecretExpiresAt > new Date();
  const headers = Object.fromEntries(Object.keys(s.headers).map((n) => [n, REDACTED]));
  return { ...rest, headers, rotating, circuit: circuitState(s) };
}

const ok = (body: unknown, status = 200): ApiResponse => ({ status, body });
const names = (route: Route) => (route.query ?? []).map((p) => p.name);

function tenant(req: RouteRequest, mode: 'required'): string;
function tenant(req: RouteRequest, mode: 'optional'): string | null;
function tenant(req: RouteRequest, mode: 'required' | 'optional'): string | null {
  return resolveTenant(req, mode);
}

/** What a delivery's request carried, secrets replaced: signature and custom header values. */
function requestHeaders(eventId: string, startedAt: Date, custom: Record<string, string>): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of Object.keys(custom)) headers[name.toLowerCase()] = REDACTED;
  headers['content-type'] = 'application/json';
  headers[WEBHOOK_HEADERS.id] = eventId;
  headers[WEBHOOK_HEADERS.timestamp] = String(Math.floor(startedAt.getTime() / 1000));
  headers[WEBHOOK_HEADERS.signature] = REDACTED;
  return headers;
}

export const ROUTES: Route[] = [
  {
    method: 'GET',
    path: '/v1/health',
    operationId: 'health',
    summary: 'Liveness and database reachability',
    tag: 'health',
    tenant: 'none',
    response: { status: 200, schema: 'Health', description: 'The API and its database answer' },
    async handler(ctx) {
      await runQuery(ctx.db, 'SELECT 1');
      return ok({ status: 'ok' });
    },
  },
  {
    method: 'GET',
    path: '/v1/event-types',
    operationId: 'listEventTypes',
    summary: 'The event catalog, plus types seen in the outbox',
    tag: 'events',
    tenant: 'optional',
    response: { status: 200, schema: 'EventTypeList', description: 'Catalog entries first, by type' },
    async handler(ctx, req) {
      checkQuery(req.query, []);
      const t = tenant(req, 'optional');
      const seen = new Set(await seenEventTypes(ctx.db, t));
      const items = ctx.catalog.map((c) => ({ ...c, inCatalog: true, seen: seen.has(c.type) }));
      const listed = new Set(ctx.catalog.map((c) => c.type));
      for (const type of seen) if (!listed.has(type)) items.push({ type, inCatalog: false, seen: true });
      items.sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
      return ok({ items });
    },
  },
  {
    method: 'GET',
    path: '/v1/subscriptions',
    operationId: 'listSubscriptions',
    summary: "A page of the tenant's endpoints, by id",
    tag: 'subscriptions',
    tenant: 'required',
    query: [
      q('active', 'Only active (true) or disabled (false) endpoints.', { type: 'boolean' }),
      q('eventType', 'Only endpoints whose patterns match this event type.'),
      ...PAGE_QUERY,
    ],
    response: { status: 200, schema: 'SubscriptionPage', description: 'One page' },
    async handler(ctx, req) {
      checkQuery(req.query, names(this));
      const page = await subscriptions.list(ctx.db, {
        tenantId: tenant(req, 'required'),
        ...defined({
          active: boolParam(req.query, 'active'),
          eventType: single(req.query, 'eventType'),
          limit: intParam(req.query, 'limit'),
          // checked here so that an error names the query parameter, not the library's `after`
          after: validateCursor(single(req.query, 'cursor'), 'cursor'),
        }),
      });
      return ok({ items: page.items.map(subscriptionView), nextCursor: page.nextCursor });
    },
  },
  {
    method: 'POST',
    path: '/v1/subscriptions',
    operationId: 'createSubscription',
    summary: 'Create an endpoint; the answer carries its signing secret, shown this once',
    tag: 'subscriptions',
    tenant: 'required',
    body: 'SubscriptionCreate',
    response: { status: 201, schema: 'SubscriptionWithSecret', description: 'Created' },
    async handler(ctx, req) {
      checkQuery(req.query, []);
      const body = objectBody(req.body);
      const sub = await subscriptions.create(ctx.db, {
        ...(body as object),
        tenantId: tenant(req, 'required'),
      } as Parameters<typeof subscriptions.create>[1]);
      return ok({ subscription: subscriptionView(sub), secret: sub.secret }, 201);
    },
  },
  {
    method: 'GET',
    path: '/v1/subscriptions/{id}',
    operationId: 'getSubscription',
    summary: 'One endpoint (without its secret)',
    tag: 'subscriptions',
    tenant: 'required',
    response: { status: 200, schema: 'Subscription', description: 'The endpoint' },
    async handler(ctx, req) {
      checkQuery(req.query, []);
      const sub = await subscriptions.get(ctx.db, { tenantId: tenant(req, 'required'), id: req.params.id as string });
      return ok(subscriptionView(sub));
    },
  },
  {
    method: 'PATCH',
    path: '/v1/subscriptions/{id}',
    operationId: 'updateSubscription',
    summary: 'Change the given fields of an endpoint',
    tag: 'subscriptions',
    tenant: 'required',
    body: 'SubscriptionUpdate',
    response: { status: 200, schema: 'Subscription', description: 'The updated endpoint' },
    async handler(ctx, req) {
      checkQuery(req.query, []);
      const body = objectBody(req.body);
      if ('id' in body) return idInBody();
      const sub = await subscriptions.update(ctx.db, {
        ...(body as object),
        tenantId: tenant(req, 'required'),
        id: req.params.id as string,
      } as Parameters<typeof subscriptions.update>[1]);
      return ok(subscriptionView(sub));
    },
  },
  {
    method: 'DELETE',
    path: '/v1/subscriptions/{id}',
    operationId: 'deleteSubscription',
    summary: 'Delete an endpoint and its delivery log',
    tag: 'subscriptions',
    tenant: 'required',
    response: { status: 204, description: 'Deleted' },
    async handler(ctx, req) {
      checkQuery(req.query, []);
      await subscriptions.delete(ctx.db, { tenantId: tenant(req, 'required'), id: req.params.id as string });
      return { status: 204 };
    },
  },
  {
    method: 'POST',
    path: '/v1/subscriptions/{id}/disable',
    operationId: 'disableSubscription',
    summary: 'Stop deliveries to an endpoint',
    tag: 'subscriptions',
    tenant: 'required',
    body: 'DisableRequest',
    response: { status: 200, schema: 'Subscription', description: 'The disabled endpoint' },
    async handler(ctx, req) {
      checkQuery(req.query, []);
      const body = objectBody(req.body);
      if ('id' in body) return idInBody();
      const sub = await subscriptions.disable(ctx.db, {
        ...(body as object),
        tenantId: tenant(req, 'required'),
        id: req.params.id as string,
      });
      return ok(subscriptionView(sub));
    },
  },
  {
    method: 'POST',
    path: '/v1/subscriptions/{id}/enable',
    operationId: 'enableSubscription',
    summary: 'Re-activate an endpoint (clears the failure streak and circuit, resumes held deliveries)',
    tag: 'subscriptions',
    tenant: 'required',
    response: {
      status: 200,
      schema: 'EnabledSubscription',
      description: 'The enabled endpoint, and how many pending deliveries it resumes',
    },
    async handler(ctx, req) {
      checkQuery(req.query, []);
      const body = objectBody(req.body);
      if (Object.keys(body).length > 0) return noBody(Object.keys(body)[0] as string);
      const sub = await subscriptions.enable(ctx.db, {
        tenantId: tenant(req, 'required'),
        id: req.params.id as string,
      });
      const { resumedDeliveries, ...record } = sub;
      return ok({ ...subscriptionView(record), resumedDeliveries });
    },
  },
  {
    method: 'POST',
    path: '/v1/subscriptions/{id}/rotate-secret',
    operationId: 'rotateSecret',
    summary: 'Make a new signing secret current; the old one signs too until it expires',
    tag: 'subscriptions',
    tenant: 'required',
    body: 'RotateRequest',
    response: { status: 200, schema: 'SubscriptionWithSecret', description: 'The new secret, shown this once' },
    async handler(ctx, req) {
      checkQuery(req.query, []);
      const body = objectBody(req.body);
      if ('id' in body) return idInBody();
      const sub = await subscriptions.rotateSecret(ctx.db, {
        ...(body as object),
        tenantId: tenant(req, 'required'),
        id: req.params.id as string,
      });
      return ok({ subscription: subscriptionView(sub), secret: sub.secret });
    },
  },
  {
    method: 'POST',
    path: '/v1/subscriptions/{id}/test',
    operationId: 'sendTest',
    summary: 'Send a test event to this endpoint only',
    tag: 'subscriptions',
    tenant: 'required',
    body: 'SendTestRequest',
    response: { status: 202, schema: 'SendTestResult', description: 'Enqueued; a relay sends it' },
    async handler(ctx, req) {
      checkQuery(req.query, []);
      const body = objectBody(req.body);
      if ('subscriptionId' in body) return idInBody();
      const r = await sendTest(ctx.db, {
        ...(body as object),
        tenantId: tenant(req, 'required'),
        subscriptionId: req.params.id as string,
      });
      return ok(r, 202);
    },
  },
  {
    method: 'GET',
    path: '/v1/events',
    operationId: 'listEvents',
    summary: 'A page of events, newest first, with their fan-out',
    tag: 'events',
    tenant: 'optional',
    query: [q('type', 'Only this event type or pattern (message.*).'), ...TIME_QUERY, ...PAGE_QUERY],
    response: { status: 200, schema: 'EventPage', description: 'One page' },
    async handler(ctx, req) {
      checkQuery(req.query, names(this));
      const t = tenant(req, 'optional');
      const page = await deliveryLog.listEvents(ctx.db, {
        ...(t === null ? { allTenants: true } : { tenantId: t }),
        ...defined({
          type: single(req.query, 'type'),
          since: single(req.query, 'since'),
          until: single(req.query, 'until'),
          limit: intParam(req.query, 'limit'),
          cursor: single(req.query, 'cursor'),
        }),
      });
      return ok(page);
    },
  },
  {
    method: 'GET',
    path: '/v1/events/{id}',
    operationId: 'getEvent',
    summary: 'One event with its payload and deliveries',
    tag: 'events',
    tenant: 'required',
    response: { status: 200, schema: 'EventDetail', description: 'The event' },
    async handler(ctx, req) {
      checkQuery(req.query, []);
      return ok(await deliveryLog.getEvent(ctx.db, { tenantId: tenant(req, 'required'), id: req.params.id as string }));
    },
  },
  {
    method: 'POST',
    path: '/v1/events/{id}/replay',
    operationId: 'replayEvent',
    summary: 'Deliver an event again to its matching endpoints (or one)',
    tag: 'events',
    tenant: 'required',
    body: 'ReplayRequest',
    response: { status: 202, schema: 'ReplayResult', description: 'New pending deliveries' },
    async handler(ctx, req) {
      checkQuery(req.query, []);
      const body = objectBody(req.body);
      if ('eventId' in body) return idInBody();
      const r = await replayEvent(ctx.db, {
        ...(body as object),
        tenantId: tenant(req, 'required'),
        eventId: req.params.id as string,
      });
      return ok(r, 202);
    },
  },
  {
    method: 'GET',
    path: '/v1/deliveries',
    operationId: 'listDeliveries',
    summary: 'A page of deliveries, newest first',
    tag: 'deliveries',
    tenant: 'optional',
    query: [
      q('subscriptionId', 'Only deliveries to this endpoint.'),
      q('eventType', 'Only events of this type or pattern.'),
      q('status', 'Comma-separated: pending, succeeded, dead, cancelled.'),
      q('orderingKey', 'Only deliveries of events with this ordering key.'),
      ...TIME_QUERY,
      ...PAGE_QUERY,
    ],
    response: { status: 200, schema: 'DeliveryPage', description: 'One page' },
    async handler(ctx, req) {
      checkQuery(req.query, names(this));
      const t = tenant(req, 'optional');
      const page = await deliveryLog.listDeliveries(ctx.db, {
        ...(t === null ? { allTenants: true } : { tenantId: t }),
        ...defined({
          subscriptionId: single(req.query, 'subscriptionId'),
          eventType: single(req.query, 'eventType'),
          status: listParam(req.query, 'status') as never,
          orderingKey: single(req.query, 'orderingKey'),
          since: single(req.query, 'since'),
          until: single(req.query, 'until'),
          limit: intParam(req.query, 'limit'),
          cursor: single(req.query, 'cursor'),
        }),
      });
      return ok(page);
    },
  },
  {
    method: 'GET',
    path: '/v1/deliveries/{id}',
    operationId: 'getDelivery',
    summary: 'One delivery with every attempt (request headers without secrets, response excerpt)',
    tag: 'deliveries',
    tenant: 'required',
    response: { status: 200, schema: 'DeliveryDetail', description: 'The delivery' },
    async handler(ctx, req) {
      checkQuery(req.query, []);
      const tenantId = tenant(req, 'required');
      const detail = await deliveryLog.getDelivery(ctx.db, { tenantId, id: req.params.id as string });
      const sub = await subscriptions.get(ctx.db, { tenantId, id: detail.delivery.subscriptionId });
      const attempts = detail.attempts.map((a) => ({
        ...a,
        request: {
          method: 'POST',
          url: detail.delivery.url,
          headers: requestHeaders(detail.delivery.eventId, a.startedAt, sub.headers),
        },
      }));
      return ok({ delivery: detail.delivery, attempts });
    },
  },
  {
    method: 'POST',
    path: '/v1/deliveries/{id}/retry',
    operationId: 'retryDelivery',
    summary: 'Send a failed delivery again (a new delivery; the log keeps the old one)',
    tag: 'deliveries',
    tenant: 'required',
    response: { status: 202, schema: 'RetryResult', description: 'The new (or already pending) delivery' },
    async handler(ctx, req) {
      checkQuery(req.query, []);
      const body = objectBody(req.body);
      if (Object.keys(body).length > 0) return noBody(Object.keys(body)[0] as string);
      return ok(await retryDelivery(ctx.db, { tenantId: tenant(req, 'required'), id: req.params.id as string }), 202);
    },
  },
  {
    method: 'POST',
    path: '/v1/recover',
    operationId: 'recoverDead',
    summary: 'Replay dead deliveries in bulk (operators without ?tenant=: every tenant)',
    tag: 'deliveries',
    tenant: 'optional',
    body: 'RecoverRequest',
    response: { status: 200, schema: 'RecoverResult', description: 'What was (or would be) replayed' },
    async handler(ctx, req) {
      checkQuery(req.query, []);
      const body = objectBody(req.body);
      for (const key of ['allTenants', 'onProgress', 'batchSize']) {
        if (key in body) return noBody(key);
      }
      const t = tenant(req, 'optional');
      const r = await recoverDead(ctx.db, {
        ...(body as object),
        ...(t === null ? { allTenants: true } : { tenantId: t }),
        ...defined({
          since: validateTime(body.since, 'since') ?? undefined,
          until: validateTime(body.until, 'until') ?? undefined,
        }),
      });
      return ok(r);
    },
  },
  {
    method: 'GET',
    path: '/v1/stats',
    operationId: 'getStats',
    summary: 'Per-endpoint delivery statistics and per-tenant usage',
    tag: 'stats',
    tenant: 'optional',
    query: [q('since', 'Count from this ISO 8601 time (default: all retained history).')],
    response: { status: 200, schema: 'Stats', description: 'Statistics' },
    async handler(ctx, req) {
      checkQuery(req.query, names(this));
      const t = tenant(req, 'optional');
      return ok(
        await stats(ctx.db, {
          ...(t === null ? { allTenants: true } : { tenantId: t }),
          ...defined({ since: single(req.query, 'since') }),
        }),
      );
    },
  },
  {
    method: 'GET',
    path: '/v1/stats/series',
    operationId: 'getSeries',
    summary: 'Attempts per time bucket: throughput, success, latency (for charts)',
    tag: 'stats',
    tenant: 'optional',
    query: [
      q('subscriptionId', 'Only attempts to this endpoint.'),
      q('since', 'Start (ISO 8601; default 24 h before until).'),
      q('until', 'End (ISO 8601; default now).'),
      q('bucket', 'Bucket width.', { type: 'string', enum: ['1m', '5m', '15m', '1h', '1d'] }),
    ],
    response: { status: 200, schema: 'Series', description: 'The series, empty buckets as zeros' },
    async handler(ctx, req) {
      checkQuery(req.query, names(this));
      const t = tenant(req, 'optional');
      const subscriptionId = single(req.query, 'subscriptionId');
      if (subscriptionId !== undefined && t !== null) {
        await subscriptions.get(ctx.db, { tenantId: t, id: subscriptionId }); // not_found for another tenant's
      }
      return ok(
        await attemptSeries(ctx.db, {
          tenantId: t,
          ...defined({
            subscriptionId,
            since: single(req.query, 'since'),
            until: single(req.query, 'until'),
            bucket: single(req.query, 'bucket'),
          }),
        }),
      );
    },
  },
];

function defined<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as { [K in keyof T]?: Exclude<T[K], undefined> };
}

function idInBody(): never {
  throw new ValidationError('id', 'unknown', 'is taken from the path, not the body');
}

function noBody(key: string): never {
  throw new ValidationError(key, 'unknown', 'is not a field of this request');
}
