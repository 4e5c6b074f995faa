/**
 * Signing secrets in the Standard Webhooks form: `whsec_` followed by a base64 key.
 */
import { randomBytes } from 'node:crypto';
import { ValidationError } from './errors.js';

export const SECRET_PREFIX = 'whsec_';
export const MIN_SECRET_BYTES = 24;
export const MAX_SECRET_BYTES = 64;
/** Bytes of key in a generated secret. */
export const GENERATED_SECRET_BYTES = 32;

const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

/** A new crypto-random secret: `whsec_` + base64 of 32 random bytes. */
export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(GENERATED_SECRET_BYTES).toString('base64');
}

/**
 * Validates a `whsec_` secret and returns its key bytes. Throws ValidationError naming
 * `field` when the prefix is missing, the rest is not base64, or the key is not 24–64 bytes.
 */
export function parseSecret(secret: unknown, field = 'secret'): Buffer {
  if (typeof secret !== 'string' || !secret.startsWith(SECRET_PREFIX)) {
    throw new ValidationError(field, 'format', `must start with ${SECRET_PREFIX} followed by a base64 key`);
  }
  const b64 = secret.slice(SECRET_PREFIX.length);
  if (b64.length % 4 !== 0 || !BASE64_RE.test(b64)) {
    throw new ValidationError(
      field,
      'format',
      `must be ${SECRET_PREFIX} followed by standard base64 (A-Z, a-z, 0-9, +, /, = padding)`,
    );
  }
  const key = Buffer.from(b64, 'base64');
  if (key.length < MIN_SECRET_BYTES || key.length > MAX_SECRET_BYTES) {
    throw new ValidationError(
      field,
      'key_length',
      `key must be ${MIN_SECRET_BYTES} to ${MAX_SECRET_BYTES} bytes (got ${key.length})`,
    );
  }
  return key;
}
