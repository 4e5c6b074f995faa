import type { Command } from 'commander';
import { parseBindHost } from '../bind-host.js';
import { parseDuration } from '../duration.js';
import { UsageError } from '../errors.js';
import { type ReceivedRequest, startListener } from '../listen/server.js';
import { collect, untilSignal } from './flags.js';
import { withFlagNames } from './output.js';

interface ListenFlags {
  port: string;
  host: string;
  secret: string[];
  status: string;
  failRate: string;
  delay: string;
  json?: boolean;
}

/** startListener's option names → the flags of `hookbox listen`, for its error messages. */
const LISTEN_FLAGS: Readonly<Record<string, string>> = {
  port: '--port',
  host: '--host',
  secrets: '--secret',
  status: '--status',
  failRate: '--fail-rate',
  delayMs: '--delay',
};

export function registerListen(program: Command): void {
  program
    .command('listen')
    .description('run a local webhook receiver that prints each request and checks its signature')
    .option('--port <port>', 'port to listen on (0 picks a free one)', '9000')
    .option('--host <host>', 'interface to bind', '127.0.0.1')
    .option('--secret <whsec>', 'verify signatures with this secret (repeat for a rotation)', collect, [])
    .option('--status <code>', 'status to answer (200-599)', '200')
    .option('--fail-rate <fraction>', 'answer 500 to this fraction of requests at random (0..1)', '0')
    .option('--delay <duration>', 'wait before answering: 250ms, 2s, or plain milliseconds', '0')
    .option('--json', 'print one JSON object per line (first the listening address, then each request)')
    .addHelpText(
      'after',
      [
        '',
        'An invalid or stale signature is answered 401; bodies over 1 MiB are answered 413.',
        '',
        'Examples:',
        '  $ hookbox listen',
        '  $ hookbox listen --port 9000 --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
        '  $ hookbox listen --secret "$NEW_SECRET" --secret "$OLD_SECRET"   # during a rotation',
        '  $ hookbox listen --fail-rate 0.3 --delay 2s                      # exercise retries and timeouts',
        '  $ hookbox listen --status 410                                    # make the relay disable the endpoint',
        '  $ hookbox listen --port 0 --json | jq .                          # for scripts',
      ].join('\n'),
    )
    .action(async (flags: ListenFlags) => {
      const json = flags.json === true;
      const listener = await withFlagNames(LISTEN_FLAGS, () =>
        startListener({
          port: parseInteger(flags.port, '--port'),
          host: parseBindHost(flags.host, '--host'),
          secrets: flags.secret,
          status: parseInteger(flags.status, '--status'),
          failRate: parseFraction(flags.failRate),
          delayMs: /^\d+$/.test(flags.delay.trim())
            ? Number(flags.delay.trim())
            : parseDuration(flags.delay, '--delay'),
          onRequest: (request) => process.stdout.write(json ? `${JSON.stringify(request)}\n` : formatRequest(request)),
        }),
      );
      const mode = listener.verifying ? 'verifying signatures' : 'not verifying signatures: no --secret';
      process.stdout.write(
        json
          ? `${JSON.stringify({ listening: listener.url, port: listener.port, verifying: listener.verifying })}\n`
          : `hookbox listen: ${listener.url} (${mode})\n`,
      );
      await untilSignal();
      await listener.close();
    });
}

function parseInteger(text: string, flag: string): number {
  if (!/^\s*\d+\s*$/.test(text)) throw new UsageError(`${flag}: must be a whole number (got ${JSON.stringify(text)})`);
  return Number(text);
}

function parseFraction(text: string): number {
  const value = text.trim() === '' ? Number.NaN : Number(text);
  if (!Number.isFinite(value)) {
    throw new UsageError(`--fail-rate: must be a number from 0 to 1 (got ${JSON.stringify(text)})`);
  }
  return value;
}

/** The human form: a header line, the headers, the verdict, then the body. */
export function formatRequest(r: ReceivedRequest): string {
  const lines = [
    `── ${r.method} ${r.path} → ${r.status}  ${r.time}  ${r.bytes} bytes${r.delayMs ? ` (+${r.delayMs}ms)` : ''}`,
  ];
  for (const [name, value] of r.headers) lines.push(`  ${name}: ${value}`);
  if (r.signature !== null) {
    lines.push(`  signature: ${r.signature === 'invalid' ? `invalid (${r.reason})` : r.signature}`);
  }
  if (r.status === 413) lines.push('  (body not shown: too large)');
  else if (r.json !== undefined) lines.push(indent(JSON.stringify(r.json, null, 2)));
  else if (r.text !== undefined) lines.push(indent(escapeControls(r.text)));
  return `${lines.join('\n')}\n\n`;
}

function indent(text: string): string {
  return text.replace(/^/gm, '  ');
}

/** Shows control characters of an untrusted body as `\xNN`, so it cannot drive the terminal. */
function escapeControls(text: string): string {
  return text.replace(
    /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}
