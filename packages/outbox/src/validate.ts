/**
 * Input validation for the outbox write. Runs before any SQL, so bad input never reaches
 * the database and never leaves a half-written row. The SQL function `hookbox.enqueue`
 * (drizzle/0002_enqueue_function.sql) applies the same rules.
 */
import { ValidationError } from './errors.js';
import { EVENT_TYPE_RE, MAX_EVENT_TYPE_LENGTH } from './event-types.js';

export const MAX_TENANT_ID_LENGTH = 255;
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;
/** Default payload limit: 256 KiB of JSON text. Same default as the SQL function. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 262_144;

/** What the caller hands to `enqueue`. */
export interface EventInput<TType extends string = string, TPayload = unknown> {
  /** Owner of the event; it fans out only to this tenant's subscriptions. */
  tenantId: string;
  /** Dot-separated lowercase segments, e.g. `message.new`; at most 255 characters. */
  type: TType;
  /** Any JSON value (objects usually); becomes `data` in the delivered body. */
  payload: TPayload;
  /** Optional; a second enqueue with the same key for the same tenant returns the first id. */
  idempotencyKey?: string | null;
}

/** A validated event, its payload already serialised. */
export interface ValidEvent {
  tenantId: string;
  type: string;
  payloadJson: string;
  idempotencyKey: string | null;
}

export function validateTenantId(tenantId: unknown, field = 'tenantId'): string {
  if (typeof tenantId !== 'string' || tenantId.trim() === '') {
    throw new ValidationError(field, 'required', 'is required and must be a non-empty string');
  }
  if ([...tenantId].length > MAX_TENANT_ID_LENGTH) {
    throw new ValidationError(field, 'max_length', `must be at most ${MAX_TENANT_ID_LENGTH} characters`);
  }
  checkString(tenantId, field);
  return tenantId;
}

export function validateEventType(type: unknown, field = 'type'): string {
  if (typeof type !== 'string' || !EVENT_TYPE_RE.test(type)) {
    throw new ValidationError(
      field,
      'format',
      'must be dot-separated lowercase segments of a-z, 0-9, _ or - (e.g. message.new)',
    );
  }
  if (type.length > MAX_EVENT_TYPE_LENGTH) {
    throw new ValidationError(field, 'max_length', `must be at most ${MAX_EVENT_TYPE_LENGTH} characters`);
  }
  return type;
}

function validateIdempotencyKey(key: unknown, field: string): string | null {
  if (key === undefined || key === null) return null;
  if (typeof key !== 'string' || key.length === 0 || [...key].length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    throw new ValidationError(field, 'max_length', `must be a string of 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters`);
  }
  checkString(key, field);
  return key;
}

/**
 * Checks that `value` is plain JSON that Postgres jsonb accepts and that round-trips:
 * no BigInt, functions, symbols, cycles, non-finite numbers, class instances that
 * JSON would flatten to `{}` (Map, Set), NUL characters or lone surrogates. `undefined`
 * object properties are omitted, as JSON.stringify does.
 */
function checkJson(value: unknown, path: string, ancestors: Set<object>): void {
  switch (typeof value) {
    case 'string':
      checkString(value, path);
      return;
    case 'number':
      if (!Number.isFinite(value)) {
        throw new ValidationError(path, 'json', `must be JSON-serialisable: ${value} is not a JSON number`);
      }
      return;
    case 'boolean':
      return;
    case 'object': {
      if (value === null) return;
      if (ancestors.has(value)) {
        throw new ValidationError(path, 'json', 'must be JSON-serialisable: it contains a cycle');
      }
      const toJSON = (value as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === 'function') {
        // Date, Buffer and friends: check what JSON.stringify will actually write.
        ancestors.add(value);
        checkJson(toJSON.call(value), path, ancestors);
        ancestors.delete(value);
        return;
      }
      ancestors.add(value);
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (value[i] === undefined) {
            throw new ValidationError(`${path}[${i}]`, 'json', 'must be JSON-serialisable: undefined in an array');
          }
          checkJson(value[i], `${path}[${i}]`, ancestors);
        }
      } else {
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) {
          const name = (value as object).constructor?.name ?? 'object';
          throw new ValidationError(path, 'json', `must be JSON-serialisable: a ${name} is not plain JSON`);
        }
        for (const key of Object.keys(value)) {
          const child = (value as Record<string, unknown>)[key];
          if (child === undefined) continue;
          checkString(key, `${path}.${key}`);
          checkJson(child, `${path}.${key}`, ancestors);
        }
      }
      ancestors.delete(value);
      return;
    }
    default:
      throw new ValidationError(path, 'json', `must be JSON-serialisable: a ${typeof value} is not JSON`);
  }
}

function checkString(s: string, path: string): void {
  if (s.includes('\u0000')) {
    throw new ValidationError(
      path,
      'nul',
      'must not contain the NUL character (\\u0000); Postgres jsonb cannot store it',
    );
  }
  if (!s.isWellFormed()) {
    throw new ValidationError(path, 'unicode', 'must be well-formed Unicode (a lone surrogate was found)');
  }
}

/** Validates one event and serialises its payload; throws ValidationError naming field and rule. */
export function validateEvent(input: EventInput, maxPayloadBytes: number, field = ''): ValidEvent {
  if (input === null || typeof input !== 'object') {
    throw new ValidationError(field || 'event', 'required', 'must be an object');
  }
  const f = (name: string) => (field ? `${field}.${name}` : name);
  const tenantId = validateTenantId(input.tenantId, f('tenantId'));
  const type = validateEventType(input.type, f('type'));
  if (input.payload === undefined) {
    throw new ValidationError(f('payload'), 'required', 'is required (use null for an empty payload)');
  }
  checkJson(input.payload, f('payload'), new Set());
  const payloadJson = JSON.stringify(input.payload);
  const bytes = Buffer.byteLength(payloadJson);
  if (bytes > maxPayloadBytes) {
    throw new ValidationError(
      f('payload'),
      'max_bytes',
      `must be at most ${maxPayloadBytes} bytes of JSON (got ${bytes})`,
    );
  }
  const idempotencyKey = validateIdempotencyKey(input.idempotencyKey, f('idempotencyKey'));
  return { tenantId, type, payloadJson, idempotencyKey };
}
