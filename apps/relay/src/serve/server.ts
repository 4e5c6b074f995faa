/**
 * `hookbox serve`'s HTTP server: the API (`@hookbox/outbox/api`, the same handlers the
 * NestJS controller mounts), the OpenAPI document, and the web console's static assets,
 * on one node:http server. No framework: the API is plain objects in, plain objects out.
 *
 * Security: credentials only in `Authorization: Bearer` (never cookies or the query), so a
 * cross-site page cannot make an authenticated request (no CORS is ever granted); bodies
 * must be JSON; a state-changing request whose Origin is another site is refused anyway.
 * Each credential has its own rate limit; failed authentication is limited per address.
 * The request log has method, path, status, time and who (`key:<id>`, `tenant:<id>`):
 * never a header, a query string or a body.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type Api,
  ApiError,
  type ApiRequest,
  type CatalogEntry,
  createApi,
  errorBody,
  stringifyJson,
} from '@hookbox/outbox/api';
import type pg from 'pg';
import type { Logger } from 'pino';
import { VERSION } from '../version.js';
import { Authenticator } from './auth.js';
import { RateLimiter } from './rate-limit.js';

export interface ServeOptions {
  db: pg.Pool;
  logger: Logger;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  catalog?: readonly CatalogEntry[];
  /** Requests a minute per credential. Default 600. */
  rateLimitPerMinute?: number;
  /** Who may embed the portal in a frame (CSP frame-ancestors). Default: this origin only. */
  frameAncestors?: readonly string[];
  /** For tests: the clock of rate limits and token expiry. */
  clock?: () => number;
}

export const SERVE_DEFAULTS = { port: 8080, host: '127.0.0.1', rateLimitPerMinute: 600 } as const;

/** Largest request body: subscriptions and test payloads are small. */
const MAX_BODY_BYTES = 1024 * 1024;

const ASSET_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** The console's files, read once: they ship inside the package, nothing is built at run time. */
const ASSET_DIR = new URL('../../src/serve/assets/', import.meta.url);
const ASSET_NAMES = [
  'console.html',
  'portal.html',
  'app.css',
  'app.js',
  'chart.js',
  'console.js',
  'portal.js',
  'icon.svg',
];

function loadAssets(): Map<string, { body: Buffer; type: string }> {
  const out = new Map<string, { body: Buffer; type: string }>();
  for (const name of ASSET_NAMES) {
    out.set(name, {
      body: readFileSync(new URL(name, ASSET_DIR)),
      type: ASSET_TYPES[name.slice(name.lastIndexOf('.'))] as string,
    });
  }
  return out;
}

export interface ServeHandle {
  server: http.Server;
  url: string;
  port: number;
  api: Api;
  close(): Promise<void>;
}

export async function startServe(options: ServeOptions): Promise<ServeHandle> {
  const { db, logger } = options;
  const clock = options.clock ?? Date.now;
  const log = logger.child({ component: 'serve' });
  const api = createApi({
    db,
    catalog: options.catalog ?? [],
    openapi: { version: VERSION },
    onError: (err, req) => log.error({ err, method: req.method, path: req.path }, 'API request failed'),
  });
  const auth = new Authenticator(db, clock);
  const perCaller = new RateLimiter(options.rateLimitPerMinute ?? SERVE_DEFAULTS.rateLimitPerMinute, undefined, clock);
  // Guessing credentials: 30 failures a minute per address, bursts of 10.
  const perAddress = new RateLimiter(30, 10, clock);
  const assets = loadAssets();
  const frameAncestors = (options.frameAncestors?.length ? options.frameAncestors : ["'self'"]).join(' ');
  const csp = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    `frame-ancestors ${frameAncestors}`,
  ].join('; ');

  const server = http.createServer((req, res) => {
    // Nothing a request does may reject out of the handler: an unhandled rejection ends the process.
    handle(req, res).catch((err) => {
      log.error({ err, method: req.method }, 'request failed');
      res.destroy();
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<unknown> {
    const started = process.hrtime.bigint();
    let who: string | undefined;
    // A request target URL cannot parse (`GET //[`) is answered 400 below, never thrown.
    let url: URL | null = null;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      url = null;
    }
    const path = url?.pathname ?? '(unparsable)';
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      // Path only: a query string is the caller's, a header may be a credential.
      log.info({ method: req.method, path, status: res.statusCode, ms: Math.round(ms * 10) / 10, who }, 'request');
    });
    const sendJson = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      // stringifyJson: an event payload may nest deeper than JSON.stringify's call stack.
      const text = body === undefined ? '' : stringifyJson(body);
      res.writeHead(status, {
        ...(text ? { 'content-type': 'application/json; charset=utf-8' } : {}),
        'cache-control': 'no-store',
        ...headers,
      });
      res.end(text);
    };
    const fail = (e: ApiError, headers: Record<string, string> = {}) => sendJson(e.status, errorBody(e), headers);
    try {
      const method = (req.method ?? 'GET').toUpperCase();
      if (!url) return fail(new ApiError('invalid_input', 'the request target is not a valid path'));
      if (path === '/' || path === '/console' || path === '/portal' || path.startsWith('/assets/')) {
        if (method !== 'GET' && method !== 'HEAD')
          return fail(new ApiError('method_not_allowed', 'GET only'), { allow: 'GET, HEAD' });
        if (path === '/') {
          res.writeHead(302, { location: '/console' });
          return res.end();
        }
        const name =
          path === '/console' ? 'console.html' : path === '/portal' ? 'portal.html' : path.slice('/assets/'.length);
        const asset = assets.get(name);
        if (!asset) return fail(new ApiError('route_not_found', `no asset ${name}`));
        res.writeHead(200, {
          'content-type': asset.type,
          'content-length': asset.body.length,
          'cache-control': name.endsWith('.html') ? 'no-store' : 'public, max-age=300',
          ...(name.endsWith('.html') ? { 'content-security-policy': csp } : {}),
        });
        return res.end(method === 'HEAD' ? undefined : asset.body);
      }
      if (path === '/healthz') {
        const r = await api.handle({ method: 'GET', path: '/v1/health' });
        return sendJson(r.status, r.body);
      }
      const isPublic = path === '/openapi.json' || path === '/v1/health';
      if (!isPublic && !path.startsWith('/v1/'))
        return fail(new ApiError('route_not_found', `no route ${method} ${path}`));
      if (method === 'OPTIONS') {
        // No CORS preflight is ever approved: other sites cannot call the API from a browser.
        return fail(new ApiError('method_not_allowed', 'cross-origin requests are not allowed'), {
          allow: 'GET, POST, PATCH, DELETE',
        });
      }
      const mutating = method !== 'GET' && method !== 'HEAD';
      // The routes that need no credential only read: refuse a write before reading its body.
      if (isPublic && mutating) return fail(new ApiError('method_not_allowed', 'GET only'), { allow: 'GET, HEAD' });
      if (mutating && crossOrigin(req)) {
        return fail(new ApiError('csrf_rejected', 'a state-changing request from another origin is refused'));
      }
      let caller = null;
      if (!isPublic) {
        // An address over its failed-authentication budget is refused before its credential
        // is looked up: guessing then costs the database nothing, and a right guess is refused too.
        const addressKey = `addr:${req.socket.remoteAddress ?? 'unknown'}`;
        const blocked = perAddress.peek(addressKey);
        if (!blocked.allowed) {
          return fail(new ApiError('rate_limited', 'too many failed authentications; slow down'), {
            'retry-after': String(blocked.retryAfterSeconds),
          });
        }
        caller = await auth.authenticate(req.headers.authorization);
        if (!caller) {
          const limited = perAddress.take(addressKey);
          if (!limited.allowed) {
            return fail(new ApiError('rate_limited', 'too many failed authentications; slow down'), {
              'retry-after': String(limited.retryAfterSeconds),
            });
          }
          return fail(
            new ApiError(
              'unauthorized',
              'send an operator API key or a tenant portal token as Authorization: Bearer …',
            ),
            {
              'www-authenticate': 'Bearer',
            },
          );
        }
        who = caller.id;
        const limited = perCaller.take(caller.id);
        if (!limited.allowed) {
          return fail(new ApiError('rate_limited', `rate limit of ${perCaller.perMinute} requests a minute reached`), {
            'retry-after': String(limited.retryAfterSeconds),
          });
        }
      }
      let body: unknown;
      if (mutating) {
        const raw = await readBody(req);
        if (raw.length > 0) {
          const type = String(req.headers['content-type'] ?? '')
            .split(';')[0]
            ?.trim()
            .toLowerCase();
          if (type !== 'application/json') {
            return fail(new ApiError('unsupported_media_type', 'request bodies must be application/json'));
          }
          try {
            body = JSON.parse(raw.toString('utf8'));
          } catch {
            return fail(new ApiError('invalid_json', 'the body is not valid JSON'));
          }
        }
      }
      const query: Record<string, string | string[]> = {};
      for (const key of new Set(url.searchParams.keys())) {
        const all = url.searchParams.getAll(key);
        query[key] = all.length === 1 ? (all[0] as string) : all;
      }
      const apiReq: ApiRequest = { method, path, query, body, ...(caller ? { auth: caller.auth } : {}) };
      const r = await api.handle(apiReq);
      const headers: Record<string, string> = {};
      if (r.status === 405) headers.allow = 'GET, POST, PATCH, DELETE';
      return sendJson(r.status, r.body, headers);
    } catch (err) {
      if (err instanceof ApiError) return fail(err);
      log.error({ err, method: req.method, path }, 'request failed');
      if (!res.headersSent) fail(new ApiError('internal', 'internal error'));
      else res.destroy();
    }
  }
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;

  const port = options.port ?? SERVE_DEFAULTS.port;
  const host = options.host ?? SERVE_DEFAULTS.host;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    api,
    port: address.port,
    url: `http://${shown}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Whether a browser sent this request from another site. Browsers say so themselves in
 * Sec-Fetch-Site (`same-origin`, or `none` when the user typed it), which holds behind a
 * proxy that rewrites Host; without it (an older browser, or not a browser), an Origin
 * whose host is not the Host header counts as another site, and no Origin as none.
 */
function crossOrigin(req: http.IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string') return site !== 'same-origin' && site !== 'none';
  const origin = req.headers.origin;
  if (origin === undefined) return false;
  try {
    return req.headers.host === undefined || new URL(origin).host !== req.headers.host;
  } catch {
    return true;
  }
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.resume();
        reject(new ApiError('payload_too_large', `request bodies are limited to ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
