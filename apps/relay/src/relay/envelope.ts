/**
 * The request a delivery sends: the Standard Webhooks body `{"id","type","timestamp","data"}`
 * built as a string around the stored payload text (no JSON parse/stringify per delivery),
 * and the signed headers.
 */
import { createSigner, type Signer, WEBHOOK_HEADERS } from '@hookbox/outbox';
import type { ClaimedDelivery } from './sql.js';

export function buildBody(
  d: Pick<ClaimedDelivery, 'eventId' | 'eventType' | 'eventCreatedAt' | 'payload'> &
    Partial<Pick<ClaimedDelivery, 'orderingKey' | 'orderingSeq'>>,
): string {
  // id is a uuid, type matches [a-z0-9_.-]+ and the timestamp is ISO digits: none needs escaping.
  const head = `{"id":"${d.eventId}","type":"${d.eventType}","timestamp":"${d.eventCreatedAt}","data":${d.payload}`;
  // Ordered events carry their key and sequence in the signed body too (the headers are not signed).
  if (d.orderingKey === null || d.orderingKey === undefined) return `${head}}`;
  return `${head},"ordering":{"key":${JSON.stringify(d.orderingKey)},"seq":${d.orderingSeq}}}`;
}

/** Signers keyed by their secrets, so keys are decoded once per subscription, not per delivery. */
export class SignerCache {
  private readonly signers = new Map<string, Signer>();
  constructor(private readonly max = 10_000) {}

  get(secrets: readonly string[]): Signer {
    const key = secrets.length === 1 ? (secrets[0] as string) : secrets.join(' ');
    let s = this.signers.get(key);
    if (!s) {
      if (this.signers.size >= this.max) this.signers.clear();
      s = createSigner(secrets);
      this.signers.set(key, s);
    }
    return s;
  }
}

export function buildHeaders(
  d: ClaimedDelivery,
  body: string,
  signer: Signer,
  userAgent: string,
  nowSeconds: number,
): Record<string, string> {
  // Custom headers first: ours below override anything with the same name (validation
  // already refuses reserved names; this is the belt to that brace).
  const headers: Record<string, string> = d.headers ? { ...d.headers } : {};
  headers['content-type'] = 'application/json';
  headers['user-agent'] = userAgent;
  headers[WEBHOOK_HEADERS.id] = d.eventId;
  headers[WEBHOOK_HEADERS.timestamp] = String(nowSeconds);
  headers[WEBHOOK_HEADERS.signature] = signer(d.eventId, nowSeconds, body);
  if (d.orderingKey !== null) {
    headers[WEBHOOK_HEADERS.orderingKey] = encodeURIComponent(d.orderingKey);
    headers[WEBHOOK_HEADERS.orderingSeq] = String(d.orderingSeq);
  }
  return headers;
}
