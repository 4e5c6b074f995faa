import diagnostics from 'node:diagnostics_channel';
import type dns from 'node:dns';
import http from 'node:http';
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import { Agent, fetch, request } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BlockedAddressError, createAddressGuard } from './ssrf.js';

describe('check', () => {
  const guard = createAddressGuard();

  it.each([
    // IPv4
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'linkLocal'],
    ['100.64.0.1', 'carrierGradeNat'],
    ['0.0.0.0', 'unspecified'],
    ['255.255.255.255', 'broadcast'],
    ['224.0.0.1', 'multicast'],
    ['192.0.2.10', 'reserved'],
    ['198.18.0.1', 'reserved'],
    ['240.0.0.1', 'reserved'],
    // IPv6
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'linkLocal'],
    ['fe80::1%eth0', 'linkLocal'],
    ['fc00::1', 'uniqueLocal'],
    ['fd12:3456::1', 'uniqueLocal'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'reserved'],
    ['2001:2::1', 'benchmarking'],
    // IPv6 forms that embed an IPv4 address name it (#11.5)
    ['64:ff9b::a9fe:a9fe', 'nat64, embeds 169.254.169.254 (linkLocal)'],
    ['64:ff9b::a00:1', 'nat64, embeds 10.0.0.1 (private)'],
    ['64:ff9b::127.0.0.1', 'nat64, embeds 127.0.0.1 (loopback)'],
    ['64:ff9b:1::a00:1', 'nat64'],
    ['2002:a9fe:a9fe::1', '6to4, embeds 169.254.169.254 (linkLocal)'],
    ['2002:7f00:1::', '6to4, embeds 127.0.0.1 (loopback)'],
    ['2002:c0a8:101::1', '6to4, embeds 192.168.1.1 (private)'],
    ['2001:0:4136:e378:8000:63bf:80ff:fffe', 'teredo, embeds 127.0.0.1 (loopback)'],
    ['::ffff:0:7f00:1', 'ipv4Translated, embeds 127.0.0.1 (loopback)'],
    // IPv4-compatible ::/96: ipaddr.js calls it unicast, and reads ::a.b.c.d as mapped
    ['::7f00:1', 'ipv4Compatible, embeds 127.0.0.1 (loopback)'],
    ['::127.0.0.1', 'ipv4Compatible, embeds 127.0.0.1 (loopback)'],
    ['[::7f00:1]', 'ipv4Compatible, embeds 127.0.0.1 (loopback)'],
    ['::a00:1', 'ipv4Compatible, embeds 10.0.0.1 (private)'],
    ['::a9fe:a9fe', 'ipv4Compatible, embeds 169.254.169.254 (linkLocal)'],
    ['::2', 'ipv4Compatible, embeds 0.0.0.2 (unspecified)'],
    // ...and refused even when the IPv4 address inside is public: a deprecated form
    ['::8.8.8.8', 'ipv4Compatible, embeds 8.8.8.8 (unicast)'],
    ['64:ff9b::808:808', 'nat64, embeds 8.8.8.8 (unicast)'],
    ['2002:808:808::1', '6to4, embeds 8.8.8.8 (unicast)'],
    ['[::1]', 'loopback'],
    // IPv4-mapped IPv6 is judged as the IPv4 address it carries
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:169.254.169.254', 'linkLocal'],
    ['::ffff:10.0.0.1', 'private'],
    // not an IP at all: fail closed
    ['example.com', 'invalid'],
    ['', 'invalid'],
  ])('refuses %s as %s', (ip, range) => {
    expect(guard.check(ip)).toEqual({ allowed: false, range });
  });

  it.each([
    '93.184.216.34',
    '8.8.8.8',
    '1.1.1.1',
    '172.32.0.1',
    '100.128.0.1',
    '2606:4700:4700::1111',
    '::ffff:8.8.8.8',
  ])('allows public %s', (ip) => {
    expect(guard.check(ip)).toEqual({ allowed: true });
  });

  it('allows CIDRs, single IPs and hostnames from the allow list, and nothing else', () => {
    const trusting = createAddressGuard([
      '127.0.0.0/8',
      '::1/128',
      '10.0.0.0/8',
      '192.168.7.7',
      'fd00::5',
      '::ffff:172.16.0.0/108',
      'Hooks.Internal.',
    ]);
    const cases: Array<[string, string | undefined, boolean]> = [
      ['127.0.0.1', undefined, true],
      ['127.9.9.9', undefined, true],
      ['::ffff:127.0.0.1', undefined, true],
      ['::1', undefined, true],
      ['10.200.0.1', undefined, true],
      ['192.168.7.7', undefined, true],
      ['192.168.7.8', undefined, false],
      ['fd00::5', undefined, true],
      ['fd00::6', undefined, false],
      ['172.16.3.4', undefined, true], // via the mapped CIDR ::ffff:172.16.0.0/108 = 172.16.0.0/12
      ['172.31.0.1', undefined, true],
      ['169.254.169.254', undefined, false],
      ['fe80::1', undefined, false],
      // a trusted hostname allows whatever it resolves to; other names do not
      ['169.254.169.254', 'hooks.internal', true],
      ['169.254.169.254', 'HOOKS.internal.', true],
      ['169.254.169.254', 'evil.hooks.internal', false],
      ['169.254.169.254', 'localhost', false],
      // a hostname entry does not vouch for something that is not an IP
      ['nonsense', 'hooks.internal', false],
    ];
    for (const [ip, host, allowed] of cases) {
      expect({ ip, host, allowed: trusting.check(ip, host).allowed }).toEqual({ ip, host, allowed });
    }
  });

  it('trusts an embedding form only through an IPv6 range that covers it, not its IPv4 address', () => {
    expect(createAddressGuard(['127.0.0.0/8', '10.0.0.0/8']).check('::7f00:1').allowed).toBe(false);
    expect(createAddressGuard(['10.0.0.0/8']).check('64:ff9b::a00:1').allowed).toBe(false);
    expect(createAddressGuard(['::/96']).check('::7f00:1').allowed).toBe(true);
    expect(createAddressGuard(['64:ff9b::/96']).check('64:ff9b::a00:1').allowed).toBe(true);
  });

  it('reports the range of an address outside the allow list', () => {
    const trusting = createAddressGuard(['127.0.0.0/8']);
    expect(trusting.check('10.0.0.1')).toEqual({ allowed: false, range: 'private' });
  });

  it.each([
    '',
    ' ',
    '10.0.0.0/33',
    '::/129',
    '10.0.0.0/',
    '/8',
    '10.0.0.0/8/8',
    '10.0.0.0/abc',
    '10.0.0.0/-1',
    '300.1.1.1',
    '127.1',
    '0x7f.1',
    '10.0.0.0/08',
    'http://hooks.internal',
    'hooks.internal:8080',
    '*.internal',
    'two words',
    '-leading.dash',
    'a..b',
  ])('rejects the allow-list entry %j', (entry) => {
    expect(() => createAddressGuard([entry])).toThrow(/--allow-private-network/);
    expect(() => createAddressGuard(['127.0.0.0/8', entry])).toThrow(JSON.stringify(entry));
  });
});

// ---------------------------------------------------------------------------------------------
// End to end: a real node:http receiver on loopback and a real undici Agent with the connector.

interface Receiver {
  port: number;
  connections: number;
  requests: Array<{ host: string | undefined; body: string }>;
  close(): Promise<void>;
}

async function startReceiver(host = '127.0.0.1'): Promise<Receiver> {
  const receiver: Receiver = {
    port: 0,
    connections: 0,
    requests: [],
    close: () => new Promise((done) => server.close(() => done())),
  };
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('end', () => {
      receiver.requests.push({ host: req.headers.host, body });
      res.end('ok');
    });
  });
  server.on('connection', () => {
    receiver.connections++;
  });
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(0, host, () => done());
  });
  receiver.port = (server.address() as net.AddressInfo).port;
  const close = receiver.close;
  receiver.close = () => {
    server.closeAllConnections();
    return close();
  };
  return receiver;
}

async function ipv6LoopbackAvailable(): Promise<boolean> {
  const server = net.createServer();
  return new Promise((done) => {
    server.once('error', () => done(false));
    server.listen(0, '::1', () => server.close(() => done(true)));
  });
}

type FakeAnswer = string | string[];

/** A dns.lookup stand-in answering from a table (every call recorded), always in `all` form. */
function fakeLookup(table: Record<string, FakeAnswer | (() => FakeAnswer)>) {
  const calls: string[] = [];
  const lookup = (hostname: string, _options: unknown, callback: (...args: unknown[]) => void) => {
    calls.push(hostname);
    const entry = table[hostname];
    if (entry === undefined) {
      process.nextTick(() =>
        callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' })),
      );
      return;
    }
    const answer = typeof entry === 'function' ? entry() : entry;
    const list = (Array.isArray(answer) ? answer : [answer]).map((address) => ({ address, family: net.isIP(address) }));
    process.nextTick(() => callback(null, list));
  };
  return { lookup: lookup as unknown as typeof dns.lookup, calls };
}

/** Strict: 127.0.0.0/8, ::1 or ::ffff:127.x only (ipaddr.js reads ::127.0.0.1 as mapped; it is not). */
function isLoopback(ip: string): boolean {
  if (net.isIPv4(ip)) return ipaddr.IPv4.parse(ip).range() === 'loopback';
  if (!net.isIPv6(ip) || ip.includes('%')) return false;
  const canonical = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  return canonical === '::1' || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(canonical);
}

/**
 * Watches every socket net.connect creates (undici's connector uses it) and the dials they
 * attempt. It is also a tripwire, so that even a broken guard cannot make this file send a
 * packet anywhere but loopback: a literal non-loopback host is never dialed, a hostname is
 * never handed to the system resolver by net, and a lookup answer with a non-loopback
 * address is turned into an error before net can dial it.
 */
function watchNet() {
  const watch = {
    sockets: 0,
    attempts: 0,
    tripped: [] as string[],
    reset() {
      watch.sockets = 0;
      watch.attempts = 0;
      watch.tripped = [];
    },
    stop: () => diagnostics.unsubscribe('net.client.socket', onSocket),
  };
  type ConnectOptions = { host?: string; lookup?: net.LookupFunction };
  const onSocket = (message: unknown) => {
    const { socket } = message as { socket: net.Socket };
    watch.sockets++;
    socket.on('connectionAttempt', () => {
      watch.attempts++;
    });
    // net.connect publishes the socket before it calls socket.connect(normalizedArgs).
    const connect = socket.connect;
    socket.connect = ((...args: unknown[]) => {
      const options = (Array.isArray(args[0]) ? args[0][0] : args[0]) as ConnectOptions;
      const host = options.host ?? 'localhost';
      if (net.isIP(host) !== 0 && !isLoopback(host)) {
        watch.tripped.push(host);
        process.nextTick(() => socket.destroy(new Error(`tripwire: dial to ${host}`)));
        return socket;
      }
      const lookup = options.lookup;
      if (!lookup && net.isIP(host) === 0) {
        // The guard always hands net a lookup; without one net would ask real DNS.
        watch.tripped.push(`unguarded lookup of ${host}`);
        process.nextTick(() => socket.destroy(new Error(`tripwire: unguarded lookup of ${host}`)));
        return socket;
      }
      if (lookup) {
        options.lookup = (hostname, lookupOptions, callback) =>
          lookup(hostname, lookupOptions, (err, address, family) => {
            const list = typeof address === 'string' ? [address] : address.map((a) => a.address);
            const outside = list.filter((ip) => !isLoopback(ip));
            if (!err && outside.length > 0) {
              watch.tripped.push(...outside);
              callback(new Error(`tripwire: dial to ${outside.join(', ')}`), '');
            } else {
              callback(err, address, family);
            }
          });
      }
      return Reflect.apply(connect, socket, args);
    }) as typeof socket.connect;
  };
  diagnostics.subscribe('net.client.socket', onSocket);
  return watch;
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected the request to fail');
    },
    (err: unknown) => err,
  );
}

const hasIPv6Loopback = await ipv6LoopbackAvailable();

describe('connector', () => {
  let receiver: Receiver;
  const agents: Agent[] = [];

  function agentFor(allow?: readonly string[], lookup?: typeof dns.lookup): Agent {
    const guard = createAddressGuard(allow, lookup ? { lookup } : {});
    const agent = new Agent({ connect: guard.connector({ timeout: 2_000 }) });
    agents.push(agent);
    return agent;
  }

  const watch = watchNet();

  beforeAll(async () => {
    receiver = await startReceiver();
  });
  beforeEach(() => {
    watch.reset();
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((agent) => agent.close()));
    // A tripped wire means the guard let a non-loopback address through (and the wire held).
    expect(watch.tripped).toEqual([]);
  });
  afterAll(async () => {
    watch.stop();
    await receiver.close();
  });

  it('rejects undici.request to 127.0.0.1 with the BlockedAddressError itself, before connecting', async () => {
    const err = await failure(request(`http://127.0.0.1:${receiver.port}/hook`, { dispatcher: agentFor() }));
    expect(err).toBeInstanceOf(BlockedAddressError);
    expect(err).toMatchObject({
      name: 'BlockedAddressError',
      code: 'HOOKBOX_SSRF_BLOCKED',
      address: '127.0.0.1',
      host: '127.0.0.1',
      range: 'loopback',
    });
    expect((err as Error).message).toContain('--allow-private-network');
    expect(watch.sockets).toBe(0);
    expect(receiver.connections).toBe(0);
  });

  it('rejects agent.request the same way, and fetch with the error as cause', async () => {
    const agent = agentFor();
    const viaAgent = await failure(
      agent.request({ origin: `http://127.0.0.1:${receiver.port}`, path: '/hook', method: 'POST', body: 'x' }),
    );
    expect(viaAgent).toBeInstanceOf(BlockedAddressError);
    expect((viaAgent as BlockedAddressError).code).toBe('HOOKBOX_SSRF_BLOCKED');

    const viaFetch = await failure(fetch(`http://127.0.0.1:${receiver.port}/hook`, { dispatcher: agent }));
    expect(viaFetch).toBeInstanceOf(TypeError);
    expect((viaFetch as TypeError).cause).toBeInstanceOf(BlockedAddressError);
    expect(receiver.connections).toBe(0);
  });

  it('refuses localhost after resolving it with the system resolver', async () => {
    const err = await failure(request(`http://localhost:${receiver.port}/`, { dispatcher: agentFor() }));
    expect(err).toBeInstanceOf(BlockedAddressError);
    expect(err).toMatchObject({ host: 'localhost', range: 'loopback' });
    expect(['127.0.0.1', '::1']).toContain((err as BlockedAddressError).address);
    expect(receiver.connections).toBe(0);
  });

  it.skipIf(!hasIPv6Loopback)('refuses http://[::1]:PORT, and reaches it once ::1/128 is allowed', async () => {
    const v6 = await startReceiver('::1');
    try {
      const err = await failure(request(`http://[::1]:${v6.port}/`, { dispatcher: agentFor() }));
      expect(err).toBeInstanceOf(BlockedAddressError);
      expect(err).toMatchObject({ address: '::1', range: 'loopback' });
      expect(v6.connections).toBe(0);

      const res = await request(`http://[::1]:${v6.port}/`, { dispatcher: agentFor(['::1/128']) });
      expect(res.statusCode).toBe(200);
      await res.body.text();
      expect(v6.requests).toHaveLength(1);
    } finally {
      await v6.close();
    }
  });

  it('refuses a hostname that resolves to loopback (rebind.test -> 127.0.0.1) without connecting', async () => {
    const dnsFake = fakeLookup({ 'rebind.test': '127.0.0.1' });
    const err = await failure(
      request(`http://rebind.test:${receiver.port}/`, { dispatcher: agentFor([], dnsFake.lookup) }),
    );
    expect(err).toBeInstanceOf(BlockedAddressError);
    expect(err).toMatchObject({ host: 'rebind.test', address: '127.0.0.1', range: 'loopback' });
    expect(dnsFake.calls).toEqual(['rebind.test']);
    expect(receiver.connections).toBe(0);
  });

  it('delivers to 127.0.0.1 when 127.0.0.0/8 is allowed', async () => {
    const res = await request(`http://127.0.0.1:${receiver.port}/hook`, {
      method: 'POST',
      body: '{"n":1}',
      dispatcher: agentFor(['127.0.0.0/8']),
    });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('ok');
    expect(receiver.requests.at(-1)).toEqual({ host: `127.0.0.1:${receiver.port}`, body: '{"n":1}' });
    // The spy sees real connections, so its zero counts elsewhere mean something.
    expect(watch.sockets).toBe(1);
    expect(watch.attempts).toBe(1);
  });

  it('dials the address it checked: one resolution per connection, Host header kept', async () => {
    // A rebinding resolver: the first answer is trusted loopback, every later one is private.
    let answers = 0;
    const dnsFake = fakeLookup({ 'flip.test': () => (answers++ === 0 ? '127.0.0.1' : '10.9.9.9') });
    const before = receiver.requests.length;

    const ok = await request(`http://flip.test:${receiver.port}/a`, {
      dispatcher: agentFor(['127.0.0.0/8'], dnsFake.lookup),
    });
    expect(ok.statusCode).toBe(200);
    await ok.body.text();
    expect(dnsFake.calls).toEqual(['flip.test']);
    expect(receiver.requests.slice(before)).toEqual([{ host: `flip.test:${receiver.port}`, body: '' }]);

    // A fresh connection resolves again, gets the private answer and is refused before dialing.
    const err = await failure(
      request(`http://flip.test:${receiver.port}/b`, { dispatcher: agentFor(['127.0.0.0/8'], dnsFake.lookup) }),
    );
    expect(err).toMatchObject({ code: 'HOOKBOX_SSRF_BLOCKED', address: '10.9.9.9', range: 'private' });
    expect(dnsFake.calls).toEqual(['flip.test', 'flip.test']);
    expect(receiver.requests.length).toBe(before + 1);
  });

  it('refuses a name when ANY of its addresses is blocked, even if another is allowed', async () => {
    const dnsFake = fakeLookup({ 'mixed.test': ['127.0.0.1', '10.0.0.7'] });
    const connectionsBefore = receiver.connections;
    const err = await failure(
      request(`http://mixed.test:${receiver.port}/`, { dispatcher: agentFor(['127.0.0.0/8'], dnsFake.lookup) }),
    );
    expect(err).toMatchObject({ code: 'HOOKBOX_SSRF_BLOCKED', host: 'mixed.test', address: '10.0.0.7' });
    expect(receiver.connections).toBe(connectionsBefore);
  });

  it('allows a trusted hostname whatever it resolves to, but not other names with the same address', async () => {
    const dnsFake = fakeLookup({ 'hooks.internal': '127.0.0.1', 'other.test': '127.0.0.1' });
    const agent = agentFor(['hooks.internal'], dnsFake.lookup);
    const res = await request(`http://hooks.internal:${receiver.port}/`, { dispatcher: agent });
    expect(res.statusCode).toBe(200);
    await res.body.text();

    const err = await failure(request(`http://other.test:${receiver.port}/`, { dispatcher: agent }));
    expect(err).toMatchObject({ code: 'HOOKBOX_SSRF_BLOCKED', host: 'other.test', range: 'loopback' });
  });

  it('passes resolver failures through unchanged', async () => {
    const dnsFake = fakeLookup({});
    const err = await failure(request('http://nowhere.test/', { dispatcher: agentFor([], dnsFake.lookup) }));
    expect(err).not.toBeInstanceOf(BlockedAddressError);
    expect(err).toMatchObject({ code: 'ENOTFOUND' });
  });

  it('keeps the original hostname as TLS servername while dialing the checked IP', async () => {
    // A raw TCP listener: the TLS ClientHello carries the SNI in clear text.
    let hello = '';
    const tcp = net.createServer((socket) => {
      socket.once('data', (chunk) => {
        hello = chunk.toString('latin1');
        socket.destroy();
      });
    });
    await new Promise<void>((done) => tcp.listen(0, '127.0.0.1', () => done()));
    const { port } = tcp.address() as net.AddressInfo;
    try {
      const dnsFake = fakeLookup({ 'sni.test': '127.0.0.1' });
      await failure(request(`https://sni.test:${port}/`, { dispatcher: agentFor(['127.0.0.0/8'], dnsFake.lookup) }));
      expect(dnsFake.calls).toEqual(['sni.test']);
      expect(hello).toContain('sni.test');
    } finally {
      await new Promise((done) => tcp.close(done));
    }
  });

  it.each([
    ['http://169.254.169.254/latest/meta-data/', '169.254.169.254', 'linkLocal'],
    ['http://10.1.2.3/', '10.1.2.3', 'private'],
    ['http://[::ffff:169.254.169.254]/', '::ffff:a9fe:a9fe', 'linkLocal'],
    ['http://[fd00::1]:8080/', 'fd00::1', 'uniqueLocal'],
    // #11.5: IPv6 forms embedding a refused IPv4 address
    ['http://[::127.0.0.1]/', '::7f00:1', 'ipv4Compatible, embeds 127.0.0.1 (loopback)'],
    ['http://[::7f00:1]:8080/', '::7f00:1', 'ipv4Compatible, embeds 127.0.0.1 (loopback)'],
    ['http://[::a9fe:a9fe]/', '::a9fe:a9fe', 'ipv4Compatible, embeds 169.254.169.254 (linkLocal)'],
    ['http://[64:ff9b::10.0.0.1]/', '64:ff9b::a00:1', 'nat64, embeds 10.0.0.1 (private)'],
    ['http://[2002:7f00:1::1]/', '2002:7f00:1::1', '6to4, embeds 127.0.0.1 (loopback)'],
  ])('refuses %s before any socket is created', async (url, address, range) => {
    const err = await failure(request(url, { dispatcher: agentFor() }));
    expect(err).toBeInstanceOf(BlockedAddressError);
    expect(err).toMatchObject({ address, range });
    expect(watch.sockets).toBe(0);
    expect(watch.attempts).toBe(0);
  });

  it('refuses a hostname resolving to the metadata address without dialing it', async () => {
    const dnsFake = fakeLookup({ 'metadata.test': '169.254.169.254' });
    const err = await failure(request('http://metadata.test/', { dispatcher: agentFor([], dnsFake.lookup) }));
    expect(err).toMatchObject({ code: 'HOOKBOX_SSRF_BLOCKED', address: '169.254.169.254', range: 'linkLocal' });
    // net creates the socket object and asks the guarded lookup, which stops it before any dial.
    expect(watch.sockets).toBe(1);
    expect(watch.attempts).toBe(0);
    expect(dnsFake.calls).toEqual(['metadata.test']);
  });
});
