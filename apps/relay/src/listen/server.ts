/**
 * `hookbox listen`: a local webhook receiver for trying out subscriptions and the relay
 * (webhook.site for localhost). Prints what arrives, checks Standard Webhooks signatures,
 * and can answer slowly or with failures to exercise the relay's retries.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseSecret, ValidationError, verify, WebhookVerificationError } from '@hookbox/outbox';

/** Largest `delayMs`: ten minutes is already longer than any sane delivery timeout. */
export const MAX_LISTEN_DELAY_MS = 600_000;
/** Default cap on a buffered request body: 1 MiB. */
export const DEFAULT_LISTEN_MAX_BODY_BYTES = 1_048_576;

export interface ListenOptions {
  /** TCP port; 0 picks a free one (see `Listener.port`). Default 9000. */
  port?: number;
  /** Interface to bind. Default `127.0.0.1`. */
  host?: string;
  /** `whsec_` secrets; when given, every request's signature is verified. Default none. */
  secrets?: readonly string[];
  /** Status answered to accepted requests, 100–599. Default 200. */
  status?: number;
  /** Fraction (0..1) of requests answered 500 at random. Default 0. */
  failRate?: number;
  /** Wait this long before answering, in ms. Default 0. */
  delayMs?: number;
  /** Bodies larger than this are answered 413. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Called once per request, after its answer is decided and before it is sent. */
  onRequest?: (request: ReceivedRequest) => void;
  /** Source of randomness for `failRate`. Default Math.random. */
  random?: () => number;
}

export type SignatureVerdict = 'valid' | 'invalid' | 'too old';

export interface ReceivedRequest {
  /** ISO time the request finished arriving. */
  time: string;
  method: string;
  /** Path with query string, as sent. */
  path: string;
  /** Raw header pairs in arrival order, with any value containing a secret redacted. */
  headers: [name: string, value: string][];
  /** Size of the body in bytes. */
  bytes: number;
  /** Parsed JSON body, or `undefined` when the body is empty, not JSON, or too large. */
  json?: unknown;
  /** The raw body as text when it is not JSON. */
  text?: string;
  /** Signature verdict; `null` when no secret was given. */
  signature: SignatureVerdict | null;
  /** Why the signature is not valid (the verification error's message). */
  reason?: string;
  /** Status answered. */
  status: number;
  /** Delay before answering, in ms. */
  delayMs: number;
}

export interface Listener {
  /** The bound port (the real one when `port` was 0). */
  port: number;
  /** `http://host:port`. */
  url: string;
  verifying: boolean;
  /** Stops accepting, drops open connections and pending delayed answers. Idempotent. */
  close(): Promise<void>;
}

type Resolved = Required<Omit<ListenOptions, 'onRequest'>> & Pick<ListenOptions, 'onRequest'>;

/**
 * Defaults in one place; a bad option throws a ValidationError naming it (`port`, `delayMs`,
 * `secrets[1]`); `hookbox listen` turns the name into its flag.
 */
export function resolveListenOptions(options: ListenOptions): Resolved {
  const o: Resolved = {
    port: 9000,
    host: '127.0.0.1',
    secrets: [],
    status: 200,
    failRate: 0,
    delayMs: 0,
    maxBodyBytes: DEFAULT_LISTEN_MAX_BODY_BYTES,
    random: Math.random,
    ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
  } satisfies Resolved;
  const rule = (ok: boolean, field: string, must: string, got: unknown) => {
    if (!ok) throw new ValidationError(field, 'range', `must be ${must} (got ${String(got)})`);
  };
  rule(Number.isInteger(o.port) && o.port >= 0 && o.port <= 65535, 'port', 'an integer from 0 to 65535', o.port);
  rule(o.host.trim() !== '', 'host', 'a host name or IP address', JSON.stringify(o.host));
  rule(
    Number.isInteger(o.status) && o.status >= 200 && o.status <= 599,
    'status',
    'an integer from 200 to 599 (a 1xx is not a final answer)',
    o.status,
  );
  rule(
    Number.isFinite(o.failRate) && o.failRate >= 0 && o.failRate <= 1,
    'failRate',
    'a number from 0 to 1',
    o.failRate,
  );
  rule(
    Number.isInteger(o.delayMs) && o.delayMs >= 0 && o.delayMs <= MAX_LISTEN_DELAY_MS,
    'delayMs',
    'from 0 to 10m',
    `${o.delayMs}ms`,
  );
  rule(Number.isInteger(o.maxBodyBytes) && o.maxBodyBytes > 0, 'maxBodyBytes', 'a positive integer', o.maxBodyBytes);
  // parseSecret's ValidationError names the rule, never the secret itself.
  o.secrets.forEach((secret, i) => {
    parseSecret(secret, o.secrets.length > 1 ? `secrets[${i}]` : 'secrets');
  });
  return o;
}

/** Starts the receiver; resolves once it is listening. */
export async function startListener(options: ListenOptions = {}): Promise<Listener> {
  const o = resolveListenOptions(options);
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((req, res) => {
    handle(o, timers, req, res).catch((err: unknown) => {
      if (!res.headersSent) answer(res, 500, { error: `listener failed: ${(err as Error).message}` });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;

  let closing: Promise<void> | undefined;
  return {
    port,
    url: `http://${host}:${port}`,
    verifying: o.secrets.length > 0,
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

async function handle(o: Resolved, timers: Set<NodeJS.Timeout>, req: IncomingMessage, res: ServerResponse) {
  const body = await readBody(req, o.maxBodyBytes);
  const record: ReceivedRequest = {
    time: new Date().toISOString(),
    method: req.method ?? 'GET',
    path: req.url ?? '/',
    headers: headerPairs(req.rawHeaders, o.secrets),
    bytes: body.bytes,
    signature: null,
    status: o.status,
    delayMs: 0,
  };

  if (body.tooLarge) {
    record.status = 413;
    o.onRequest?.(record);
    answer(res, 413, { error: `body larger than ${o.maxBodyBytes} bytes` });
    return;
  }

  const text = body.data.toString('utf8');
  try {
    record.json = text === '' ? undefined : JSON.parse(text);
  } catch {
    record.text = text;
  }

  let reply: Record<string, unknown> = { ok: true };
  if (o.secrets.length > 0) {
    const outcome = check(o.secrets, req, body.data);
    record.signature = outcome.verdict;
    if (outcome.reason) record.reason = outcome.reason;
    if (outcome.verdict !== 'valid') {
      record.status = 401;
      reply = { error: 'invalid signature', reason: outcome.reason };
    }
  }
  if (record.status !== 401 && o.failRate > 0 && o.random() < o.failRate) {
    record.status = 500;
    reply = { error: 'simulated failure (--fail-rate)' };
  }
  record.delayMs = o.delayMs;
  o.onRequest?.(record);

  if (o.delayMs > 0) {
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, o.delayMs);
      timers.add(t);
    });
  }
  answer(res, record.status, reply);
}

/**
 * The verdict of `verify`. A correctly signed body that is not JSON still has a valid
 * signature: the receiver prints it as text.
 */
function check(
  secrets: readonly string[],
  req: IncomingMessage,
  body: Buffer,
): { verdict: SignatureVerdict; reason?: string } {
  try {
    verify(secrets, req.headers, body);
    return { verdict: 'valid' };
  } catch (err) {
    if (!(err instanceof WebhookVerificationError)) throw err;
    // A correctly signed body that is not JSON: the signature is fine, the body is shown as text.
    if (err.reason === 'invalid_body') return { verdict: 'valid' };
    if (err.reason === 'timestamp_too_old') return { verdict: 'too old', reason: err.message };
    return { verdict: 'invalid', reason: err.message };
  }
}

/** Buffers up to `max` bytes; past that it keeps reading and discards, so the client can
 * finish sending and then read the 413 instead of a reset connection. */
async function readBody(
  req: IncomingMessage,
  max: number,
): Promise<{ data: Buffer; bytes: number; tooLarge: boolean }> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes <= max) chunks.push(chunk);
  }
  if (bytes > max) return { data: Buffer.alloc(0), bytes, tooLarge: true };
  return { data: Buffer.concat(chunks, bytes), bytes, tooLarge: false };
}

function headerPairs(raw: string[], secrets: readonly string[]): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const value = raw[i + 1]!;
    pairs.push([raw[i]!, secrets.some((s) => value.includes(s)) ? '[redacted]' : value]);
  }
  return pairs;
}

function answer(res: ServerResponse, status: number, body: Record<string, unknown>): void {
  if (status === 204 || status === 304 || status < 200) {
    res.writeHead(status).end();
    return;
  }
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}
