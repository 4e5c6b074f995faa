/**
 * A real webhook receiver for tests: a node:http server on 127.0.0.1 that records every
 * request (raw body and headers) and answers each path the way the test says — a status,
 * a delay, extra headers (Retry-After, Location), a huge or endless body, a reset socket,
 * or no answer at all. Close it with `await receiver.close()` (or `await using`).
 */
import { once } from 'node:events';
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { verify } from '@hookbox/outbox';

export interface ReceivedRequest {
  method: string;
  /** Path and query, as sent. */
  path: string;
  headers: IncomingHttpHeaders;
  /** The raw body, exactly as it arrived (signatures are over these bytes). */
  body: string;
  /** Date.now() when the whole body had arrived. */
  receivedAt: number;
  /** 1 for the first request to this path, 2 for the second, … */
  nth: number;
  /** Date.now() when the response finished or the connection closed; null while in flight. */
  closedAt: number | null;
}

/** What the receiver does with one request. Every field is optional; `{}` answers 200. */
export interface Behaviour {
  /** Status code. Default 200. */
  status?: number;
  /** Wait this long before answering, in ms. */
  delayMs?: number;
  /** Extra response headers, e.g. `{ 'retry-after': '1' }` or `{ location: '/elsewhere' }`. */
  headers?: Record<string, string>;
  /** Response body. Default empty. */
  body?: string;
  /** Stream this many bytes of body (in 64 KiB chunks, honouring back-pressure). */
  bodyBytes?: number;
  /** Stream a body until the client goes away. */
  endless?: boolean;
  /** Destroy the socket instead of answering (the client sees a reset / closed socket). */
  reset?: boolean;
  /** Never answer; the request stays open until the client gives up or the receiver closes. */
  hang?: boolean;
}

export type BehaviourFn = (req: ReceivedRequest) => Behaviour;

/** How far one response got: bytes the socket accepted, and whether the client cut it off. */
export interface ResponseTrace {
  path: string;
  /** Body bytes handed to the socket (at most one 64 KiB chunk beyond what it accepted). */
  bytesWritten: number;
  /** True when the response finished; false when the connection closed first. */
  completed: boolean;
}

export interface Receiver {
  /** `http://127.0.0.1:<port><path>` (the host it listens on). */
  url(path: string): string;
  readonly port: number;
  /** Sets how `path` answers from now on (a fixed behaviour or a function of the request). */
  on(path: string, behaviour: Behaviour | BehaviourFn): void;
  /** Requests received so far (whole bodies only), optionally for one path, in arrival order. */
  requests(path?: string): ReceivedRequest[];
  /** Requests received whose response has not finished or been cut off yet. */
  readonly inFlight: number;
  /**
   * TCP connections open now. Once a client process is dead and this is 0, every request
   * it wrote has been read: a socket's close comes after all the data sent on it.
   */
  readonly openConnections: number;
  /** One entry per finished or cut-off response. */
  readonly traces: readonly ResponseTrace[];
  /** Waits (bounded) until `predicate` holds for the requests received; returns them. */
  waitFor(
    predicate: (all: ReceivedRequest[]) => boolean,
    options?: { timeoutMs?: number; what?: string },
  ): Promise<ReceivedRequest[]>;
  /** Stops listening and destroys every open connection (pending answers are dropped). */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const CHUNK = Buffer.alloc(64 * 1024, 'x');

/**
 * Starts a receiver on an ephemeral port of `host` (default 127.0.0.1; `::1` for IPv6).
 * Unknown paths answer 200.
 */
export async function startReceiver({ host = '127.0.0.1' }: { host?: string } = {}): Promise<Receiver> {
  const behaviours = new Map<string, Behaviour | BehaviourFn>();
  const received: ReceivedRequest[] = [];
  const counts = new Map<string, number>();
  const traces: ResponseTrace[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const changeWaiters = new Set<() => void>();
  let inFlight = 0;
  let closed = false;

  const changed = () => {
    for (const w of changeWaiters) w();
  };

  const server = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      const nth = (counts.get(path) ?? 0) + 1;
      counts.set(path, nth);
      const request: ReceivedRequest = {
        method: req.method ?? '',
        path,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        receivedAt: Date.now(),
        nth,
        closedAt: null,
      };
      received.push(request);
      inFlight++;
      const trace: ResponseTrace = { path, bytesWritten: 0, completed: false };
      res.once('close', () => {
        request.closedAt = Date.now();
        inFlight--;
        trace.completed = res.writableFinished;
        traces.push(trace);
        changed();
      });
      changed();
      const b = behaviours.get(path) ?? {};
      const behaviour = typeof b === 'function' ? b(request) : b;
      const act = () => respond(behaviour, res, trace);
      if (behaviour.delayMs && behaviour.delayMs > 0) {
        const t = setTimeout(() => {
          timers.delete(t);
          act();
        }, behaviour.delayMs);
        timers.add(t);
        res.once('close', () => {
          clearTimeout(t);
          timers.delete(t);
        });
      } else {
        act();
      }
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.listen(0, host);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    for (const t of timers) clearTimeout(t);
    timers.clear();
    const done = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of sockets) s.destroy();
    server.closeAllConnections();
    await done;
  }

  return {
    port,
    url: (path) => `http://${host.includes(':') ? `[${host}]` : host}:${port}${path}`,
    on(path, behaviour) {
      behaviours.set(path, behaviour);
    },
    requests: (path) => (path === undefined ? [...received] : received.filter((r) => r.path === path)),
    get inFlight() {
      return inFlight;
    },
    get openConnections() {
      return sockets.size;
    },
    traces,
    async waitFor(predicate, { timeoutMs = 30_000, what = 'the expected requests' } = {}) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(received)) {
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new Error(`receiver: timed out after ${timeoutMs} ms waiting for ${what} (got ${received.length})`);
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, Math.min(left, 50));
          function done() {
            clearTimeout(t);
            changeWaiters.delete(done);
            resolve();
          }
          changeWaiters.add(done);
        });
      }
      return [...received];
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

function respond(b: Behaviour, res: http.ServerResponse, trace: ResponseTrace): void {
  if (res.destroyed) return;
  if (b.hang) return;
  if (b.reset) {
    res.socket?.destroy();
    return;
  }
  res.statusCode = b.status ?? 200;
  for (const [k, v] of Object.entries(b.headers ?? {})) res.setHeader(k, v);
  if (b.endless || b.bodyBytes !== undefined) {
    if (b.bodyBytes !== undefined) res.setHeader('content-length', b.bodyBytes);
    let left = b.endless ? Number.POSITIVE_INFINITY : (b.bodyBytes ?? 0);
    const pump = () => {
      while (left > 0 && !res.destroyed) {
        const chunk = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
        left -= chunk.length;
        trace.bytesWritten += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
      if (left <= 0 && !res.destroyed) res.end();
    };
    pump();
    return;
  }
  res.end(b.body ?? '');
}

/**
 * Checks received requests in order as a receiver would, with verify's `ordering` option:
 * the statuses it reported (['next'] when every key came in order without gaps) and the
 * last seq it saw per key.
 */
export function orderingReports(
  secret: string,
  requests: readonly ReceivedRequest[],
): { statuses: string[]; lastSeq: Map<string, number> } {
  const lastSeq = new Map<string, number>();
  const statuses = new Set<string>();
  for (const r of requests) {
    verify(secret, r.headers as Record<string, string>, r.body, {
      ordering: lastSeq,
      onOrdering: (report) => statuses.add(report.status),
    });
  }
  return { statuses: [...statuses], lastSeq };
}
