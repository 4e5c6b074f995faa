/**
 * Standard Webhooks signing and verification (https://www.standardwebhooks.com): the
 * signature is `v1,` + base64 HMAC-SHA256 of `${webhook-id}.${webhook-timestamp}.${body}`
 * under the key of a `whsec_` secret. While a secret rotates, one `v1,...` per secret,
 * space-separated. node:crypto only: this module is imported into every service.
 */
import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from 'node:crypto';
import { ValidationError, WebhookVerificationError } from './errors.js';
import { parseSecret } from './secret.js';

/** The three Standard Webhooks headers, lowercase. */
export const WEBHOOK_HEADERS = {
  id: 'webhook-id',
  timestamp: 'webhook-timestamp',
  signature: 'webhook-signature',
  /** Sent only for events with an ordering key: the key, percent-encoded (UTF-8). */
  orderingKey: 'webhook-ordering-key',
  /** Sent with `orderingKey`: the event's position among its key's events, 1, 2, 3… */
  orderingSeq: 'webhook-ordering-seq',
} as const;

/** Default for `VerifyOptions.toleranceSeconds`: five minutes, as in Standard Webhooks. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

/** Signs one message: returns the `webhook-signature` header value. */
export type Signer = (msgId: string, timestamp: number, body: string) => string;

/** Headers as a fetch `Headers` or a plain object such as node's `IncomingHttpHeaders`. */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

export interface VerifyOptions {
  /** How far the `webhook-timestamp` may be from now, either way, in seconds. Default 300. */
  toleranceSeconds?: number;
  /** The current time in unix seconds, for tests. Default: the clock. */
  now?: number;
  /**
   * Check the order of ordered events (those sent with an ordering key): the last sequence
   * number seen per key, kept by the receiver (a `Map`, or anything with `get`/`set` over
   * your own store). After the signature checks out, `verify` compares the signed
   * `ordering` of the body with it, advances it, and calls `onOrdering` with the verdict.
   * Unordered events leave it untouched. Default: no check.
   */
  ordering?: OrderingState;
  /** Called with the verdict for each ordered event when `ordering` is given. */
  onOrdering?: (report: OrderingReport) => void;
}

/** The last sequence number a receiver has seen per ordering key. */
export interface OrderingState {
  get(key: string): number | undefined;
  set(key: string, seq: number): unknown;
}

/**
 * How an ordered event's sequence number compares with the last one seen for its key:
 * `next` (last + 1, or 1 for a key never seen), `first` (a key never seen, starting
 * above 1: this receiver started late), `repeat` (the same number again: a redelivery),
 * `gap` (`missing` numbers were skipped: a dead delivery under the `skip` policy, or one
 * filtered out by the subscription's event types), `behind` (lower than the last: a
 * replay of an older event).
 */
export interface OrderingReport {
  key: string;
  seq: number;
  /** The last number seen before this one; null for a key never seen. */
  last: number | null;
  status: 'next' | 'first' | 'repeat' | 'gap' | 'behind';
  /** Numbers skipped (for `gap`), else 0. */
  missing: number;
}

/** Compares one ordered event with the state and advances it (never backwards). */
export function checkOrdering(state: OrderingState, key: string, seq: number): OrderingReport {
  const seen = state.get(key);
  const last = seen === undefined ? null : seen;
  let status: OrderingReport['status'];
  if (last === null) status = seq === 1 ? 'next' : 'first';
  else if (seq === last + 1) status = 'next';
  else if (seq === last) status = 'repeat';
  else if (seq > last) status = 'gap';
  else status = 'behind';
  if (last === null || seq > last) state.set(key, seq);
  return { key, seq, last, status, missing: status === 'gap' && last !== null ? seq - last - 1 : 0 };
}

/** Length of a base64 SHA-256 digest: 32 bytes → 44 characters. */
const DIGEST_B64_LENGTH = 44;
const TIMESTAMP_RE = /^[0-9]{1,15}$/;

function toKeys(secretOrSecrets: string | readonly string[]): KeyObject[] {
  const secrets = typeof secretOrSecrets === 'string' ? [secretOrSecrets] : secretOrSecrets;
  if (!Array.isArray(secrets) || secrets.length === 0) {
    throw new ValidationError('secrets', 'required', 'at least one whsec_ secret is required');
  }
  return secrets.map((s, i) =>
    createSecretKey(parseSecret(s, typeof secretOrSecrets === 'string' ? 'secret' : `secrets[${i}]`)),
  );
}

function digest(key: KeyObject, prefix: string, body: string | Buffer): string {
  return createHmac('sha256', key).update(prefix).update(body).digest('base64');
}

function signaturePrefix(msgId: string, timestamp: number): string {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new ValidationError('timestamp', 'format', `must be a whole number of unix seconds (got ${timestamp})`);
  }
  return `${msgId}.${timestamp}.`;
}

/**
 * A signer with the keys decoded once, for the delivery hot path. Same output as `sign`.
 * Throws ValidationError when `secrets` is empty or any secret is malformed.
 */
export function createSigner(secrets: readonly string[]): Signer {
  const keys = toKeys(secrets);
  if (keys.length === 1) {
    const key = keys[0]!;
    return (msgId, timestamp, body) => `v1,${digest(key, signaturePrefix(msgId, timestamp), body)}`;
  }
  return (msgId, timestamp, body) => {
    const prefix = signaturePrefix(msgId, timestamp);
    let out = '';
    for (const key of keys) out += `${out === '' ? '' : ' '}v1,${digest(key, prefix, body)}`;
    return out;
  };
}

/**
 * The `webhook-signature` header value for one message: `v1,<base64>` per secret, in the
 * order given, space-separated. `timestamp` is unix seconds, the same number sent as
 * `webhook-timestamp`. Throws ValidationError for a malformed secret or timestamp.
 */
export function sign(
  secretOrSecrets: string | readonly string[],
  msgId: string,
  timestamp: number,
  body: string,
): string {
  return createSigner(typeof secretOrSecrets === 'string' ? [secretOrSecrets] : secretOrSecrets)(
    msgId,
    timestamp,
    body,
  );
}

function headerValues(headers: WebhookHeaders): { id?: string; timestamp?: string; signature?: string } {
  if (typeof (headers as Headers).get === 'function') {
    const h = headers as Headers;
    return {
      id: h.get(WEBHOOK_HEADERS.id) ?? undefined,
      timestamp: h.get(WEBHOOK_HEADERS.timestamp) ?? undefined,
      signature: h.get(WEBHOOK_HEADERS.signature) ?? undefined,
    };
  }
  const out: { id?: string; timestamp?: string; signature?: string } = {};
  for (const [name, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    if (value === undefined) continue;
    switch (name.toLowerCase()) {
      case WEBHOOK_HEADERS.id:
        out.id = Array.isArray(value) ? value[0] : value;
        break;
      case WEBHOOK_HEADERS.timestamp:
        out.timestamp = Array.isArray(value) ? value[0] : value;
        break;
      case WEBHOOK_HEADERS.signature:
        // Repeated signature headers each carry candidates; any one may match.
        out.signature = Array.isArray(value) ? value.join(' ') : value;
        break;
    }
  }
  return out;
}

/**
 * Checks a received webhook and returns its parsed JSON body. Passes when any `v1`
 * signature in `webhook-signature` matches any of the secrets (so both the current and
 * the previous secret work during a rotation); other versions are ignored. Header names
 * are case-insensitive. Pass the body exactly as received, before any JSON parsing.
 *
 * Throws WebhookVerificationError when headers are missing, the timestamp is not a
 * number or is more than `toleranceSeconds` away from now, no signature matches, or the
 * body is not JSON. Throws ValidationError for a malformed secret or option.
 */
export function verify(
  secretOrSecrets: string | readonly string[],
  headers: WebhookHeaders,
  rawBody: string | Buffer,
  options: VerifyOptions = {},
): unknown {
  const keys = toKeys(secretOrSecrets);
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  if (!Number.isFinite(tolerance) || tolerance < 0) {
    throw new ValidationError('toleranceSeconds', 'range', `must be a number of seconds >= 0 (got ${tolerance})`);
  }

  const { id, timestamp, signature } = headerValues(headers);
  const missing = [
    id ? null : WEBHOOK_HEADERS.id,
    timestamp ? null : WEBHOOK_HEADERS.timestamp,
    signature ? null : WEBHOOK_HEADERS.signature,
  ].filter((name) => name !== null);
  if (missing.length > 0)
    throw new WebhookVerificationError('missing_headers', `missing required header(s): ${missing.join(', ')}`);

  const ts = timestamp!.trim();
  if (!TIMESTAMP_RE.test(ts)) {
    throw new WebhookVerificationError(
      'invalid_timestamp',
      `${WEBHOOK_HEADERS.timestamp} is not a number of unix seconds (got ${JSON.stringify(ts.slice(0, 40))})`,
    );
  }
  const sent = Number(ts);
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (now - sent > tolerance) {
    throw new WebhookVerificationError(
      'timestamp_too_old',
      `${WEBHOOK_HEADERS.timestamp} too old: ${now - sent}s before now (tolerance ${tolerance}s)`,
    );
  }
  if (sent - now > tolerance) {
    throw new WebhookVerificationError(
      'timestamp_too_new',
      `${WEBHOOK_HEADERS.timestamp} too far in the future: ${sent - now}s after now (tolerance ${tolerance}s)`,
    );
  }

  const prefix = `${id}.${ts}.`;
  const expected = keys.map((key) => Buffer.from(digest(key, prefix, rawBody)));
  let candidates = 0;
  let matched = false;
  // Space-separated (the spec); a repeated header arrives joined with ", " (Node's http),
  // which leaves a trailing comma on all but the last candidate.
  for (const candidate of signature!.split(/\s+/)) {
    const part = candidate.endsWith(',') ? candidate.slice(0, -1) : candidate;
    const comma = part.indexOf(',');
    if (comma === -1 || part.slice(0, comma) !== 'v1') continue;
    candidates++;
    const givenBytes = Buffer.from(part.slice(comma + 1));
    if (givenBytes.length !== DIGEST_B64_LENGTH) continue;
    // Check every key without an early exit, so timing says nothing about which one matched.
    for (const want of expected) if (timingSafeEqual(givenBytes, want)) matched = true;
    if (matched) break;
  }
  if (!matched) {
    throw new WebhookVerificationError(
      'no_matching_signature',
      candidates === 0
        ? `no matching signature: ${WEBHOOK_HEADERS.signature} has no v1 signature`
        : `no matching signature: none of ${candidates} v1 signature(s) matches the ${keys.length} secret(s)`,
    );
  }

  const text = typeof rawBody === 'string' ? rawBody : rawBody.toString('utf8');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new WebhookVerificationError(
      'invalid_body',
      `body is not JSON (${text.length === 0 ? 'empty' : (err as Error).message})`,
    );
  }
  if (options.ordering) {
    // From the signed body, not from the (unsigned) webhook-ordering-* headers.
    const o = (body as { ordering?: { key?: unknown; seq?: unknown } } | null)?.ordering;
    if (o && typeof o.key === 'string' && typeof o.seq === 'number' && Number.isSafeInteger(o.seq)) {
      const report = checkOrdering(options.ordering, o.key, o.seq);
      options.onOrdering?.(report);
    }
  }
  return body;
}
