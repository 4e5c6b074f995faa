/**
 * Who is calling `hookbox serve`: the bearer credential of the Authorization header, and
 * nothing else — no cookies (so no cross-site request can carry it: CSRF-safe by
 * construction) and no query parameters (so it never lands in access logs or Referer).
 */
import {
  API_KEY_PREFIX,
  type ApiAuth,
  PORTAL_TOKEN_PREFIX,
  PortalTokenVerifier,
  touchApiKey,
  verifyApiKey,
} from '@hookbox/outbox/api';
import type pg from 'pg';

export interface Caller {
  auth: ApiAuth;
  /** The rate-limit bucket and the log's `who`: `key:<id>` or `tenant:<id>`; never the credential. */
  id: string;
}

export class Authenticator {
  private readonly portal: PortalTokenVerifier;
  private readonly touched = new Map<string, number>();

  constructor(
    private readonly db: pg.Pool,
    private readonly clock: () => number = Date.now,
  ) {
    this.portal = new PortalTokenVerifier(db, 60_000, clock);
  }

  /** The caller, or null when the header carries no valid credential. */
  async authenticate(header: string | undefined): Promise<Caller | null> {
    const m = /^Bearer ([A-Za-z0-9_.-]{1,2000})$/.exec(header ?? '');
    if (!m) return null;
    const credential = m[1] as string;
    if (credential.startsWith(API_KEY_PREFIX)) {
      const key = await verifyApiKey(this.db, credential);
      if (!key) return null;
      this.touch(key.id);
      return { auth: { operator: true }, id: `key:${key.id}` };
    }
    if (credential.startsWith(PORTAL_TOKEN_PREFIX)) {
      const claims = await this.portal.verify(credential);
      if (!claims) return null;
      return { auth: { tenantId: claims.tenantId }, id: `tenant:${claims.tenantId}` };
    }
    return null;
  }

  // last_used_at is for people: written at most once a minute per key, never awaited.
  private touch(id: string): void {
    const now = this.clock();
    if (now - (this.touched.get(id) ?? Number.NEGATIVE_INFINITY) < 60_000) return;
    this.touched.set(id, now);
    touchApiKey(this.db, id).catch(() => {});
  }
}
