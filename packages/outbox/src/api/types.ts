/**
 * The HTTP API's request and response as plain objects: no HTTP framework. `hookbox serve`
 * and the NestJS controller both turn their framework's request into an `ApiRequest`, call
 * the same handler, and write the `ApiResponse` back.
 */

/** Who is calling, already authenticated by the host (API key, portal token, session…). */
export type ApiAuth =
  /** An operator: every tenant. Tenant-scoped routes then take the tenant from `?tenant=`. */
  | { operator: true; tenantId?: undefined }
  /** One tenant (a portal token or the host's signed-in user): never sees another tenant's rows. */
  | { tenantId: string; operator?: false };

export interface ApiRequest {
  /** `GET`, `POST`, `PATCH`, `DELETE` (case-insensitive). */
  method: string;
  /** The path below the API's mount point, e.g. `/v1/subscriptions/0192…` (no query string). */
  path: string;
  /** Query parameters; a repeated parameter may be an array. */
  query?: Record<string, string | string[] | undefined>;
  /** The parsed JSON body, or undefined when there is none. */
  body?: unknown;
  /** Who is calling; absent for the public routes (health, the OpenAPI document). */
  auth?: ApiAuth | undefined;
}

/** Route handlers get the path parameters already matched. */
export interface RouteRequest extends ApiRequest {
  params: Record<string, string>;
}

export interface ApiResponse {
  status: number;
  /**
   * A JSON-ready value (dates as ISO strings); undefined for 204. An event's payload in it
   * may nest deeper than JSON.stringify's call stack: write it with `stringifyJson`.
   */
  body?: unknown;
}

/** Stable error codes of the API's JSON errors: `{ "error": { "code", "message", … } }`. */
export type ApiErrorCode =
  | 'invalid_input'
  | 'invalid_json'
  | 'not_found'
  | 'route_not_found'
  | 'method_not_allowed'
  | 'unauthorized'
  | 'forbidden'
  | 'tenant_required'
  | 'csrf_rejected'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'internal';

export const API_ERROR_STATUS: Record<ApiErrorCode, number> = {
  invalid_input: 400,
  invalid_json: 400,
  tenant_required: 400,
  unauthorized: 401,
  forbidden: 403,
  csrf_rejected: 403,
  not_found: 404,
  route_not_found: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal: 500,
};

/** An error the API answers with its own status and stable code. */
export class ApiError extends Error {
  readonly code: ApiErrorCode;
  readonly status: number;
  /** For `invalid_input`: the offending field and the rule it broke. */
  readonly field?: string;
  readonly rule?: string;
  constructor(code: ApiErrorCode, message: string, extra: { field?: string; rule?: string; cause?: unknown } = {}) {
    super(message, { cause: extra.cause });
    this.name = 'ApiError';
    this.code = code;
    this.status = API_ERROR_STATUS[code];
    if (extra.field !== undefined) this.field = extra.field;
    if (extra.rule !== undefined) this.rule = extra.rule;
  }
}

/** An event type the portal offers when a tenant creates an endpoint. */
export interface CatalogEntry {
  /** `message.new` */
  type: string;
  /** One line for people. */
  description?: string;
  /** When it fires, for people. */
  firesWhen?: string;
  /** The payload's JSON Schema, shown to the tenant. */
  schema?: unknown;
  /** An example payload (also what the portal's "send test" of this type sends). */
  example?: unknown;
}
