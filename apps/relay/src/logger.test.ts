/** The logger never writes a secret, a signature header or a database URL. */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { stream, lines };
}

describe('createLogger', () => {
  it('redacts secrets, the signature header and the database URL', () => {
    const { stream, lines } = capture();
    const logger = createLogger('info', stream);
    logger.info(
      {
        secret: 'whsec_one',
        sub: { secrets: ['whsec_two'] },
        headers: { 'webhook-signature': 'v1,c2lnbmF0dXJl', 'webhook-id': 'msg_1' },
        databaseUrl: 'postgres://u:p@db/x',
      },
      'hello',
    );
    const line = JSON.parse(lines.join('')) as Record<string, unknown>;
    expect(line).toMatchObject({
      secret: '[redacted]',
      sub: { secrets: '[redacted]' },
      headers: { 'webhook-signature': '[redacted]', 'webhook-id': 'msg_1' },
      databaseUrl: '[redacted]',
    });
    expect(lines.join('')).not.toMatch(/whsec_|c2lnbmF0dXJl|u:p@/);
  });
});
