/**
 * One HTTP attempt with undici's low-level `dispatch`: no redirects followed, a total
 * timeout, and the response body kept only up to a cap (the rest is discarded, and an
 * over-long body ends the request), so a huge or endless response cannot exhaust memory.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { AttemptResult, ErrorClass } from '../policy/retry.js';

export interface HttpAttempt {
  result: AttemptResult;
  /** Wall time of the attempt in milliseconds. */
  durationMs: number;
  /** First bytes of the response body (at most the cap), as text. */
  excerpt: string | null;
}

/**
 * One timer for many attempts instead of a timer each: deadlines go into a FIFO (they
 * arrive in order because every attempt of a relay has the same timeout) that is swept
 * every `tickMs`. Timeouts fire up to `tickMs` late.
 */
export class Deadlines {
  private entries: { at: number; fire: (() => void) | null }[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly tickMs = 25) {}

  /** Calls `fire` at (or just after) performance.now() time `at`, unless cancelled. */
  add(at: number, fire: () => void): { fire: (() => void) | null } {
    const entry = { at, fire: fire as (() => void) | null };
    this.entries.push(entry);
    if (!this.timer) this.timer = setInterval(() => this.sweep(), this.tickMs);
    return entry;
  }

  cancel(entry: { fire: (() => void) | null }): void {
    entry.fire = null;
  }

  private sweep(): void {
    const now = performance.now();
    while (this.head < this.entries.length) {
      const e = this.entries[this.head] as { at: number; fire: (() => void) | null };
      if (e.fire !== null && e.at > now) break;
      this.head++;
      const fire = e.fire;
      e.fire = null;
      fire?.();
    }
    if (this.head === this.entries.length) {
      this.entries = [];
      this.head = 0;
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
    } else if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}

export interface HttpSendOptions {
  /** Total time allowed for connect + request + response, in ms. */
  timeoutMs: number;
  /** Shared timer for the timeouts (all attempts using it must have the same timeoutMs). */
  deadlines?: Deadlines;
  /** Response bytes kept for the delivery log. */
  maxResponseBytes: number;
  /** Response bytes read (and discarded) past the cap before the request is cut off. */
  maxDrainBytes: number;
}

/** Why an attempt ended early, carried as the abort reason. */
export class AttemptAbort extends Error {
  constructor(
    readonly errorClass: ErrorClass,
    message: string,
  ) {
    super(message);
    this.name = 'AttemptAbort';
  }
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'EPROTO',
]);

/** Maps an error from undici, node:net, dns or tls to the delivery log's error class. */
export function classifyError(err: unknown): ErrorClass {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof AttemptAbort) return e.errorClass;
    const code = (e as { code?: string }).code;
    if (!code) continue;
    if (code === 'HOOKBOX_SSRF_BLOCKED') return 'blocked';
    if (code === 'ECONNREFUSED') return 'connection_refused';
    if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET') return 'connection_reset';
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME' || code === 'EAI_FAIL') return 'dns';
    if (
      code === 'ETIMEDOUT' ||
      code === 'UND_ERR_CONNECT_TIMEOUT' ||
      code === 'UND_ERR_HEADERS_TIMEOUT' ||
      code === 'UND_ERR_BODY_TIMEOUT'
    ) {
      return 'timeout';
    }
    if (TLS_CODES.has(code) || code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || code.includes('CERT')) {
      return 'tls';
    }
  }
  return 'network';
}

/** An attempt that ended in an error; a refused hostname's resolved address goes apart (see BlockedAddressError). */
function errorResult(err: unknown): AttemptResult {
  const result: AttemptResult = {
    kind: 'error',
    errorClass: classifyError(err),
    message: (err as Error)?.message ?? String(err),
  };
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, host, address } = e as { code?: unknown; host?: unknown; address?: unknown };
    if (code === 'HOOKBOX_SSRF_BLOCKED' && typeof address === 'string' && host !== address)
      return { ...result, address };
  }
  return result;
}

function firstHeader(v: string | string[] | undefined): string | null {
  return v === undefined ? null : Array.isArray(v) ? (v[0] ?? null) : v;
}

/**
 * Sends one POST. Never rejects: every outcome, including connection errors, comes back
 * as an `HttpAttempt` for the retry policy to judge.
 */
export function sendAttempt(
  dispatcher: Dispatcher,
  origin: string,
  path: string,
  headers: Record<string, string>,
  body: string,
  options: HttpSendOptions,
): Promise<HttpAttempt> {
  return new Promise((resolve) => {
    const started = performance.now();
    let controller: Dispatcher.DispatchController | null = null;
    let pendingAbort: AttemptAbort | null = null;
    let status = 0;
    let retryAfter: string | null = null;
    const kept: Buffer[] = [];
    let keptBytes = 0;
    let seenBytes = 0;
    let settled = false;

    const finish = (result: AttemptResult) => {
      if (settled) return;
      settled = true;
      if (deadline) options.deadlines?.cancel(deadline);
      else clearTimeout(timer);
      const excerpt = keptBytes > 0 ? Buffer.concat(kept, keptBytes).toString('utf8') : null;
      resolve({ result, durationMs: Math.round(performance.now() - started), excerpt });
    };
    const abort = (reason: AttemptAbort) => {
      if (controller) controller.abort(reason);
      else pendingAbort = reason;
    };
    const onTimeout = () => abort(new AttemptAbort('timeout', `no complete response within ${options.timeoutMs} ms`));
    const deadline = options.deadlines?.add(started + options.timeoutMs, onTimeout);
    const timer = deadline ? undefined : setTimeout(onTimeout, options.timeoutMs);

    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (pendingAbort) c.abort(pendingAbort);
      },
      onResponseStart(_c, statusCode: number, resHeaders: IncomingHttpHeaders) {
        status = statusCode;
        retryAfter = firstHeader(resHeaders['retry-after']);
      },
      onResponseData(c, chunk: Buffer) {
        seenBytes += chunk.length;
        if (keptBytes < options.maxResponseBytes) {
          const take = Math.min(chunk.length, options.maxResponseBytes - keptBytes);
          kept.push(take === chunk.length ? chunk : chunk.subarray(0, take));
          keptBytes += take;
        }
        if (seenBytes > options.maxResponseBytes + options.maxDrainBytes) {
          // The status is known; an endless body gets no more of our time or memory.
          finish({ kind: 'response', status, retryAfter });
          c.abort(new AttemptAbort('network', 'response body over the drain limit'));
        }
      },
      onResponseEnd() {
        finish({ kind: 'response', status, retryAfter });
      },
      onResponseError(_c, err: Error) {
        if (status !== 0 && !(err instanceof AttemptAbort && err.errorClass === 'timeout')) {
          // Headers arrived and then the body broke off: the endpoint did answer.
          finish({ kind: 'response', status, retryAfter });
          return;
        }
        finish(errorResult(err));
      },
    };

    try {
      dispatcher.dispatch({ origin, path, method: 'POST', headers, body, blocking: true }, handler);
    } catch (err) {
      finish(errorResult(err));
    }
  });
}
