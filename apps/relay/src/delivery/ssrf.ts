/**
 * SSRF guard for webhook delivery.
 *
 * Tenants choose the URLs we POST to, so by default the relay refuses every address that
 * ipaddr.js does not classify as `unicast`: loopback, private (RFC 1918, fc00::/7),
 * link-local (169.254.0.0/16 with the cloud metadata endpoint, fe80::/10), multicast,
 * unspecified, broadcast, carrier-grade NAT, reserved/documentation/benchmarking, and the
 * IPv6 forms that embed an IPv4 address: IPv4-compatible `::a.b.c.d` (::/96, deprecated;
 * ipaddr.js calls it unicast, and `[::127.0.0.1]` is stored as `[::7f00:1]`), NAT64
 * (64:ff9b::/96, 64:ff9b:1::/48), 6to4 (2002::/16), Teredo and SIIT (::ffff:0:0:0/96);
 * their refusal names the IPv4 address inside. IPv4-mapped IPv6 (`::ffff:127.0.0.1`) is
 * judged as the IPv4 address it carries. Operators trust ranges or names with
 * `--allow-private-network` (an embedding form only through an IPv6 range that covers it).
 *
 * The check runs on the resolved address at connect time, inside the undici connector:
 * - IP-literal hosts are checked before the connector dials (net.connect never calls
 *   `lookup` for a literal).
 * - Hostnames are resolved once, by a `lookup` hook handed to net/tls. The hook checks every
 *   address and returns exactly the checked addresses, and net connects to what the hook
 *   returned, so there is no second resolution a DNS-rebinding attacker could answer
 *   differently. TLS keeps the original hostname as servername (SNI and certificate check).
 *
 * Policy for a name with several addresses: refuse the connection if ANY of them is blocked.
 * A name mixing a public and a private address is a known rebinding trick, and happy
 * eyeballs may dial any address of the list, so a partial answer cannot be trusted.
 *
 * What a caller sees: the connector fails with the BlockedAddressError itself, and undici
 * rejects the request with that same object, so `undici.request(url, { dispatcher })` and
 * `agent.request(...)` reject with `err instanceof BlockedAddressError` and
 * `err.code === 'HOOKBOX_SSRF_BLOCKED'` (not wrapped). `undici.fetch` wraps it as usual:
 * `TypeError('fetch failed')` with the BlockedAddressError as `err.cause`.
 */
import type dns from 'node:dns';
import { lookup as dnsLookup } from 'node:dns';
import net from 'node:net';
import { ValidationError } from '@hookbox/outbox';
import ipaddr from 'ipaddr.js';
import { buildConnector } from 'undici';

type Address = ipaddr.IPv4 | ipaddr.IPv6;
type Cidr = [Address, number];

/** The relay refused to connect to `address` (resolved from `host`) because it lies in `range`. */
export class BlockedAddressError extends Error {
  readonly code = 'HOOKBOX_SSRF_BLOCKED';
  /** The IP address that was refused. */
  readonly address: string;
  /** The ipaddr.js range name, e.g. `loopback`, `private`, `linkLocal`. */
  readonly range: string;
  /** The host of the URL (a hostname, or the IP literal itself). */
  readonly host: string;

  constructor(host: string, address: string, range: string) {
    // The message goes into the delivery log, which the tenant reads: it never names the
    // address a hostname resolved to (the relay's own DNS view, e.g. of internal names);
    // `address` carries it to the relay's log for operators.
    super(
      host === address
        ? `refusing to deliver to ${address}: ${range} address; an operator can trust it with --allow-private-network`
        : `refusing to deliver to ${host}: it resolves to a non-public (${range}) address; an operator can trust it with --allow-private-network`,
    );
    this.name = 'BlockedAddressError';
    this.host = host;
    this.address = address;
    this.range = range;
  }
}

export type CheckResult = { allowed: true } | { allowed: false; range: string };

export interface AddressGuard {
  /** Is this IP allowed? (host is the original hostname, matched against hostname allow-list entries) */
  check(ip: string, host?: string): CheckResult;
  /** An undici connector for `new Agent({ connect: guard.connector({ timeout }) })` that resolves, checks and dials the checked IP (TLS servername = original host). */
  connector(options?: ConnectorOptions): buildConnector.connector;
}

export interface ConnectorOptions {
  /** Connect timeout in milliseconds, covering resolution and the TCP/TLS handshake. Default: undici's 10 000. */
  timeout?: number;
}

export interface AddressGuardOptions {
  /**
   * Resolver used for hostnames; tests inject one to simulate DNS answers. It is always
   * called with `{ all: true }` and must answer with an array. Default: `dns.lookup`.
   */
  lookup?: typeof dns.lookup;
}

/**
 * Build the guard.
 *
 * @param allow entries operators trust (the CLI flag `--allow-private-network`): CIDRs
 *   (`127.0.0.0/8`, `::1/128`, `10.0.0.0/8`), single IPs, or exact hostnames (`localhost`,
 *   `hooks.internal`; no wildcards). A trusted hostname is allowed whatever it resolves to.
 *   Default: none, every non-unicast address is refused.
 * @throws ValidationError (field `--allow-private-network`, as every message of the guard names
 *   its flag) naming the entry when an entry is not valid.
 */
export function createAddressGuard(allow: readonly string[] = [], options: AddressGuardOptions = {}): AddressGuard {
  const { cidrs, hosts } = parseAllowList(allow);
  const resolve = options.lookup ?? dnsLookup;

  function check(ip: string, host?: string): CheckResult {
    let bare = unbracket(ip);
    // Fail closed on anything that is not an IP address.
    if (net.isIP(bare) === 0) return { allowed: false, range: 'invalid' };
    // The WHATWG form, as undici dials it: ipaddr.js reads `::8.8.8.8` as `::ffff:8.8.8.8`,
    // while it is the IPv4-compatible `::808:808`.
    // (A zone index, fe80::1%eth0, is no URL host; those addresses are link-local anyway.)
    if (net.isIPv6(bare) && !bare.includes('%')) bare = new URL(`http://[${bare}]/`).hostname.slice(1, -1);
    if (host !== undefined && hosts.has(normalizeHost(host))) return { allowed: true };
    const trusted = (a: Address) => cidrs.some(([base, bits]) => a.kind() === base.kind() && a.match(base, bits));
    if (net.isIPv6(bare)) {
      const v6 = ipaddr.IPv6.parse(bare);
      const embedded = embeddedIPv4(v6);
      if (embedded) {
        if (trusted(v6)) return { allowed: true };
        const inner = embedded.v4 ? `, embeds ${embedded.v4} (${embedded.v4.range()})` : '';
        return { allowed: false, range: `${embedded.form}${inner}` };
      }
    }
    // process() turns ::ffff:a.b.c.d into the IPv4 address, so it is judged as IPv4.
    const address = ipaddr.process(bare);
    if (trusted(address)) return { allowed: true };
    const range = address.range();
    return range === 'unicast' ? { allowed: true } : { allowed: false, range };
  }

  const guardedLookup: net.LookupFunction = (hostname, lookupOptions, callback) => {
    resolve(hostname, { ...lookupOptions, all: true }, (err, addresses) => {
      if (err) {
        callback(err, '');
        return;
      }
      if (addresses.length === 0) {
        callback(Object.assign(new Error(`${hostname} resolved to no address`), { code: 'ENOTFOUND' }), '');
        return;
      }
      for (const { address } of addresses) {
        const verdict = check(address, hostname);
        if (!verdict.allowed) {
          callback(new BlockedAddressError(hostname, address, verdict.range), '');
          return;
        }
      }
      if (lookupOptions.all) {
        callback(null, addresses);
      } else {
        const [first] = addresses as [dns.LookupAddress];
        callback(null, first.address, first.family);
      }
    });
  };

  function connector(connectorOptions: ConnectorOptions = {}): buildConnector.connector {
    const dial = buildConnector({
      lookup: guardedLookup,
      ...(connectorOptions.timeout === undefined ? {} : { timeout: connectorOptions.timeout }),
    });
    return (connectOptions, callback) => {
      // undici strips the brackets of an IPv6 host already; be lenient anyway.
      const host = unbracket(connectOptions.hostname);
      if (net.isIP(host) !== 0) {
        const verdict = check(host, host);
        if (!verdict.allowed) {
          const err = new BlockedAddressError(host, host, verdict.range);
          // Asynchronous, as a real connect failure would be.
          process.nextTick(() => callback(err, null));
          return;
        }
      }
      dial(connectOptions, callback);
    };
  }

  return { check, connector };
}

/**
 * IPv6 forms that carry an IPv4 address (RFC 4291, 6052, 8215, 3056, 4380, 6145): which form,
 * and the IPv4 address where its position is fixed. `::` and `::1` are not among them.
 */
export function embeddedIPv4(a: ipaddr.IPv6): { form: string; v4: ipaddr.IPv4 | null } | null {
  const p = a.parts as readonly number[];
  const zero = (from: number, to: number) => p.slice(from, to).every((x) => x === 0);
  const v4 = (hi: number, lo: number) => new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
  const [p0 = 0, p1 = 0, p2 = 0, p4 = 0, p5 = 0, p6 = 0, p7 = 0] = [p[0], p[1], p[2], p[4], p[5], p[6], p[7]];
  // (::ffff:a.b.c.d, IPv4-mapped, is not here: it is judged as the IPv4 address itself.)
  if (zero(0, 6) && !(p6 === 0 && p7 <= 1)) return { form: 'ipv4Compatible', v4: v4(p6, p7) };
  if (zero(0, 4) && p4 === 0xffff && p5 === 0) return { form: 'ipv4Translated', v4: v4(p6, p7) };
  if (p0 === 0x64 && p1 === 0xff9b && zero(2, 6)) return { form: 'nat64', v4: v4(p6, p7) };
  if (p0 === 0x64 && p1 === 0xff9b && p2 === 1) return { form: 'nat64', v4: null };
  if (p0 === 0x2002) return { form: '6to4', v4: v4(p1, p2) };
  if (p0 === 0x2001 && p1 === 0) return { form: 'teredo', v4: v4(~p6 & 0xffff, ~p7 & 0xffff) };
  return null;
}

/**
 * Checks `--allow-private-network` entries without building a guard, so a command can refuse
 * a bad one as a usage error before it starts.
 * @throws ValidationError (field `--allow-private-network`) naming the entry.
 */
export function checkAllowList(allow: readonly string[]): void {
  parseAllowList(allow);
}

function parseAllowList(allow: readonly string[]): { cidrs: Cidr[]; hosts: Set<string> } {
  const cidrs: Cidr[] = [];
  const hosts = new Set<string>();
  for (const entry of allow) {
    const cidr = parseCidr(entry) ?? parseIp(entry);
    if (cidr) {
      cidrs.push(cidr);
    } else if (isHostname(entry)) {
      hosts.add(normalizeHost(entry));
    } else {
      throw new ValidationError(
        '--allow-private-network',
        'format',
        `invalid entry ${JSON.stringify(entry)}: expected a CIDR (10.0.0.0/8, fd00::/8), an IP address (127.0.0.1, ::1) or a hostname (hooks.internal)`,
      );
    }
  }
  return { cidrs, hosts };
}

function parseCidr(entry: string): Cidr | undefined {
  const slash = entry.lastIndexOf('/');
  if (slash === -1) return undefined;
  const ip = entry.slice(0, slash);
  const bits = entry.slice(slash + 1);
  // net.isIP is strict (no 0x7f.1 or 127.1 shorthands) and ipaddr.js checks the prefix length.
  if (net.isIP(ip) === 0 || !/^(0|[1-9]\d{0,2})$/.test(bits) || !ipaddr.isValidCIDR(entry)) return undefined;
  const [base, prefix] = ipaddr.parseCIDR(entry);
  // Addresses are checked after ::ffff:a.b.c.d is unwrapped, so unwrap mapped ranges too.
  if (base.kind() === 'ipv6' && prefix >= 96 && (base as ipaddr.IPv6).isIPv4MappedAddress()) {
    return [(base as ipaddr.IPv6).toIPv4Address(), prefix - 96];
  }
  return [base, prefix];
}

function parseIp(entry: string): Cidr | undefined {
  const bare = unbracket(entry);
  if (net.isIP(bare) === 0) return undefined;
  const address = ipaddr.process(bare);
  return [address, address.kind() === 'ipv4' ? 32 : 128];
}

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/i;

function isHostname(entry: string): boolean {
  const name = entry.endsWith('.') ? entry.slice(0, -1) : entry;
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  // A name whose last label is numeric is an IPv4 form to URL parsers, never a hostname.
  if (/^(\d+|0x[0-9a-f]*)$/i.test(labels.at(-1) ?? '')) return false;
  return labels.every((label) => LABEL.test(label));
}

function normalizeHost(host: string): string {
  const lower = unbracket(host).toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}
