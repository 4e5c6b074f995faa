/**
 * The relay's one root logger: JSON lines, or pretty output when stdout is a terminal.
 * Secrets and signatures are never logged; the redact list is a second line of defence.
 */
import { createRequire } from 'node:module';
import { WEBHOOK_HEADERS } from '@hookbox/outbox';
import { type Logger, pino } from 'pino';

const require = createRequire(import.meta.url);

export function createLogger(level: string, stream: NodeJS.WritableStream = process.stdout): Logger {
  const options = {
    level,
    base: { name: 'hookbox' },
    redact: {
      paths: [
        'secret',
        'secrets',
        '*.secret',
        '*.secrets',
        'previousSecret',
        `headers["${WEBHOOK_HEADERS.signature}"]`,
        'databaseUrl',
      ],
      censor: '[redacted]',
    },
  };
  const isTty = (stream as { isTTY?: boolean }).isTTY === true;
  if (!isTty) return pino(options, stream);
  // Loaded only for terminals: a daemon writing JSON lines never pays for it.
  const pretty = require('pino-pretty') as typeof import('pino-pretty');
  return pino(options, pretty({ colorize: true, destination: stream }));
}
