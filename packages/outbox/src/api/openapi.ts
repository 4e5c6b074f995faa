/**
 * The OpenAPI 3.1 document, generated from the route table (paths, parameters, bodies,
 * answers) and the component schemas below. Response schemas are closed
 * (`additionalProperties: false`) so the tests, which validate real answers against them,
 * notice any drift between the document and the handlers.
 */
import { DELIVERY_STATUSES, ORDERING_ON_DEAD } from '../schema.js';
import type { Route } from './routes.js';
import { API_ERROR_STATUS } from './types.js';

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const nullable = (type: string, extra: Schema = {}): Schema => ({ type: [type, 'null'], ...extra });
const time: Schema = { type: 'string', format: 'date-time' };
const timeOrNull: Schema = nullable('string', { format: 'date-time' });
const int: Schema = { type: 'integer' };
const obj = (properties: Record<string, Schema>, required = Object.keys(properties), closed = true): Schema => ({
  type: 'object',
  properties,
  required,
  ...(closed ? { additionalProperties: false } : {}),
});
const arrayOf = (items: Schema): Schema => ({ type: 'array', items });
const page = (item: string): Schema =>
  obj({
    items: arrayOf(ref(item)),
    nextCursor: { ...nullable('string'), description: 'Pass as `cursor` for the next page' },
  });

const statusEnum: Schema = { type: 'string', enum: [...DELIVERY_STATUSES] };
const headersMap: Schema = { type: 'object', additionalProperties: { type: 'string' } };

/** The subscription object, shared by Subscription and EnabledSubscription. */
const SUBSCRIPTION: Record<string, Schema> = {
  id: { type: 'string', format: 'uuid' },
  tenantId: { type: 'string' },
  url: { type: 'string' },
  eventTypes: arrayOf({ type: 'string' }),
  description: nullable('string'),
  previousSecretExpiresAt: timeOrNull,
  rotating: { type: 'boolean', description: 'The previous secret still signs' },
  headers: {
    ...headersMap,
    description:
      'Custom header names, each with the value [redacted]: values often hold tokens (send the whole map to change them)',
  },
  active: { type: 'boolean' },
  disabledReason: nullable('string'),
  disabledAt: timeOrNull,
  maxInFlight: nullable('integer'),
  rateLimit: { ...nullable('integer'), description: 'Most requests per second, across all relays; null: no limit' },
  requestTimeoutMs: { ...nullable('integer'), description: "Time allowed per request in ms; null: the relay's" },
  retryScheduleMs: {
    ...nullable('array'),
    items: int,
    description: "Delays before each retry in ms; null: the relay's --retry-schedule",
  },
  orderingOnDead: {
    type: 'string',
    enum: [...ORDERING_ON_DEAD],
    description: 'Ordered events whose delivery went dead: block the key, or skip',
  },
  failureStreak: int,
  lastSuccessAt: timeOrNull,
  lastFailureAt: timeOrNull,
  failingSince: { ...timeOrNull, description: 'Start of the current run of failures; null while healthy' },
  circuit: {
    type: 'string',
    enum: ['closed', 'open', 'half-open'],
    description:
      'Circuit breaker: open holds deliveries (no attempts spent) until circuitOpenUntil; half-open sends one probe at a time',
  },
  circuitOpenUntil: timeOrNull,
  circuitCooldownMs: nullable('integer'),
  probeUntil: timeOrNull,
  createdAt: time,
  updatedAt: time,
};

const EVENT_PROPS: Record<string, Schema> = {
  id: { type: 'string', format: 'uuid' },
  tenantId: { type: 'string' },
  type: { type: 'string' },
  idempotencyKey: nullable('string'),
  orderingKey: nullable('string'),
  orderingSeq: {
    ...nullable('integer'),
    description: "Position among the key's events, in commit order; null until the relay fans the event out",
  },
  createdAt: time,
  fannedOutAt: timeOrNull,
  deliveries: ref('Fanout'),
};

export const SCHEMAS: Record<string, Schema> = {
  Error: obj({
    error: obj(
      {
        code: { type: 'string', enum: Object.keys(API_ERROR_STATUS), description: 'Stable; branch on it' },
        message: { type: 'string' },
        field: { type: 'string', description: 'The offending field (invalid_input)' },
        rule: { type: 'string', description: 'The rule it broke (invalid_input)' },
      },
      ['code', 'message'],
    ),
  }),
  Health: obj({ status: { type: 'string', const: 'ok' } }),
  EventType: obj(
    {
      type: { type: 'string' },
      description: { type: 'string' },
      firesWhen: { type: 'string' },
      schema: { description: "The payload's JSON Schema" },
      example: { description: 'An example payload' },
      inCatalog: { type: 'boolean' },
      seen: { type: 'boolean', description: 'Found in the outbox' },
    },
    ['type', 'inCatalog', 'seen'],
  ),
  EventTypeList: obj({ items: arrayOf(ref('EventType')) }),
  Subscription: obj(SUBSCRIPTION),
  EnabledSubscription: obj({
    ...SUBSCRIPTION,
    resumedDeliveries: { ...int, description: 'Pending deliveries of the endpoint, resumed (held ones due now)' },
  }),
  SubscriptionWithSecret: obj({
    subscription: ref('Subscription'),
    secret: { type: 'string', description: '`whsec_…`: shown in this answer only' },
  }),
  SubscriptionPage: page('Subscription'),
  SubscriptionCreate: obj(
    {
      url: { type: 'string', description: 'Absolute http(s) URL, ≤ 2,048 characters' },
      eventTypes: { ...arrayOf({ type: 'string' }), minItems: 1, description: 'Patterns: message.new, message.*, *' },
      secret: { type: 'string', description: 'Default: generated' },
      description: nullable('string'),
      headers: headersMap,
      maxInFlight: nullable('integer'),
      orderingOnDead: {
        type: 'string',
        enum: [...ORDERING_ON_DEAD],
        description: 'Ordered events whose delivery went dead: block the key, or skip',
      },
      rateLimit: { ...nullable('integer'), description: 'Requests per second, 1–10000; null: no limit' },
      requestTimeoutMs: { ...nullable('integer'), description: "1–3600000 ms; null: the relay's" },
      retryScheduleMs: {
        ...nullable('array'),
        items: int,
        description: "Delays before each retry in ms; null: the relay's --retry-schedule",
      },
    },
    ['url', 'eventTypes'],
  ),
  SubscriptionUpdate: obj(
    {
      url: { type: 'string' },
      eventTypes: arrayOf({ type: 'string' }),
      description: nullable('string'),
      headers: headersMap,
      active: { type: 'boolean' },
      maxInFlight: nullable('integer'),
      orderingOnDead: {
        type: 'string',
        enum: [...ORDERING_ON_DEAD],
        description: 'Ordered events whose delivery went dead: block the key, or skip',
      },
      rateLimit: { ...nullable('integer'), description: 'Requests per second, 1–10000; null removes the limit' },
      requestTimeoutMs: { ...nullable('integer'), description: "1–3600000 ms; null: the relay's" },
      retryScheduleMs: {
        ...nullable('array'),
        items: int,
        description: "Delays before each retry in ms; null: the relay's --retry-schedule",
      },
    },
    [],
  ),
  DisableRequest: obj({ reason: nullable('string') }, []),
  RotateRequest: obj(
    { secret: { type: 'string' }, previousSecretTtlMs: { type: 'integer', description: 'Default 24 h' } },
    [],
  ),
  SendTestRequest: obj({ type: { type: 'string', description: 'Default hookbox.ping' }, payload: {} }, []),
  SendTestResult: obj({ eventId: { type: 'string', format: 'uuid' }, deliveryId: int }),
  ReplayRequest: obj({ subscriptionId: { type: 'string', format: 'uuid' } }, []),
  RecoverRequest: obj(
    {
      subscriptionId: { type: 'string', format: 'uuid' },
      since: { type: 'string', description: 'Went dead at or after (ISO 8601)' },
      until: { type: 'string', description: 'Went dead before (ISO 8601)' },
      limit: int,
      dryRun: { type: 'boolean' },
    },
    [],
  ),
  Delivery: obj({
    id: int,
    eventId: { type: 'string', format: 'uuid' },
    eventType: { type: 'string' },
    subscriptionId: { type: 'string', format: 'uuid' },
    url: { type: 'string' },
    tenantId: { type: 'string' },
    status: statusEnum,
    attempts: int,
    nextAttemptAt: time,
    lockedUntil: timeOrNull,
    lastStatus: nullable('integer'),
    lastError: nullable('string'),
    lastAttemptAt: timeOrNull,
    replayOf: nullable('integer'),
    createdAt: time,
    completedAt: timeOrNull,
    orderingKey: nullable('string'),
    orderingSeq: nullable('integer'),
  }),
  DeliveryPage: page('Delivery'),
  Attempt: obj({
    id: int,
    attempt: int,
    startedAt: time,
    durationMs: int,
    statusCode: nullable('integer'),
    errorClass: nullable('string'),
    errorMessage: nullable('string'),
    responseExcerpt: nullable('string'),
    request: obj({
      method: { type: 'string' },
      url: { type: 'string' },
      headers: { ...headersMap, description: 'As sent, with the signature and custom header values redacted' },
    }),
  }),
  DeliveryDetail: obj({ delivery: ref('Delivery'), attempts: arrayOf(ref('Attempt')) }),
  Fanout: obj({ total: int, pending: int, succeeded: int, dead: int, cancelled: int }),
  Event: obj(EVENT_PROPS),
  EventPage: page('Event'),
  EventDetail: obj({
    event: obj({ ...EVENT_PROPS, payload: { description: 'As enqueued' } }),
    deliveries: arrayOf(ref('Delivery')),
  }),
  ReplayedDelivery: obj({
    id: int,
    eventId: { type: 'string', format: 'uuid' },
    subscriptionId: { type: 'string', format: 'uuid' },
    tenantId: { type: 'string' },
    status: statusEnum,
    replayOf: nullable('integer'),
    createdAt: time,
  }),
  RetryResult: obj({ delivery: ref('ReplayedDelivery'), created: { type: 'boolean' } }),
  ReplayResult: obj({
    eventId: { type: 'string', format: 'uuid' },
    created: arrayOf(ref('ReplayedDelivery')),
    alreadyPending: arrayOf(ref('ReplayedDelivery')),
  }),
  RecoverResult: obj({
    matched: int,
    replayed: int,
    alreadyReplayed: int,
    subscriptionDisabled: int,
    batches: int,
    limitReached: { type: 'boolean' },
    dryRun: { type: 'boolean' },
    bySubscription: arrayOf(
      obj({ subscriptionId: { type: 'string' }, tenantId: { type: 'string' }, url: { type: 'string' }, count: int }),
    ),
  }),
  SubscriptionStats: obj({
    subscriptionId: { type: 'string', format: 'uuid' },
    tenantId: { type: 'string' },
    url: { type: 'string' },
    active: { type: 'boolean' },
    attempts: int,
    successes: int,
    failures: int,
    successRate: nullable('number'),
    p50Ms: nullable('number'),
    p95Ms: nullable('number'),
    dead: int,
    pending: int,
    blockedKeys: { ...int, description: 'Ordering keys held by a dead delivery (policy block), now' },
    lastSuccessAt: timeOrNull,
    lastFailureAt: timeOrNull,
    circuit: { type: 'string', enum: ['closed', 'open', 'half-open'] },
    circuitOpenUntil: timeOrNull,
  }),
  TenantUsage: obj({
    tenantId: { type: 'string' },
    events: int,
    deliveries: int,
    pending: int,
    succeeded: int,
    dead: int,
    cancelled: int,
    attempts: int,
  }),
  Stats: obj({
    since: timeOrNull,
    generatedAt: time,
    subscriptions: arrayOf(ref('SubscriptionStats')),
    tenants: arrayOf(ref('TenantUsage')),
  }),
  Series: obj({
    since: time,
    until: time,
    bucket: { type: 'string', enum: ['1m', '5m', '15m', '1h', '1d'] },
    points: arrayOf(
      obj({
        t: time,
        attempts: int,
        successes: int,
        failures: int,
        p50Ms: nullable('integer'),
        p95Ms: nullable('integer'),
      }),
    ),
  }),
};

export interface OpenApiOptions {
  /** Where the routes are mounted, e.g. `/api` (default: the server root). */
  basePath?: string;
  /** `info.version`. Default `0.1.0`. */
  version?: string;
}

const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: ref('Error') } },
});

/** Builds the OpenAPI 3.1 document of `routes`. */
export function openApiDocument(routes: readonly Route[], options: OpenApiOptions = {}): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const parameters: Schema[] = [];
    for (const name of r.path.match(/\{(\w+)\}/g) ?? []) {
      parameters.push({ name: name.slice(1, -1), in: 'path', required: true, schema: { type: 'string' } });
    }
    if (r.tenant !== 'none') {
      parameters.push({
        name: 'tenant',
        in: 'query',
        required: false,
        description:
          r.tenant === 'required'
            ? 'Operators: the tenant to act on (required). Tenant tokens: their own tenant or omitted.'
            : 'Operators: one tenant (omit for every tenant). Tenant tokens: their own tenant or omitted.',
        schema: { type: 'string' },
      });
    }
    for (const p of r.query ?? []) {
      parameters.push({ name: p.name, in: 'query', required: false, description: p.description, schema: p.schema });
    }
    const responses: Record<string, unknown> = {
      [String(r.response.status)]: r.response.schema
        ? { description: r.response.description, content: { 'application/json': { schema: ref(r.response.schema) } } }
        : { description: r.response.description },
    };
    if (r.tenant !== 'none') {
      responses['400'] = errorResponse('invalid_input, invalid_json or tenant_required');
      responses['401'] = errorResponse('unauthorized: no valid API key or portal token');
      responses['403'] = errorResponse('forbidden (another tenant) or csrf_rejected');
      responses['429'] = errorResponse('rate_limited: see Retry-After');
    }
    if (r.tenant !== 'none') responses['404'] = errorResponse('not_found: an id given is absent, or another tenant’s');
    const op: Record<string, unknown> = {
      operationId: r.operationId,
      summary: r.summary,
      tags: [r.tag],
      parameters,
      responses,
      ...(r.tenant === 'none' ? { security: [] } : {}),
    };
    if (r.body) {
      op.requestBody = { required: false, content: { 'application/json': { schema: ref(r.body) } } };
    }
    paths[r.path] = { ...paths[r.path], [r.method.toLowerCase()]: op };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'hookbox API',
      version: options.version ?? '0.1.0',
      description:
        'Webhook endpoints, the delivery log, retries and statistics. Every request acts on one tenant: a portal token’s, or the one an operator names with `?tenant=`. Errors are `{"error":{"code","message"}}` with a stable `code`. Lists are newest first (subscriptions by id) with keyset pagination: pass `nextCursor` as `cursor`.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: options.basePath ?? '/' }],
    security: [{ bearer: [] }],
    paths,
    components: {
      schemas: SCHEMAS,
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'An operator API key (`hbk_…`) or a tenant portal token (`hbp_…`)',
        },
      },
    },
  };
}
