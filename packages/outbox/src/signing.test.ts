import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { ValidationError, WebhookVerificationError } from './errors.js';
import { generateSecret } from './secret.js';
import { checkOrdering, createSigner, type OrderingReport, sign, verify, WEBHOOK_HEADERS } from './signing.js';

const SECRET_A = generateSecret();
const SECRET_B = generateSecret();
const BODY = JSON.stringify({ type: 'message.new', data: { id: 42, text: 'héllo ✓' } });
const MSG_ID = 'msg_01J9Z3K0ABCDEF';

const nowSeconds = () => Math.floor(Date.now() / 1000);

function headers(id: string, timestamp: number | string, signature: string): Record<string, string> {
  return {
    [WEBHOOK_HEADERS.id]: id,
    [WEBHOOK_HEADERS.timestamp]: String(timestamp),
    [WEBHOOK_HEADERS.signature]: signature,
  };
}

/** Headers signed by the reference implementation, not by our sign(). */
function referenceSigned(secret: string, id: string, timestamp: number, body: string): Record<string, string> {
  return headers(id, timestamp, new Webhook(secret).sign(id, new Date(timestamp * 1000), body));
}

function verificationError(fn: () => unknown): WebhookVerificationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WebhookVerificationError);
    expect((err as WebhookVerificationError).code).toBe('HOOKBOX_WEBHOOK_VERIFICATION');
    return err as WebhookVerificationError;
  }
  throw new Error('expected a WebhookVerificationError, nothing was thrown');
}

describe('sign', () => {
  it('matches a known-answer vector computed with node:crypto (the Standard Webhooks example)', () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const id = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
    const ts = 1614265330;
    const body = '{"test": 2432232314}';
    const independent = createHmac('sha256', Buffer.from('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'base64'))
      .update(`${id}.${ts}.${body}`)
      .digest('base64');
    expect(independent).toBe('g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
    expect(sign(secret, id, ts, body)).toBe(`v1,${independent}`);
    expect(createSigner([secret])(id, ts, body)).toBe(`v1,${independent}`);
    expect(verify(secret, headers(id, ts, `v1,${independent}`), body, { now: ts + 10 })).toEqual({ test: 2432232314 });
    // A repeated webhook-signature header, as Node's http module joins it (", "): the valid
    // one may come first or last.
    for (const joined of [`v1,${independent}, v1,AAAA`, `v1,AAAA, v1,${independent}`]) {
      expect(verify(secret, headers(id, ts, joined), body, { now: ts + 10 }), joined).toEqual({ test: 2432232314 });
    }
  });

  it('produces a header the standardwebhooks package verifies', () => {
    const ts = nowSeconds();
    const signature = sign(SECRET_A, MSG_ID, ts, BODY);
    expect(signature).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(new Webhook(SECRET_A).verify(BODY, headers(MSG_ID, ts, signature))).toEqual(JSON.parse(BODY));
    // ...and which that package rejects under a different secret.
    expect(() => new Webhook(SECRET_B).verify(BODY, headers(MSG_ID, ts, signature))).toThrow(/signature/i);
  });

  it('emits one v1 signature per secret, in order, each matching the reference implementation', () => {
    const ts = nowSeconds();
    const header = sign([SECRET_A, SECRET_B], MSG_ID, ts, BODY);
    const parts = header.split(' ');
    expect(parts).toEqual([
      new Webhook(SECRET_A).sign(MSG_ID, new Date(ts * 1000), BODY),
      new Webhook(SECRET_B).sign(MSG_ID, new Date(ts * 1000), BODY),
    ]);
    // A receiver that only knows either one of the rotating secrets accepts the message.
    expect(new Webhook(SECRET_A).verify(BODY, headers(MSG_ID, ts, header))).toEqual(JSON.parse(BODY));
    expect(new Webhook(SECRET_B).verify(BODY, headers(MSG_ID, ts, header))).toEqual(JSON.parse(BODY));
  });

  it('createSigner gives the same output as sign and can be reused', () => {
    const signer = createSigner([SECRET_A, SECRET_B]);
    const ts = nowSeconds();
    expect(signer(MSG_ID, ts, BODY)).toBe(sign([SECRET_A, SECRET_B], MSG_ID, ts, BODY));
    expect(signer('msg_other', ts, BODY)).toBe(sign([SECRET_A, SECRET_B], 'msg_other', ts, BODY));
    expect(signer('msg_other', ts, BODY)).not.toBe(signer(MSG_ID, ts, BODY));
  });

  it('rejects malformed secrets, no secrets and non-integer timestamps with ValidationError', () => {
    const bad = ['nope', 'whsec_', 'whsec_not*base64!', 'whsec_c2hvcnQ=', `whsec_${'A'.repeat(200)}`];
    for (const secret of bad) {
      expect(() => sign(secret, MSG_ID, 1, BODY), secret).toThrow(ValidationError);
      expect(() => createSigner([SECRET_A, secret]), secret).toThrow(/secrets\[1\]/);
      expect(() => verify(secret, {}, BODY), secret).toThrow(ValidationError);
    }
    expect(() => createSigner([])).toThrow(ValidationError);
    expect(() => sign(SECRET_A, MSG_ID, 1.5, BODY)).toThrow(/timestamp/);
    expect(() => sign(SECRET_A, MSG_ID, Number.NaN, BODY)).toThrow(ValidationError);
  });
});

describe('verify', () => {
  it('accepts a message signed by the standardwebhooks package and returns the parsed body', () => {
    const ts = nowSeconds();
    expect(verify(SECRET_A, referenceSigned(SECRET_A, MSG_ID, ts, BODY), BODY)).toEqual(JSON.parse(BODY));
    expect(verify(SECRET_A, referenceSigned(SECRET_A, MSG_ID, ts, BODY), Buffer.from(BODY))).toEqual(JSON.parse(BODY));
  });

  it('accepts fetch Headers and mixed-case header names', () => {
    const ts = nowSeconds();
    const sig = new Webhook(SECRET_A).sign(MSG_ID, new Date(ts * 1000), BODY);
    const h = new Headers({ 'Webhook-Id': MSG_ID, 'Webhook-Timestamp': String(ts), 'Webhook-Signature': sig });
    expect(verify(SECRET_A, h, BODY)).toEqual(JSON.parse(BODY));
    const record = { 'WEBHOOK-ID': MSG_ID, 'Webhook-Timestamp': String(ts), 'webhook-SIGNATURE': [sig] };
    expect(verify(SECRET_A, record, BODY)).toEqual(JSON.parse(BODY));
  });

  it('during a rotation accepts either secret on the receiving side and either signature on the wire', () => {
    const ts = nowSeconds();
    const both = sign([SECRET_A, SECRET_B], MSG_ID, ts, BODY);
    expect(verify(SECRET_A, headers(MSG_ID, ts, both), BODY)).toEqual(JSON.parse(BODY));
    expect(verify(SECRET_B, headers(MSG_ID, ts, both), BODY)).toEqual(JSON.parse(BODY));
    // A receiver holding both secrets accepts a sender that still signs with only the old one.
    const onlyOld = new Webhook(SECRET_A).sign(MSG_ID, new Date(ts * 1000), BODY);
    expect(verify([SECRET_B, SECRET_A], headers(MSG_ID, ts, onlyOld), BODY)).toEqual(JSON.parse(BODY));
    // A third, unrelated secret matches neither.
    expect(verificationError(() => verify(generateSecret(), headers(MSG_ID, ts, both), BODY)).message).toMatch(
      /no matching signature/,
    );
  });

  it('ignores unknown versions and finds the v1 signature among them', () => {
    const ts = nowSeconds();
    const v1 = new Webhook(SECRET_A).sign(MSG_ID, new Date(ts * 1000), BODY);
    const b64 = v1.slice(3);
    expect(verify(SECRET_A, headers(MSG_ID, ts, `v1a,${b64} v2,abc ${v1}`), BODY)).toEqual(JSON.parse(BODY));
    // The right bytes under an unknown version label do not count.
    const err = verificationError(() => verify(SECRET_A, headers(MSG_ID, ts, `v1a,${b64} v2,${b64}`), BODY));
    expect(err.message).toMatch(/no v1 signature/);
  });

  it('rejects a tampered body, id or timestamp', () => {
    const ts = nowSeconds();
    const signed = referenceSigned(SECRET_A, MSG_ID, ts, BODY);
    const tamperedBody = BODY.replace('42', '43');
    expect(verificationError(() => verify(SECRET_A, signed, tamperedBody))).toMatchObject({
      reason: 'no_matching_signature',
      message: expect.stringMatching(/no matching signature/),
    });
    const tamperedId = { ...signed, [WEBHOOK_HEADERS.id]: `${MSG_ID}x` };
    expect(verificationError(() => verify(SECRET_A, tamperedId, BODY)).message).toMatch(/no matching signature/);
    const tamperedTs = { ...signed, [WEBHOOK_HEADERS.timestamp]: String(ts - 1) };
    expect(verificationError(() => verify(SECRET_A, tamperedTs, BODY)).message).toMatch(/no matching signature/);
    const truncated = { ...signed, [WEBHOOK_HEADERS.signature]: signed[WEBHOOK_HEADERS.signature]!.slice(0, -2) };
    expect(verificationError(() => verify(SECRET_A, truncated, BODY)).message).toMatch(/no matching signature/);
  });

  it('rejects timestamps outside the tolerance, in both directions, with distinct messages', () => {
    const now = nowSeconds();
    const old = referenceSigned(SECRET_A, MSG_ID, now - 301, BODY);
    expect(verificationError(() => verify(SECRET_A, old, BODY))).toMatchObject({
      reason: 'timestamp_too_old',
      message: expect.stringMatching(/too old: 301s before now/),
    });
    const future = referenceSigned(SECRET_A, MSG_ID, now + 301, BODY);
    expect(verificationError(() => verify(SECRET_A, future, BODY))).toMatchObject({
      reason: 'timestamp_too_new',
      message: expect.stringMatching(/too far in the future/),
    });
    // Inside the default 300 s window in both directions, and the tolerance is adjustable.
    expect(verify(SECRET_A, referenceSigned(SECRET_A, MSG_ID, now - 290, BODY), BODY)).toEqual(JSON.parse(BODY));
    expect(verify(SECRET_A, referenceSigned(SECRET_A, MSG_ID, now + 290, BODY), BODY)).toEqual(JSON.parse(BODY));
    expect(verify(SECRET_A, old, BODY, { toleranceSeconds: 600 })).toEqual(JSON.parse(BODY));
    const fixed = referenceSigned(SECRET_A, MSG_ID, 1_000_000, BODY);
    expect(verify(SECRET_A, fixed, BODY, { now: 1_000_005 })).toEqual(JSON.parse(BODY));
    expect(
      verificationError(() => verify(SECRET_A, fixed, BODY, { now: 1_000_005, toleranceSeconds: 4 })).message,
    ).toMatch(/too old/);
  });

  it('names the missing headers and rejects a non-numeric timestamp', () => {
    const ts = nowSeconds();
    const signed = referenceSigned(SECRET_A, MSG_ID, ts, BODY);
    expect(verificationError(() => verify(SECRET_A, {}, BODY)).reason).toBe('missing_headers');
    expect(verificationError(() => verify(SECRET_A, {}, BODY)).message).toBe(
      'missing required header(s): webhook-id, webhook-timestamp, webhook-signature',
    );
    const { [WEBHOOK_HEADERS.signature]: _sig, ...noSignature } = signed;
    expect(verificationError(() => verify(SECRET_A, noSignature, BODY)).message).toBe(
      'missing required header(s): webhook-signature',
    );
    for (const bad of ['abc', '12abc', '-5', '1.5e9', '']) {
      const err = verificationError(() => verify(SECRET_A, { ...signed, [WEBHOOK_HEADERS.timestamp]: bad }, BODY));
      expect(err.reason, bad).toBe(bad === '' ? 'missing_headers' : 'invalid_timestamp');
      expect(err.message, bad).toMatch(bad === '' ? /missing required header/ : /not a number/);
    }
  });

  it('rejects a correctly signed body that is not JSON, after checking the signature', () => {
    const ts = nowSeconds();
    const text = 'plain text, not json';
    expect(verificationError(() => verify(SECRET_A, referenceSigned(SECRET_A, MSG_ID, ts, text), text))).toMatchObject({
      reason: 'invalid_body',
      message: expect.stringMatching(/body is not JSON/),
    });
    // With a wrong signature the signature is what gets reported, not the body.
    const wrong = referenceSigned(SECRET_B, MSG_ID, ts, text);
    expect(verificationError(() => verify(SECRET_A, wrong, text)).message).toMatch(/no matching signature/);
  });
});

describe('ordering check', () => {
  it('tells next, first, repeat, gap and behind apart, and never moves the state back', () => {
    const state = new Map<string, number>();
    const see = (key: string, seq: number) => {
      const { status, missing } = checkOrdering(state, key, seq);
      return [status, missing];
    };
    expect(see('a', 1)).toEqual(['next', 0]);
    expect(see('a', 2)).toEqual(['next', 0]);
    expect(see('a', 2)).toEqual(['repeat', 0]);
    expect(see('a', 5)).toEqual(['gap', 2]);
    expect(see('a', 3)).toEqual(['behind', 0]);
    expect(state.get('a')).toBe(5);
    expect(see('b', 7)).toEqual(['first', 0]);
    expect(see('b', 8)).toEqual(['next', 0]);
  });

  it('verify reports from the signed body, not from the unsigned headers', () => {
    const ts = nowSeconds();
    const state = new Map<string, number>([['conv:1', 3]]);
    const reports: OrderingReport[] = [];
    const body = JSON.stringify({ id: MSG_ID, type: 'x.y', data: {}, ordering: { key: 'conv:1', seq: 5 } });
    const h = {
      ...referenceSigned(SECRET_A, MSG_ID, ts, body),
      [WEBHOOK_HEADERS.orderingKey]: 'conv:1',
      [WEBHOOK_HEADERS.orderingSeq]: '4',
    };
    verify(SECRET_A, h, body, { ordering: state, onOrdering: (r) => reports.push(r) });
    expect(reports).toEqual([{ key: 'conv:1', seq: 5, last: 3, status: 'gap', missing: 1 }]);
    // A bad signature is refused before the state is touched.
    expect(() => verify(SECRET_B, h, body, { ordering: state, onOrdering: (r) => reports.push(r) })).toThrow(
      WebhookVerificationError,
    );
    expect(reports).toHaveLength(1);
    // Unordered events are not reported.
    const plain = JSON.stringify({ id: MSG_ID, type: 'x.y', data: {} });
    verify(SECRET_A, referenceSigned(SECRET_A, MSG_ID, ts, plain), plain, {
      ordering: state,
      onOrdering: (r) => reports.push(r),
    });
    expect(reports).toHaveLength(1);
  });
});
