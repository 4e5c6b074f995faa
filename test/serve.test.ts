/**
 * `hookbox serve` over real HTTP on 127.0.0.1 and a real database: operator API keys
 * (created, listed and revoked by the CLI, stored hashed), portal tokens (CLI and library,
 * expiry, tampering), CSRF defences, rate limits, body rules, security headers, and logs
 * that never contain a credential.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApiKey, createPortalToken } from '@hookbox/outbox/api';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../apps/relay/src/logger.js';
import { startServe } from '../apps/relay/src/serve/server.js';
import { CLI, runCli } from './harness/cli.js';
import { useTestDatabase } from './harness/db.js';
import { LogBuffer, useCleanup, waitFor } from './harness/relay.js';

const db = useTestDatabase();
// Spawning CLI processes takes seconds on a loaded two-core machine: room, not a speed goal.
const SLOW = 120_000;
const defer = useCleanup(afterEach);

async function serve(options: Partial<Parameters<typeof startServe>[0]> = {}) {
  const logs = new LogBuffer();
  const s = await startServe({ db: db.pool, logger: createLogger('info', logs), port: 0, ...options });
  defer(() => s.close());
  return { ...s, logs };
}

function run(args: string[], env: Record<string, string> = {}) {
  return runCli(args, { env: { ...process.env, DATABASE_URL: db.url, ...env } });
}

const bearer = (credential: string) => ({ authorization: `Bearer ${credential}` });

describe('api keys', () => {
  it(
    'are printed once by the CLI, stored only as a hash, listed without the key, and refused once revoked',
    async () => {
      const created = await run(['api-keys', 'create', '--name', 'ci', '--json']);
      expect(created.code, created.stderr).toBe(0);
      const key = JSON.parse(created.stdout) as { id: string; key: string; prefix: string };
      expect(key.key).toMatch(/^hbk_[A-Za-z0-9_-]{43}$/);
      const { rows } = await db.pool.query('SELECT row_to_json(k)::text AS row FROM hookbox.api_keys k');
      expect(rows.map((r) => r.row).join('\n')).not.toContain(key.key);
      const listed = await run(['api-keys', 'list']);
      expect(listed.stdout).toContain(key.id);
      expect(listed.stdout).toContain(`${key.prefix}…`);
      expect(listed.stdout).not.toContain(key.key);

      const s = await serve();
      const ok = await fetch(`${s.url}/v1/deliveries`, { headers: bearer(key.key) });
      expect(ok.status).toBe(200);
      const revoked = await run(['api-keys', 'revoke', key.id]);
      expect(revoked.code, revoked.stderr).toBe(0);
      const refused = await fetch(`${s.url}/v1/deliveries`, { headers: bearer(key.key) });
      expect(refused.status).toBe(401);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
      const unknown = await run(['api-keys', 'revoke', '00000000-0000-4000-8000-000000000000']);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr.trim().split('\n')).toHaveLength(1);
    },
    SLOW,
  );
});

describe('api key names', () => {
  it('refuse a lone surrogate (the driver stored it as U+FFFD) and write nothing', async () => {
    const before = await db.pool.query('SELECT count(*)::int AS n FROM hookbox.api_keys');
    await expect(createApiKey(db.pool, { name: 'ci \ud800' })).rejects.toMatchObject({
      field: 'name',
      rule: 'unicode',
    });
    expect((await db.pool.query('SELECT count(*)::int AS n FROM hookbox.api_keys')).rows).toEqual(before.rows);
  });
});

describe('portal tokens', () => {
  it(
    'scope requests to one tenant; an expired, tampered or foreign token is refused',
    async () => {
      let now = Date.now();
      const s = await serve({ clock: () => now });
      const cli = await run(['portal-token', '--tenant', 'acme', '--ttl', '15m', '--json']);
      expect(cli.code, cli.stderr).toBe(0);
      const token = JSON.parse(cli.stdout).token as string;
      const created = await fetch(`${s.url}/v1/subscriptions`, {
        method: 'POST',
        headers: { ...bearer(token), 'content-type': 'application/json' },
        body: JSON.stringify({ url: 'http://127.0.0.1:9/acme', eventTypes: ['*'] }),
      });
      expect(created.status).toBe(201);
      expect(((await created.json()) as { subscription: { tenantId: string } }).subscription.tenantId).toBe('acme');
      const other = await fetch(`${s.url}/v1/subscriptions?tenant=globex`, { headers: bearer(token) });
      expect(other.status).toBe(403);

      const [body, sig] = token.split('.') as [string, string];
      const claims = JSON.parse(Buffer.from(body.slice(4), 'base64url').toString());
      const forged = `hbp_${Buffer.from(JSON.stringify({ ...claims, t: 'globex' })).toString('base64url')}.${sig}`;
      expect((await fetch(`${s.url}/v1/subscriptions`, { headers: bearer(forged) })).status).toBe(401);
      expect((await fetch(`${s.url}/v1/subscriptions`, { headers: bearer(`${token}x`) })).status).toBe(401);

      now += 16 * 60_000;
      expect((await fetch(`${s.url}/v1/subscriptions`, { headers: bearer(token) })).status).toBe(401);
    },
    SLOW,
  );

  it('stop working within a minute when their signing key is deleted', async () => {
    let now = Date.now();
    const s = await serve({ clock: () => now });
    const { token } = await createPortalToken(db.pool, { tenantId: 'acme' });
    expect((await fetch(`${s.url}/v1/subscriptions`, { headers: bearer(token) })).status).toBe(200);
    await db.pool.query('DELETE FROM hookbox.portal_keys');
    now += 61_000;
    expect((await fetch(`${s.url}/v1/subscriptions`, { headers: bearer(token) })).status).toBe(401);
    const fresh = await createPortalToken(db.pool, { tenantId: 'acme' });
    expect((await fetch(`${s.url}/v1/subscriptions`, { headers: bearer(fresh.token) })).status).toBe(200);
  });

  it(
    'are minted by the library for the host app, with their lifetime checked',
    async () => {
      const t = await createPortalToken(db.pool, { tenantId: 'acme', ttlSeconds: 120 });
      expect(t.expiresAt.getTime() - Date.now()).toBeLessThanOrEqual(120_000);
      await expect(createPortalToken(db.pool, { tenantId: 'acme', ttlSeconds: 30 })).rejects.toMatchObject({
        field: 'ttlSeconds',
        rule: 'range',
      });
      const bad = await run(['portal-token', '--tenant', 'acme', '--ttl', '30d']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/^hookbox: --ttl/);
    },
    SLOW,
  );
});

describe('request rules', () => {
  it('refuses cross-origin writes, non-JSON bodies, oversized bodies and CORS preflights; never sets a cookie', async () => {
    const s = await serve();
    const { key } = await createApiKey(db.pool, { name: 'rules' });
    const post = (headers: Record<string, string>, body: string) =>
      fetch(`${s.url}/v1/subscriptions?tenant=rules`, {
        method: 'POST',
        headers: { ...bearer(key), ...headers },
        body,
      });
    const json = JSON.stringify({ url: 'http://127.0.0.1:9/x', eventTypes: ['*'] });
    const cross = await post({ 'content-type': 'application/json', origin: 'http://evil.example' }, json);
    expect(cross.status).toBe(403);
    expect(((await cross.json()) as { error: { code: string } }).error.code).toBe('csrf_rejected');
    const form = await post({ 'content-type': 'text/plain' }, json);
    expect(form.status).toBe(415);
    const broken = await post({ 'content-type': 'application/json' }, '{"url":');
    expect(((await broken.json()) as { error: { code: string } }).error.code).toBe('invalid_json');
    const huge = await post(
      { 'content-type': 'application/json' },
      JSON.stringify({ description: 'x'.repeat(1_100_000) }),
    );
    expect(huge.status).toBe(413);
    const preflight = await fetch(`${s.url}/v1/subscriptions`, {
      method: 'OPTIONS',
      headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(405);
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    const same = await post({ 'content-type': 'application/json', origin: s.url }, json);
    expect(same.status).toBe(201);
    expect(same.headers.get('set-cookie')).toBeNull();
    const { rows } = await db.pool.query(
      "SELECT count(*)::int AS n FROM hookbox.subscriptions WHERE tenant_id = 'rules'",
    );
    expect(rows[0].n).toBe(1);
  });

  it('serves the console with a CSP that limits framing, and the OpenAPI document without credentials', async () => {
    const s = await serve({ frameAncestors: ['https://app.example.com'] });
    const portal = await fetch(`${s.url}/portal`);
    expect(portal.status).toBe(200);
    const csp = portal.headers.get('content-security-policy') ?? '';
    expect(csp).toContain('frame-ancestors https://app.example.com');
    expect(csp).toContain("script-src 'self'");
    expect(await portal.text()).toContain('/assets/portal.js');
    expect((await fetch(`${s.url}/assets/chart.js`)).headers.get('content-type')).toMatch(/javascript/);
    expect((await fetch(`${s.url}/assets/../../server.ts`)).status).toBe(404);
    const doc = (await (await fetch(`${s.url}/openapi.json`)).json()) as { openapi: string };
    expect(doc.openapi).toBe('3.1.0');
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
  });

  it('rate-limits each credential on its own, and failed authentication per address', async () => {
    const now = Date.now();
    const s = await serve({ rateLimitPerMinute: 60, clock: () => now }); // bursts of 10
    const a = await createApiKey(db.pool, { name: 'a' });
    const b = await createApiKey(db.pool, { name: 'b' });
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) statuses.push((await fetch(`${s.url}/v1/stats`, { headers: bearer(a.key) })).status);
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(200));
    const limited = await fetch(`${s.url}/v1/stats`, { headers: bearer(a.key) });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await fetch(`${s.url}/v1/stats`, { headers: bearer(b.key) })).status).toBe(200);
    const bad: number[] = [];
    for (let i = 0; i < 12; i++) bad.push((await fetch(`${s.url}/v1/stats`, { headers: bearer('hbk_guess') })).status);
    expect(bad.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(bad.at(-1)).toBe(429);
    // Over its budget, the address is refused before any lookup: the right key too.
    expect((await fetch(`${s.url}/v1/stats`, { headers: bearer(b.key) })).status).toBe(429);
  });

  it('answers a request target that is not a valid URL with 400, and keeps serving', async () => {
    const s = await serve();
    for (const target of ['//[', '//a:b']) {
      const reply = await rawRequest(s.port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      expect(reply, target).toMatch(/^HTTP\/1\.1 400 /);
      expect(reply).toContain('invalid_input');
    }
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
  });

  it('refuses writes to the routes that need no credential before reading their bodies', async () => {
    const s = await serve();
    for (const path of ['/v1/health', '/openapi.json']) {
      const r = await fetch(`${s.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{bad',
      });
      expect(r.status, path).toBe(405);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('method_not_allowed');
    }
  });

  it("takes a browser's Sec-Fetch-Site over Origin, so writes work behind a proxy that rewrites Host", async () => {
    const s = await serve();
    const { key } = await createApiKey(db.pool, { name: 'proxy' });
    const post = (headers: Record<string, string>) =>
      fetch(`${s.url}/v1/subscriptions?tenant=proxy`, {
        method: 'POST',
        headers: { ...bearer(key), 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ url: 'http://127.0.0.1:9/x', eventTypes: ['*'] }),
      });
    // The portal at https://hooks.example.com, proxied to 127.0.0.1 with Host rewritten.
    const proxied = { origin: 'https://hooks.example.com' };
    expect((await post({ ...proxied, 'sec-fetch-site': 'same-origin' })).status).toBe(201);
    expect((await post({ ...proxied, 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect((await post({ origin: s.url, 'sec-fetch-site': 'same-site' })).status).toBe(403);
    // No Sec-Fetch-Site (an older browser): Origin against Host, as before.
    expect((await post(proxied)).status).toBe(403);
    expect((await post({ origin: s.url })).status).toBe(201);
  });
});

/** Sends `text` as is (no client tidies the request line) and returns the whole reply. */
function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end(text));
    let reply = '';
    socket.on('data', (d) => (reply += d));
    socket.on('end', () => resolve(reply));
    socket.on('error', reject);
  });
}

describe('hookbox serve', () => {
  it(
    'serves the catalog given with --catalog and never logs a credential',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'hookbox-catalog-'));
      defer(() => rmSync(dir, { recursive: true, force: true }));
      writeFileSync(join(dir, 'index.json'), JSON.stringify({ types: [] }));
      writeFileSync(
        join(dir, 'deal.won.json'),
        JSON.stringify({ type: 'deal.won', description: 'A deal closed', example: { id: 1 } }),
      );
      const { key } = await createApiKey(db.pool, { name: 'logs' });
      const { token } = await createPortalToken(db.pool, { tenantId: 'acme' });
      const child = spawn(process.execPath, [...CLI, 'serve', '--port', '0', '--catalog', dir], {
        env: { ...process.env, DATABASE_URL: db.url },
      });
      defer(() => {
        if (child.exitCode === null) child.kill('SIGKILL');
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      const url = await waitFor(() => /hookbox serve: (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1], {
        timeoutMs: 90_000,
        what: 'hookbox serve to print its address',
      });
      const types = await fetch(`${url}/v1/event-types`, { headers: bearer(token) });
      expect(((await types.json()) as { items: { type: string }[] }).items).toEqual([
        { type: 'deal.won', description: 'A deal closed', example: { id: 1 }, inCatalog: true, seen: false },
      ]);
      expect((await fetch(`${url}/v1/stats`, { headers: bearer(key) })).status).toBe(200);
      expect((await fetch(`${url}/v1/stats?token=${token}`, { headers: bearer(key) })).status).toBe(400);
      expect((await fetch(`${url}/v1/stats`, { headers: bearer(`${key}nope`) })).status).toBe(401);
      await waitFor(() => (stderr.match(/"msg":"request"/g) ?? []).length >= 4, {
        timeoutMs: 30_000,
        what: 'four request log lines',
      });
      child.kill('SIGTERM');
      await waitFor(() => child.exitCode !== null, { timeoutMs: 30_000, what: 'serve to exit on SIGTERM' });
      expect(child.exitCode).toBe(0);
      expect(stderr).toContain('"path":"/v1/event-types"');
      expect(stderr).toContain('"who":"tenant:acme"');
      for (const secret of [key, token, key.slice(4), token.split('.')[1] as string]) {
        expect(stdout + stderr).not.toContain(secret);
      }
    },
    SLOW,
  );

  it(
    'refuses bad flags with one line and exit code 2',
    async () => {
      const r = await run(['serve', '--port', 'eighty']);
      expect(r.code).toBe(2);
      expect(r.stderr.trim()).toBe('hookbox: --port: must be a whole number from 0 to 65535 (got "eighty")');
      const c = await run(['serve', '--catalog', '/nonexistent-hookbox-catalog']);
      expect(c.code).toBe(2);
      expect(c.stderr).toMatch(/^hookbox: --catalog: cannot read directory/);
    },
    SLOW,
  );
});
