/**
 * Input rules every operation shares (pg-boss keeps its in `attorney.ts`): known option keys,
 * ids, integer ranges and the tenant scope. Each throws a ValidationError naming the field
 * and the rule; none touches the database.
 */
import { NotFoundError, ValidationError } from './errors.js';
import { validateTenantId } from './validate.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID_RE.test(value);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Throws unless `input` is a plain object whose keys are all in `known`. */
export function checkInput(input: unknown, known: readonly string[], what: string): Record<string, unknown> {
  if (!isPlainObject(input)) throw new ValidationError(what, 'required', 'must be an object');
  for (const key of Object.keys(input)) {
    if (!known.includes(key)) {
      throw new ValidationError(key, 'unknown', `is not a field of ${what} (known: ${known.join(', ')})`);
    }
  }
  return input;
}

/**
 * An integer from `min` to `max`; `undefined` gives `fallback` when one is passed. `suffix`
 * extends the message (`, or null`, ` milliseconds`).
 */
export function intInRange(
  value: unknown,
  field: string,
  min: number,
  max: number,
  options: { fallback?: number; suffix?: string } = {},
): number {
  if (value === undefined && options.fallback !== undefined) return options.fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new ValidationError(field, 'range', `must be an integer from ${min} to ${max}${options.suffix ?? ''}`);
  }
  return value;
}

/** A uuid id, lower-cased. A malformed one cannot exist, so it is "not found" (as another tenant's id). */
export function uuidRef(id: unknown, what: string): string {
  if (!isUuid(id)) throw new NotFoundError(what, String(id));
  return id.toLowerCase();
}

/** A delivery id as stored (a positive bigint within JS's safe range); anything else cannot exist. */
export function deliveryIdRef(id: unknown): number {
  const n = typeof id === 'number' ? id : typeof id === 'string' && /^\d{1,16}$/.test(id.trim()) ? Number(id) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new NotFoundError('delivery', String(id));
  return n;
}

/** Which tenants an operator-facing read or bulk operation covers. */
export interface TenantScope {
  /** Only this tenant. Required unless `allTenants` is true. */
  tenantId?: string;
  /** Every tenant (operators only); cannot be combined with `tenantId`. */
  allTenants?: boolean;
}

/** The tenant id, or null for an explicit `allTenants: true`: nothing crosses tenants by accident. */
export function validateScope(input: TenantScope): string | null {
  const all = input.allTenants;
  if (all !== undefined && typeof all !== 'boolean')
    throw new ValidationError('allTenants', 'type', 'must be a boolean');
  if (all) {
    if (input.tenantId !== undefined && input.tenantId !== null) {
      throw new ValidationError('allTenants', 'conflict', 'cannot be combined with tenantId; give one or the other');
    }
    return null;
  }
  return validateTenantId(input.tenantId);
}

/** true or false; undefined/null → null. Anything else (the string "true", 1) is refused, naming `field`. */
export function validateBoolean(value: unknown, field: string): boolean | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'boolean') throw new ValidationError(field, 'type', 'must be true or false');
  return value;
}
