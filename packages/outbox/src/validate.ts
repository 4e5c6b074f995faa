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
  /**
   * Optional (e.g. `conversation:42`): the tenant's events with the same key are numbered
   * in the commit order of their transactions and delivered to each subscription one at a
   * time, in that order. 1 to 255 characters, no control characters. A transaction that
   * enqueues with a key holds that key until it ends: others on the same key wait.
   */
  orderingKey?: string | null;
}

/** A validated event, its payload already serialised. */
export interface ValidEvent {
  tenantId: string;
  type: string;
  payloadJson: string;
  /** UTF-8 bytes of payloadJson. */
  payloadBytes: number;
  idempotencyKey: string | null;
  orderingKey: string | null;
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
  if (typeof key !== 'string') throw new ValidationError(field, 'type', 'must be a string or null');
  if (key.length === 0 || [...key].length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    throw new ValidationError(field, 'max_length', `must be a string of 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters`);
  }
  checkString(key, field);
  return key;
}

export const MAX_ORDERING_KEY_LENGTH = 255;
// C0 and C1 control characters and DEL: invisible in logs and headers (the key is sent in
// the `webhook-ordering-key` header). The SQL function refuses the same range.
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;

export function validateOrderingKey(key: unknown, field = 'orderingKey'): string | null {
  if (key === undefined || key === null) return null;
  if (typeof key !== 'string') throw new ValidationError(field, 'type', 'must be a string or null');
  if (key.length === 0 || [...key].length > MAX_ORDERING_KEY_LENGTH) {
    throw new ValidationError(field, 'max_length', `must be a string of 1 to ${MAX_ORDERING_KEY_LENGTH} characters`);
  }
  if (CONTROL_RE.test(key)) throw new ValidationError(field, 'control_chars', 'must not contain control characters');
  checkString(key, field);
  return key;
}

/**
 * How far below its root a payload may nest a value: in `{"a":{"b":[1]}}` the `1` is three
 * levels down (a scalar payload is level 0). The SQL function `hookbox.enqueue` applies the
 * same limit. Deeper JSON is nearly always a bug or an attack, and every consumer that
 * parses it recursively (receivers, JSON.stringify, Postgres) pays for each level.
 */
export const MAX_PAYLOAD_DEPTH = 64;

/** Objects JSON.stringify would write as `{}`, silently losing their contents. */
const LOSSY: readonly (abstract new (...args: never[]) => unknown)[] = [
  Map,
  Set,
  WeakMap,
  WeakSet,
  Promise,
  RegExp,
  ArrayBuffer,
  SharedArrayBuffer,
];

function isLossy(v: object): boolean {
  if (ArrayBuffer.isView(v)) return true;
  for (const c of LOSSY) if (v instanceof c) return true;
  return false;
}

interface Frame {
  /** The value as found, before `toJSON`. */
  value: unknown;
  /** The frame of the containing value (null at the root) and this value's path segment. */
  up: Frame | null;
  seg: string;
  /** The key JSON.stringify would pass to `toJSON`: the property name, the index, or ''. */
  key: string;
  /** Levels below the root (the root is 0). */
  depth: number;
  /** Where the normalised value goes: a parent object/array and its key. */
  parent: Record<string, unknown> | unknown[];
  slot: string | number;
}

/**
 * Checks that `value` serialises to JSON that Postgres jsonb stores and that reads back as
 * written, and returns a normalised copy (plain objects and arrays only) for
 * JSON.stringify. Follows JSON.stringify: own enumerable properties of any object (class
 * instances such as entities and DTOs included), `toJSON` called once with its key,
 * `undefined` properties omitted, boxed primitives unwrapped. Refuses what JSON.stringify
 * would silently change or cannot write: BigInt, functions and symbols (also as property
 * values), cycles, `NaN` and infinities, invalid Dates (they become `null`), `undefined` in
 * arrays, Map/Set/RegExp/ArrayBuffer/typed arrays (they become `{}` or index maps), NUL
 * characters, lone surrogates, and nesting deeper than MAX_PAYLOAD_DEPTH.
 *
 * Iterative, with an explicit stack: a payload cannot overflow the call stack, and the
 * work is proportional to its size.
 */
function normaliseJson(value: unknown, path: string): unknown {
  const root: unknown[] = [undefined];
  const stack: (Frame | { exit: object })[] = [
    { value, up: null, seg: path, key: '', depth: 0, parent: root, slot: 0 },
  ];
  const ancestors = new Set<object>();
  while (stack.length > 0) {
    const frame = stack.pop() as Frame | { exit: object };
    if ('exit' in frame) {
      ancestors.delete(frame.exit);
      continue;
    }
    const { depth } = frame;
    if (depth > MAX_PAYLOAD_DEPTH) {
      // Named at the limit, not at the full (possibly very long) path of the offender.
      let f: Frame = frame;
      while (f.depth > MAX_PAYLOAD_DEPTH) f = f.up as Frame;
      throw new ValidationError(
        pathOf(f),
        'max_depth',
        `must not nest values more than ${MAX_PAYLOAD_DEPTH} levels below the payload (objects and arrays)`,
      );
    }
    let v = frame.value;
    if (typeof v === 'object' && v !== null) {
      if (ancestors.has(v))
        throw new ValidationError(pathOf(frame), 'json', 'must be JSON-serialisable: it contains a cycle');
      if (v instanceof Date && Number.isNaN(v.getTime())) {
        throw new ValidationError(
          pathOf(frame),
          'json',
          'must be JSON-serialisable: an invalid Date (JSON would write null)',
        );
      }
      const toJSON = (v as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === 'function') {
        // Date, Buffer, decimal types, entities: JSON.stringify writes what toJSON returns
        // (calling it once, not again on its result).
        const original = v;
        v = toJSON.call(v, frame.key);
        if (v === original) {
          throw new ValidationError(
            pathOf(frame),
            'json',
            'must be JSON-serialisable: toJSON returned the object itself',
          );
        }
        if (typeof v === 'object' && v !== null && ancestors.has(v)) {
          throw new ValidationError(pathOf(frame), 'json', 'must be JSON-serialisable: it contains a cycle');
        }
      } else if (v instanceof Number || v instanceof String || v instanceof Boolean) {
        v = v.valueOf();
      }
    }
    let out: unknown;
    switch (typeof v) {
      case 'string':
        checkString(v, frame);
        out = v;
        break;
      case 'number':
        if (!Number.isFinite(v)) {
          throw new ValidationError(pathOf(frame), 'json', `must be JSON-serialisable: ${v} is not a JSON number`);
        }
        out = v;
        break;
      case 'boolean':
        out = v;
        break;
      case 'undefined':
        // Only reachable through toJSON; JSON.stringify would drop the property or write null.
        throw new ValidationError(pathOf(frame), 'json', 'must be JSON-serialisable: toJSON returned undefined');
      case 'object': {
        if (v === null) {
          out = null;
          break;
        }
        const proto = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== Array.prototype && proto !== null && isLossy(v)) {
          const name = (v as object).constructor?.name ?? 'object';
          throw new ValidationError(
            pathOf(frame),
            'json',
            `must be JSON-serialisable: a ${name} does not survive JSON`,
          );
        }
        ancestors.add(v);
        stack.push({ exit: v });
        if (Array.isArray(v)) {
          const copy: unknown[] = new Array(v.length);
          for (let i = 0; i < v.length; i++) {
            if (v[i] === undefined) {
              throw new ValidationError(
                `${pathOf(frame)}[${i}]`,
                'json',
                'must be JSON-serialisable: undefined in an array',
              );
            }
          }
          // Pushed in reverse so children are visited in order (errors name the first bad one).
          for (let i = v.length - 1; i >= 0; i--) {
            stack.push({
              value: v[i],
              up: frame,
              seg: `[${i}]`,
              key: String(i),
              depth: depth + 1,
              parent: copy,
              slot: i,
            });
          }
          out = copy;
        } else {
          // A null prototype: a `__proto__` key stays an ordinary key.
          const copy: Record<string, unknown> = Object.create(null);
          const children: Frame[] = [];
          const classInstance = proto !== Object.prototype && proto !== null;
          for (const key of Object.keys(v)) {
            const child = (v as Record<string, unknown>)[key];
            if (child === undefined) continue;
            checkString(key, frame, `.${key}`);
            copy[key] = null; // holds the key's place: JSON.stringify keeps insertion order
            children.push({ value: child, up: frame, seg: `.${key}`, key, depth: depth + 1, parent: copy, slot: key });
          }
          if (classInstance && children.length === 0) {
            // URLSearchParams, Headers and the like keep their data out of reach of JSON.
            const name = (v as object).constructor?.name ?? 'object';
            throw new ValidationError(
              pathOf(frame),
              'json',
              `must be JSON-serialisable: a ${name} has no own enumerable properties (JSON would write {})`,
            );
          }
          for (let i = children.length - 1; i >= 0; i--) stack.push(children[i] as Frame);
          out = copy;
        }
        break;
      }
      default:
        throw new ValidationError(pathOf(frame), 'json', `must be JSON-serialisable: a ${typeof v} is not JSON`);
    }
    (frame.parent as Record<string | number, unknown>)[frame.slot] = out;
  }
  return root[0];
}

/** A value's path (`payload.items[3].name`): joined only when an error needs it. */
function pathOf(frame: Frame): string {
  const segs: string[] = [];
  for (let f: Frame | null = frame; f; f = f.up) segs.push(f.seg);
  return segs.reverse().join('');
}

function checkString(s: string, where: string | Frame, suffix = ''): void {
  const path = () => `${typeof where === 'string' ? where : pathOf(where)}${suffix}`;
  if (s.includes('\u0000')) {
    throw new ValidationError(
      path(),
      'nul',
      'must not contain the NUL character (\\u0000); Postgres jsonb cannot store it',
    );
  }
  if (!s.isWellFormed()) {
    throw new ValidationError(path(), 'unicode', 'must be well-formed Unicode (a lone surrogate was found)');
  }
}

/** The fields of an event (EventInput); any other key is refused. */
const EVENT_KEYS: readonly string[] = ['tenantId', 'type', 'payload', 'idempotencyKey', 'orderingKey'];

/**
 * Validates one event and serialises its payload; throws ValidationError naming field and
 * rule. A key that is not a field of the event (`ordering_key`, `idempotencykey`) is
 * refused (rule `unknown`), not ignored: a misspelt key would write the event without its
 * ordering or idempotency.
 */
export function validateEvent(input: EventInput, maxPayloadBytes: number, field = ''): ValidEvent {
  if (input === null || typeof input !== 'object') {
    throw new ValidationError(field || 'event', 'required', 'must be an object');
  }
  const f = (name: string) => (field ? `${field}.${name}` : name);
  for (const key of Object.keys(input)) {
    if (!EVENT_KEYS.includes(key)) {
      throw new ValidationError(f(key), 'unknown', `is not a field of an event (known: ${EVENT_KEYS.join(', ')})`);
    }
  }
  const tenantId = validateTenantId(input.tenantId, f('tenantId'));
  const type = validateEventType(input.type, f('type'));
  if (input.payload === undefined) {
    throw new ValidationError(f('payload'), 'required', 'is required (use null for an empty payload)');
  }
  const payloadJson = JSON.stringify(normaliseJson(input.payload, f('payload')));
  const bytes = Buffer.byteLength(payloadJson);
  if (bytes > maxPayloadBytes) {
    throw new ValidationError(
      f('payload'),
      'max_bytes',
      `must be at most ${maxPayloadBytes} bytes of JSON (got ${bytes})`,
    );
  }
  const idempotencyKey = validateIdempotencyKey(input.idempotencyKey, f('idempotencyKey'));
  const orderingKey = validateOrderingKey(input.orderingKey, f('orderingKey'));
  return { tenantId, type, payloadJson, payloadBytes: bytes, idempotencyKey, orderingKey };
}
