/**
 * Credentials of the HTTP API, executor first like the rest of the library.
 *
 * - Operator API keys (`hbk_…`, every tenant): 32 random bytes, stored as a SHA-256 hash;
 *   the key itself is shown once, by `createApiKey`. Revocation takes effect at once.
 * - Tenant portal tokens (`hbp_…`, one tenant, minutes to hours): signed with HMAC-SHA256
 *   under a key kept in `hookbox.portal_keys` (created on first use), so any process with
 *   the database can mint and verify them; nothing is stored per token. A host app mints
 *   one per signed-in user with `createPortalToken` and hands it to the embedded portal.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { NotFoundError, ValidationError } from '../errors.js';
import { type Executor, runQuery } from '../executor.js';
import { intInRange, isUuid } from '../input.js';
import { epochMs, toDate } from '../rows.js';
import { validateTenantId } from '../validate.js';

export const API_KEY_PREFIX = 'hbk_';
export const PORTAL_TOKEN_PREFIX = 'hbp_';

/** Portal token lifetimes: default one hour, at most seven days, at least one minute. */
export const PORTAL_TOKEN_TTL = { defaultSeconds: 3600, minSeconds: 60, maxSeconds: 7 * 86_400 } as const;

export interface ApiKeyRecord {
  id: string;
  name: string;
  /** The first characters of the key, to recognise it. */
  prefix: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

export interface CreatedApiKey extends ApiKeyRecord {
  /** The key itself: shown this once, stored only as a hash. */
  key: string;
}

const hash = (key: string) => createHash('sha256').update(key).digest('hex');
const b64url = (b: Buffer) => b.toString('base64url');

const KEY_COLUMNS = `id, name, prefix, ${epochMs('created_at', 'created_at')},
  ${epochMs('last_used_at', 'last_used_at')}, ${epochMs('revoked_at', 'revoked_at')}`;

function toKey(r: Record<string, unknown>): ApiKeyRecord {
  return {
    id: String(r.id),
    name: String(r.name),
    prefix: String(r.prefix),
    createdAt: toDate(r.created_at) as Date,
    lastUsedAt: toDate(r.last_used_at),
    revokedAt: toDate(r.revoked_at),
  };
}

function validateName(name: unknown): string {
  if (typeof name !== 'string' || name.trim() === '') {
    throw new ValidationError('name', 'required', 'is required and must be a non-empty string');
  }
  if (name.length > 200) throw new ValidationError('name', 'max_length', 'must be at most 200 characters');
  if (/[\u0000-\u001f\u007f]/.test(name))
    throw new ValidationError('name', 'format', 'must not contain control characters');
  // The driver would store a lone surrogate as U+FFFD: a silent change, so refuse it.
  if (!name.isWellFormed())
    throw new ValidationError('name', 'unicode', 'must be well-formed Unicode (a lone surrogate was found)');
  return name;
}

/** Creates an operator API key; the answer is the only place the key appears. */
export async function createApiKey(executor: Executor, input: { name: string }): Promise<CreatedApiKey> {
  const name = validateName(input?.name);
  const key = API_KEY_PREFIX + b64url(randomBytes(32));
  const prefix = key.slice(0, API_KEY_PREFIX.length + 6);
  const rows = await runQuery(
    executor,
    `INSERT INTO hookbox.api_keys (name, prefix, key_hash) VALUES ($1, $2, $3) RETURNING ${KEY_COLUMNS}`,
    [name, prefix, hash(key)],
  );
  return { ...toKey(rows[0] as Record<string, unknown>), key };
}

/** Every API key (revoked ones included), oldest first; never the keys themselves. */
export async function listApiKeys(executor: Executor): Promise<ApiKeyRecord[]> {
  const rows = await runQuery(executor, `SELECT ${KEY_COLUMNS} FROM hookbox.api_keys ORDER BY created_at, id`);
  return rows.map(toKey);
}

/** Revokes a key by id (idempotent); NotFoundError for an unknown id. */
export async function revokeApiKey(executor: Executor, input: { id: string }): Promise<ApiKeyRecord> {
  if (!isUuid(input?.id)) throw new NotFoundError('api key', String(input?.id));
  const rows = await runQuery(
    executor,
    `UPDATE hookbox.api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING ${KEY_COLUMNS}`,
    [input.id.toLowerCase()],
  );
  if (!rows[0]) throw new NotFoundError('api key', input.id);
  return toKey(rows[0]);
}

/** The live key matching `key`, or null (unknown, malformed or revoked). */
export async function verifyApiKey(executor: Executor, key: string): Promise<{ id: string; name: string } | null> {
  if (typeof key !== 'string' || !key.startsWith(API_KEY_PREFIX) || key.length > 100) return null;
  const rows = await runQuery(
    executor,
    'SELECT id, name FROM hookbox.api_keys WHERE key_hash = $1 AND revoked_at IS NULL',
    [hash(key)],
  );
  return rows[0] ? { id: String(rows[0].id), name: String(rows[0].name) } : null;
}

/** Records that a key was used (callers throttle this; it is not needed for auth). */
export async function touchApiKey(executor: Executor, id: string): Promise<void> {
  await runQuery(executor, 'UPDATE hookbox.api_keys SET last_used_at = now() WHERE id = $1', [id]);
}

// ---------------------------------------------------------------------------------------
// Portal tokens

export interface CreatePortalTokenInput {
  tenantId: string;
  /** Lifetime in seconds, 60..604800. Default 3600 (one hour). */
  ttlSeconds?: number;
}

export interface PortalToken {
  /** `hbp_…`: give it to the portal (e.g. in the iframe URL's #fragment, never the query). */
  token: string;
  tenantId: string;
  expiresAt: Date;
}

export interface PortalClaims {
  tenantId: string;
  expiresAt: Date;
  /** The signing key's id. */
  keyId: string;
}

interface TokenPayload {
  v: 1;
  k: string;
  t: string;
  exp: number;
}

/** The newest portal signing key, created when there is none yet. */
async function signingKey(executor: Executor): Promise<{ id: string; secret: Buffer }> {
  const newest = 'SELECT id, secret FROM hookbox.portal_keys ORDER BY created_at DESC, id DESC LIMIT 1';
  let row = (await runQuery(executor, newest))[0];
  if (!row) {
    await runQuery(executor, 'INSERT INTO hookbox.portal_keys (id, secret) VALUES ($1, $2) ON CONFLICT DO NOTHING', [
      `pk_${b64url(randomBytes(9))}`,
      randomBytes(32).toString('base64'),
    ]);
    row = (await runQuery(executor, newest))[0] as Record<string, unknown>;
  }
  return { id: String(row.id), secret: Buffer.from(String(row.secret), 'base64') };
}

const mac = (secret: Buffer, body: string) => createHmac('sha256', secret).update(body).digest();

/** Mints a portal token scoping every API request to `tenantId` until it expires. */
export async function createPortalToken(
  executor: Executor,
  input: CreatePortalTokenInput,
  now: Date = new Date(),
): Promise<PortalToken> {
  const tenantId = validateTenantId(input?.tenantId);
  const ttl = intInRange(
    input.ttlSeconds ?? undefined,
    'ttlSeconds',
    PORTAL_TOKEN_TTL.minSeconds,
    PORTAL_TOKEN_TTL.maxSeconds,
    {
      fallback: PORTAL_TOKEN_TTL.defaultSeconds,
      suffix: ' seconds (7 days)',
    },
  );
  const key = await signingKey(executor);
  const exp = Math.floor(now.getTime() / 1000) + ttl;
  const payload: TokenPayload = { v: 1, k: key.id, t: tenantId, exp };
  const body = PORTAL_TOKEN_PREFIX + b64url(Buffer.from(JSON.stringify(payload)));
  return { token: `${body}.${b64url(mac(key.secret, body))}`, tenantId, expiresAt: new Date(exp * 1000) };
}

/**
 * Verifies portal tokens, caching the signing keys. Returns null for anything but a valid,
 * unexpired token signed by a key that still exists.
 */
export class PortalTokenVerifier {
  private keys = new Map<string, Buffer>();
  private loadedAt = Number.NEGATIVE_INFINITY;
  constructor(
    private readonly executor: Executor,
    /** How often the cached keys are re-read (a deleted key stops verifying within it). Default 60 s. */
    private readonly reloadMs = 60_000,
    private readonly clock: () => number = Date.now,
  ) {}

  async verify(token: string): Promise<PortalClaims | null> {
    if (typeof token !== 'string' || !token.startsWith(PORTAL_TOKEN_PREFIX) || token.length > 2_000) return null;
    const dot = token.lastIndexOf('.');
    if (dot < 0) return null;
    const body = token.slice(0, dot);
    let payload: TokenPayload;
    try {
      payload = JSON.parse(Buffer.from(body.slice(PORTAL_TOKEN_PREFIX.length), 'base64url').toString('utf8'));
    } catch {
      return null;
    }
    if (payload?.v !== 1 || typeof payload.k !== 'string' || typeof payload.t !== 'string') return null;
    if (typeof payload.exp !== 'number' || payload.exp * 1000 <= this.clock()) return null;
    const secret = await this.key(payload.k);
    if (!secret) return null;
    const given = Buffer.from(token.slice(dot + 1), 'base64url');
    const expected = mac(secret, body);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    return { tenantId: payload.t, expiresAt: new Date(payload.exp * 1000), keyId: payload.k };
  }

  private async key(id: string): Promise<Buffer | undefined> {
    // Known keys are re-read every `reloadMs`, so a deleted key stops verifying within it.
    if (this.clock() - this.loadedAt >= this.reloadMs) {
      const rows = await runQuery(this.executor, 'SELECT id, secret FROM hookbox.portal_keys');
      this.keys = new Map(rows.map((r) => [String(r.id), Buffer.from(String(r.secret), 'base64')]));
      this.loadedAt = this.clock();
    }
    const known = this.keys.get(id);
    if (known) return known;
    // A key made since (by another process): one primary-key lookup. Forged ids cost the
    // same, and failed authentication is rate limited per address by the server.
    const row = (await runQuery(this.executor, 'SELECT secret FROM hookbox.portal_keys WHERE id = $1', [id]))[0];
    if (!row) return undefined;
    const secret = Buffer.from(String(row.secret), 'base64');
    this.keys.set(id, secret);
    return secret;
  }
}
