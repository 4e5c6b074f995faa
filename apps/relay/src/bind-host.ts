/**
 * The interface a server binds (`serve --host`, `listen --host`, `relay --metrics-host`):
 * an IP address or a hostname. Anything else is a ValidationError naming the flag (exit 2),
 * before any name lookup (a lookup of `bad host` failed as a runtime error, exit 1).
 */
import net from 'node:net';
import { ValidationError } from '@hookbox/outbox';

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

export function parseBindHost(text: string, flag: string): string {
  const host = text.trim();
  if (host === '') throw new ValidationError(flag, 'required', 'must not be empty');
  if (net.isIP(host) !== 0) return host;
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (name.length > 0 && name.length <= 253 && name.split('.').every((label) => LABEL.test(label))) return host;
  throw new ValidationError(
    flag,
    'format',
    `must be an IP address (127.0.0.1, ::, 0.0.0.0) or a hostname (localhost) (got ${JSON.stringify(text)})`,
  );
}
