/**
 * `@hookbox/outbox/api`: the HTTP API as framework-free handlers. A host (hookbox serve,
 * the NestJS controller, any framework) authenticates the caller, builds an `ApiRequest`,
 * and writes back the `ApiResponse`:
 *
 * ```ts
 * const api = createApi({ db: pool, catalog });
 * const res = await api.handle({ method: 'GET', path: '/v1/deliveries', query, body, auth: { tenantId: 'acme' } });
 * ```
 *
 * Errors never throw out of `handle`: they become `{ status, body: { error: { code, message } } }`
 * with a stable code (`ApiErrorCode`). A 500 says nothing of the cause; `onError` hears it.
 *
 * Write the body with `stringifyJson(body)`, not `JSON.stringify` (nor a framework's
 * `res.json`, which calls it): an event payload written through SQL may nest deeper than
 * JSON.stringify's call stack, and the API answers whatever the database holds.
 */
import { HookboxError, ValidationError } from '../errors.js';
import { isValidEventType } from '../event-types.js';
import type { Executor } from '../executor.js';
import { stringifyJson } from '../json-text.js';
import { type OpenApiOptions, openApiDocument } from './openapi.js';
import { checkQueryValues } from './params.js';
import { type ApiContext, ROUTES, type Route } from './routes.js';
import { ApiError, type ApiRequest, type ApiResponse, type CatalogEntry } from './types.js';

export { stringifyJson } from '../json-text.js';
export type { OpenApiOptions } from './openapi.js';
export { openApiDocument, SCHEMAS } from './openapi.js';
export type { ApiContext, QueryParam, Route } from './routes.js';
export { ROUTES, subscriptionView } from './routes.js';
export type { Series, SeriesBucket, SeriesInput, SeriesPoint } from './series.js';
export { attemptSeries, MAX_SERIES_POINTS, SERIES_BUCKETS, seenEventTypes } from './series.js';
export type { ApiAuth, ApiErrorCode, ApiRequest, ApiResponse, CatalogEntry, RouteRequest } from './types.js';
export { API_ERROR_STATUS, ApiError } from './types.js';

export interface ApiOptions {
  /** Where the SQL runs: a pg Pool, a drizzle database, TypeORM's DataSource/EntityManager… */
  db: Executor;
  /** Event types offered to tenants creating an endpoint. Default: none (the types seen in the outbox are listed anyway). */
  catalog?: readonly CatalogEntry[];
  /** Told of every unexpected error (answered as a bare 500). Default: none. */
  onError?: (err: unknown, req: ApiRequest) => void;
  /** For the OpenAPI document's `servers` and `info.version`. */
  openapi?: OpenApiOptions;
}

export interface Api {
  /** Routes, matches and runs one request. Never throws. */
  handle(req: ApiRequest): Promise<ApiResponse>;
  /** The route table (for hosts that register each route with their framework). */
  routes: readonly Route[];
  /** Runs one route's handler with its path parameters already matched. Never throws. */
  run(route: Route, req: ApiRequest & { params: Record<string, string> }): Promise<ApiResponse>;
  /** The OpenAPI 3.1 document (also answered by `GET /openapi.json`). */
  openapi: Record<string, unknown>;
}

/** A JSON error body. */
export function errorBody(err: ApiError): { error: Record<string, string> } {
  const error: Record<string, string> = { code: err.code, message: err.message };
  if (err.field !== undefined) error.field = err.field;
  if (err.rule !== undefined) error.rule = err.rule;
  return { error };
}

/** Library and API errors into API errors; anything else is `internal`. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof ValidationError) {
    return new ApiError('invalid_input', err.message, { field: err.field, rule: err.rule, cause: err });
  }
  if (err instanceof HookboxError && err.code === 'HOOKBOX_NOT_FOUND') {
    return new ApiError('not_found', err.message, { cause: err });
  }
  return new ApiError('internal', 'internal error', { cause: err });
}

/** Checks catalog entries once, at the boundary; keeps only the known fields. */
export function validateCatalog(catalog: unknown): CatalogEntry[] {
  if (!Array.isArray(catalog)) {
    throw new ValidationError(
      'catalog',
      'type',
      'must be an array of { type, description?, firesWhen?, schema?, example? }',
    );
  }
  const seen = new Set<string>();
  return catalog.map((c, i) => {
    const e = (c ?? {}) as Record<string, unknown>;
    if (typeof e.type !== 'string' || !isValidEventType(e.type)) {
      throw new ValidationError(`catalog[${i}].type`, 'format', 'must be an event type like message.new');
    }
    if (seen.has(e.type)) throw new ValidationError(`catalog[${i}].type`, 'duplicate', `${e.type} is listed twice`);
    seen.add(e.type);
    const out: CatalogEntry = { type: e.type };
    for (const key of ['description', 'firesWhen'] as const) {
      if (e[key] === undefined) continue;
      if (typeof e[key] !== 'string') throw new ValidationError(`catalog[${i}].${key}`, 'type', 'must be a string');
      out[key] = e[key];
    }
    if (e.schema !== undefined) out.schema = e.schema;
    if (e.example !== undefined) out.example = e.example;
    return out;
  });
}

interface Compiled {
  route: Route;
  re: RegExp;
  keys: string[];
}

function compile(route: Route): Compiled {
  const keys: string[] = [];
  const source = route.path.replace(/\{(\w+)\}/g, (_, k: string) => {
    keys.push(k);
    return '([^/]+)';
  });
  return { route, re: new RegExp(`^${source}/?$`), keys };
}

// A JSON round trip: Dates become ISO strings, undefined fields vanish, exactly as the wire
// shows them. Without recursion: an event payload written through SQL may nest deeper than
// JSON.stringify's call stack (JSON.parse does not recurse).
const json = (body: unknown): unknown => (body === undefined ? undefined : JSON.parse(stringifyJson(body)));

export function createApi(options: ApiOptions): Api {
  const ctx: ApiContext = { db: options.db, catalog: validateCatalog(options.catalog ?? []) };
  const compiled = ROUTES.map(compile);
  const openapi = openApiDocument(ROUTES, options.openapi);

  async function run(route: Route, req: ApiRequest & { params: Record<string, string> }): Promise<ApiResponse> {
    try {
      checkQueryValues(req.query);
      const res = await route.handler(ctx, req);
      return { status: res.status, ...(res.body === undefined ? {} : { body: json(res.body) }) };
    } catch (err) {
      const e = toApiError(err);
      if (e.code === 'internal') options.onError?.(err, req);
      return { status: e.status, body: errorBody(e) };
    }
  }

  async function handle(req: ApiRequest): Promise<ApiResponse> {
    const method = String(req.method).toUpperCase();
    const path = String(req.path);
    if (path === '/openapi.json' || path === '/openapi.json/') {
      if (method !== 'GET' && method !== 'HEAD') {
        const e = new ApiError('method_not_allowed', `${method} is not allowed here (allowed: GET)`);
        return { status: e.status, body: errorBody(e) };
      }
      return { status: 200, body: openapi };
    }
    const allowed: string[] = [];
    for (const c of compiled) {
      const m = c.re.exec(path);
      if (!m) continue;
      if (c.route.method !== method && !(method === 'HEAD' && c.route.method === 'GET')) {
        allowed.push(c.route.method);
        continue;
      }
      const params: Record<string, string> = {};
      let bad = false;
      c.keys.forEach((k, i) => {
        try {
          params[k] = decodeURIComponent(m[i + 1] as string);
        } catch {
          bad = true;
        }
      });
      if (bad) break;
      return run(c.route, { ...req, params });
    }
    const e =
      allowed.length > 0
        ? new ApiError('method_not_allowed', `${method} is not allowed here (allowed: ${allowed.join(', ')})`)
        : new ApiError('route_not_found', `no route ${method} ${path}`);
    return { status: e.status, body: errorBody(e) };
  }

  return { handle, run, routes: ROUTES, openapi };
}
export type {
  ApiKeyRecord,
  CreatedApiKey,
  CreatePortalTokenInput,
  PortalClaims,
  PortalToken,
} from './credentials.js';
export {
  API_KEY_PREFIX,
  createApiKey,
  createPortalToken,
  listApiKeys,
  PORTAL_TOKEN_PREFIX,
  PORTAL_TOKEN_TTL,
  PortalTokenVerifier,
  revokeApiKey,
  touchApiKey,
  verifyApiKey,
} from './credentials.js';
