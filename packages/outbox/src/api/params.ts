/**
 * Query strings and bodies into the library's input: every value arrives as text (or a
 * parsed JSON body) and leaves typed, or as an `invalid_input` error naming the field.
 */
import { ValidationError } from '../errors.js';
import { validateTenantId } from '../validate.js';
import { type ApiAuth, ApiError, type ApiRequest } from './types.js';

type Query = ApiRequest['query'];

/** The one value of a query parameter; a repeated one is refused. */
export function single(query: Query, name: string): string | undefined {
  const v = query?.[name];
  if (v === undefined) return undefined;
  if (Array.isArray(v)) {
    if (v.length === 1) return v[0];
    throw new ValidationError(name, 'single', 'must be given once');
  }
  return v;
}

/**
 * Refuses query values that are neither text nor a list of texts. Hosts with a nested query
 * parser (Express 4's default `qs`, NestJS 10) turn `?status[x]=1` into an object; the
 * handlers read text, so that is bad input (400), not a crash (500).
 */
export function checkQueryValues(query: unknown): void {
  if (query === undefined || query === null) return;
  if (typeof query !== 'object' || Array.isArray(query)) {
    throw new ValidationError('query', 'type', 'must map parameter names to values');
  }
  for (const [key, v] of Object.entries(query)) {
    if (v === undefined || typeof v === 'string') continue;
    if (Array.isArray(v) && v.every((s) => typeof s === 'string')) continue;
    throw new ValidationError(key, 'type', 'must be a plain query value (name=value), not a nested object or array');
  }
}

/** Refuses query parameters the route does not know (a typo must not silently widen a filter). */
export function checkQuery(query: Query, known: readonly string[]): void {
  for (const key of Object.keys(query ?? {})) {
    if (query?.[key] === undefined) continue;
    if (key !== 'tenant' && !known.includes(key)) {
      const list = ['tenant', ...known].join(', ');
      throw new ValidationError(key, 'unknown', `is not a query parameter of this route (known: ${list})`);
    }
  }
}

export function intParam(query: Query, name: string): number | undefined {
  const v = single(query, name);
  if (v === undefined) return undefined;
  if (!/^-?\d{1,15}$/.test(v)) throw new ValidationError(name, 'type', 'must be a whole number');
  return Number(v);
}

export function boolParam(query: Query, name: string): boolean | undefined {
  const v = single(query, name);
  if (v === undefined) return undefined;
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new ValidationError(name, 'type', 'must be true or false');
}

/** A comma-separated list (`status=dead,pending`) or a repeated parameter. */
export function listParam(query: Query, name: string): string[] | undefined {
  const v = query?.[name];
  if (v === undefined) return undefined;
  return (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).filter((s) => s !== '');
}

/** A JSON object body (or none, as `{}`); anything else is `invalid_input`. */
export function objectBody(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) {
    throw new ValidationError('body', 'type', 'must be a JSON object');
  }
  const out = body as Record<string, unknown>;
  // The tenant comes from the credentials (or ?tenant= for operators), never from the body.
  if ('tenantId' in out)
    throw new ValidationError('tenantId', 'unknown', 'is taken from the credentials, not the body');
  return out;
}

/** Fails with 401 unless the request carries a usable identity. */
export function requireAuth(auth: ApiAuth | undefined): ApiAuth {
  if (auth && auth.operator === true) return auth;
  if (auth && typeof auth.tenantId === 'string' && auth.tenantId !== '') return auth;
  throw new ApiError('unauthorized', 'send an operator API key or a tenant portal token');
}

/**
 * The tenant a request acts on. A tenant credential acts on its own tenant only (naming
 * another in `?tenant=` is forbidden). An operator names one with `?tenant=`; when the
 * route reads across tenants and none is named, the result is null (every tenant).
 */
export function resolveTenant(req: ApiRequest, mode: 'required' | 'optional'): string | null {
  const auth = requireAuth(req.auth);
  const named = single(req.query, 'tenant');
  if (auth.operator !== true) {
    if (named !== undefined && named !== auth.tenantId) {
      throw new ApiError('forbidden', 'a tenant credential cannot act on another tenant', { field: 'tenant' });
    }
    return auth.tenantId;
  }
  if (named === undefined) {
    if (mode === 'optional') return null;
    throw new ApiError('tenant_required', 'operators name the tenant of this route with ?tenant=<id>', {
      field: 'tenant',
      rule: 'required',
    });
  }
  return validateTenantId(named, 'tenant');
}
