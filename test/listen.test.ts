/**
 * `hookbox listen` as a real process: a real CLI, real HTTP requests, signatures made by the
 * independent `standardwebhooks` package.
 */
import type { ChildProcessByStdio } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawnCli } from './harness/cli.js';

// Fixed test secrets (not real ones): two, as during a rotation.
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const NEXT_SECRET = 'whsec_3h8Jq3z0bY0Cz7nA0w7bQk5rXG3p1m0T9w2sJb1Yk3c=';

interface Cli {
  child: ChildProcessByStdio<null, Readable, Readable>;
  /** The next stdout line not yet taken. */
  nextLine(timeoutMs?: number): Promise<string>;
  stdout(): string;
  stderr(): string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<Cli>();

/** Runs `hookbox listen ...` (spawnCli) and hands out its stdout line by line. */
function hookbox(...args: string[]): Cli {
  const { child, stdout, stderr, exit } = spawnCli(args);
  const lines: string[] = [];
  const waiters: ((line: string) => void)[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    const waiter = waiters.shift();
    if (waiter) waiter(line);
    else lines.push(line);
  });
  const cli: Cli = {
    child,
    stdout,
    stderr,
    exit,
    nextLine(timeoutMs = 15_000) {
      const ready = lines.shift();
      if (ready !== undefined) return Promise.resolve(ready);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`no stdout line within ${timeoutMs}ms; stdout=${stdout()} stderr=${stderr()}`));
        }, timeoutMs);
        const waiter = (line: string) => {
          clearTimeout(timer);
          resolve(line);
        };
        waiters.push(waiter);
        void exit.then(() => setTimeout(() => reject(new Error(`exited; stdout=${stdout()} stderr=${stderr()}`)), 50));
      });
    },
  };
  running.add(cli);
  void exit.then(() => running.delete(cli));
  return cli;
}

async function stop(cli: Cli): Promise<void> {
  if (cli.child.exitCode !== null || cli.child.signalCode !== null) return;
  try {
    process.kill(-cli.child.pid!, 'SIGKILL');
  } catch {
    // Already gone.
  }
  await cli.exit;
}

async function startJson(...args: string[]): Promise<{ cli: Cli; port: number; banner: Record<string, unknown> }> {
  const cli = hookbox('listen', '--port', '0', '--json', ...args);
  const banner = JSON.parse(await cli.nextLine()) as { listening: string; port: number };
  expect(banner.listening).toBe(`http://127.0.0.1:${banner.port}`);
  expect(banner.port).toBeGreaterThan(0);
  return { cli, port: banner.port, banner };
}

function signedHeaders(secret: string, id: string, at: Date, body: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': new Webhook(secret).sign(id, at, body),
  };
}

interface Line {
  method: string;
  path: string;
  headers: [string, string][];
  bytes: number;
  json?: unknown;
  text?: string;
  signature: 'valid' | 'invalid' | 'too old' | null;
  reason?: string;
  status: number;
}

async function post(port: number, path: string, body: string, headers: Record<string, string>) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', body, headers });
  return { status: res.status, body: await res.text() };
}

const BODY = JSON.stringify({ type: 'message.new', timestamp: '2026-01-01T00:00:00Z', data: { id: 7, text: 'hi' } });

describe('hookbox listen --json with secrets', () => {
  let cli: Cli;
  let port: number;

  beforeAll(async () => {
    ({ cli, port } = await startJson('--secret', SECRET, '--secret', NEXT_SECRET));
  });
  afterAll(async () => {
    await stop(cli);
  });

  it('announces that it verifies signatures', () => {
    expect(JSON.parse(cli.stdout().split('\n')[0]!)).toMatchObject({ verifying: true });
  });

  it('answers 200 to a correctly signed request and prints it with verdict valid', async () => {
    const res = await post(port, '/hooks?x=1', BODY, signedHeaders(SECRET, 'msg_valid', new Date(), BODY));
    expect(res.status).toBe(200);
    const line = JSON.parse(await cli.nextLine()) as Line;
    expect(line).toMatchObject({ method: 'POST', path: '/hooks?x=1', signature: 'valid', status: 200 });
    expect(line.json).toEqual(JSON.parse(BODY));
    expect(line.bytes).toBe(Buffer.byteLength(BODY));
    expect(line.headers).toContainEqual(['webhook-id', 'msg_valid']);
  });

  it('accepts a request signed only with the second secret (rotation)', async () => {
    const res = await post(port, '/hooks', BODY, signedHeaders(NEXT_SECRET, 'msg_rotated', new Date(), BODY));
    expect(res.status).toBe(200);
    expect(JSON.parse(await cli.nextLine())).toMatchObject({ signature: 'valid', status: 200 });
  });

  it('answers 401 to a tampered body, with verdict invalid and the reason', async () => {
    const headers = signedHeaders(SECRET, 'msg_tampered', new Date(), BODY);
    const res = await post(port, '/hooks', BODY.replace('"id":7', '"id":8'), headers);
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'invalid signature' });
    const line = JSON.parse(await cli.nextLine()) as Line;
    expect(line).toMatchObject({ signature: 'invalid', status: 401 });
    expect(line.reason).toMatch(/no matching signature/);
  });

  it('answers 401 to a signature from an unknown secret', async () => {
    const headers = signedHeaders('whsec_c2VjcmV0LXRoYXQtbm9ib2R5LWNvbmZpZ3VyZWQ=', 'msg_x', new Date(), BODY);
    expect((await post(port, '/hooks', BODY, headers)).status).toBe(401);
    expect(JSON.parse(await cli.nextLine())).toMatchObject({ signature: 'invalid' });
  });

  it('answers 401 "too old" to an old timestamp, whether signed that way or tampered', async () => {
    const old = new Date(Date.now() - 10 * 60_000);
    const signedOld = await post(port, '/hooks', BODY, signedHeaders(SECRET, 'msg_old', old, BODY));
    expect(signedOld.status).toBe(401);
    const line = JSON.parse(await cli.nextLine()) as Line;
    expect(line).toMatchObject({ signature: 'too old', status: 401 });
    expect(line.reason).toMatch(/too old/);

    const headers = signedHeaders(SECRET, 'msg_backdated', new Date(), BODY);
    headers['webhook-timestamp'] = String(Number(headers['webhook-timestamp']) - 3600);
    expect((await post(port, '/hooks', BODY, headers)).status).toBe(401);
    expect(JSON.parse(await cli.nextLine())).toMatchObject({ signature: 'too old', status: 401 });
  });

  it('answers 401 invalid to a timestamp shifted within the tolerance or into the future', async () => {
    const shifted = signedHeaders(SECRET, 'msg_shifted', new Date(), BODY);
    shifted['webhook-timestamp'] = String(Number(shifted['webhook-timestamp']) - 5);
    expect((await post(port, '/hooks', BODY, shifted)).status).toBe(401);
    expect(JSON.parse(await cli.nextLine())).toMatchObject({ signature: 'invalid' });

    const future = new Date(Date.now() + 10 * 60_000);
    expect((await post(port, '/hooks', BODY, signedHeaders(SECRET, 'msg_future', future, BODY))).status).toBe(401);
    const line = JSON.parse(await cli.nextLine()) as Line;
    expect(line).toMatchObject({ signature: 'invalid' });
    expect(line.reason).toMatch(/future/);
  });

  it('answers 413 to a body over 1 MiB', async () => {
    const big = JSON.stringify({ pad: 'x'.repeat(1_100_000) });
    const res = await post(port, '/hooks', big, signedHeaders(SECRET, 'msg_big', new Date(), big));
    expect(res.status).toBe(413);
    const line = JSON.parse(await cli.nextLine()) as Line;
    expect(line).toMatchObject({ status: 413, bytes: big.length });
    expect(line.json).toBeUndefined();
  });

  it('never prints a secret, even one sent back in a header', async () => {
    const headers = { ...signedHeaders(SECRET, 'msg_echo', new Date(), BODY), 'x-echo': `secret=${SECRET}` };
    expect((await post(port, '/hooks', BODY, headers)).status).toBe(200);
    const line = JSON.parse(await cli.nextLine()) as Line;
    expect(line.headers).toContainEqual(['x-echo', '[redacted]']);
    expect(cli.stdout()).not.toContain(SECRET.slice('whsec_'.length));
    expect(cli.stdout()).not.toContain(NEXT_SECRET.slice('whsec_'.length));
  });

  it('closes the server and exits 0 on SIGTERM', async () => {
    cli.child.kill('SIGTERM');
    expect(await cli.exit).toEqual({ code: 0, signal: null });
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
  });
});

describe('hookbox listen answers', () => {
  let cli: Cli | undefined;
  afterEach(async () => {
    if (cli) await stop(cli);
    cli = undefined;
  });

  it('--status 503 on every request, without verifying when no secret is given', async () => {
    const started = await startJson('--status', '503');
    cli = started.cli;
    expect(started.banner).toMatchObject({ verifying: false });
    for (const path of ['/a', '/b']) {
      expect((await post(started.port, path, 'not json', {})).status).toBe(503);
      const line = JSON.parse(await cli.nextLine()) as Line;
      expect(line).toMatchObject({ path, status: 503, signature: null, text: 'not json' });
    }
  });

  it('--fail-rate 1 with 500 every time, even to signed requests', async () => {
    const started = await startJson('--fail-rate', '1', '--secret', SECRET);
    cli = started.cli;
    for (let i = 0; i < 5; i++) {
      const res = await post(started.port, '/', BODY, signedHeaders(SECRET, `msg_${i}`, new Date(), BODY));
      expect(res.status).toBe(500);
      expect(JSON.parse(await cli.nextLine())).toMatchObject({ status: 500, signature: 'valid' });
    }
  });

  it('--delay 400ms waits before answering', async () => {
    const started = await startJson('--delay', '400ms', '--status', '202');
    cli = started.cli;
    const t0 = performance.now();
    expect((await post(started.port, '/', BODY, {})).status).toBe(202);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(380);
    expect(JSON.parse(await cli.nextLine())).toMatchObject({ status: 202, delayMs: 400 });
  });

  it('prints a readable form without --json: banner, headers, verdict, pretty JSON', async () => {
    cli = hookbox('listen', '--port', '0', '--secret', SECRET);
    const banner = await cli.nextLine();
    const match = /^hookbox listen: http:\/\/127\.0\.0\.1:(\d+) \(verifying signatures\)$/.exec(banner);
    expect(match, banner).not.toBeNull();
    const port = Number(match![1]);
    expect((await post(port, '/in', BODY, signedHeaders(SECRET, 'msg_human', new Date(), BODY))).status).toBe(200);
    const block: string[] = [];
    for (let line = await cli.nextLine(); line !== ''; line = await cli.nextLine()) block.push(line);
    expect(block[0]).toMatch(/^── POST \/in → 200 /);
    expect(block).toContain('  webhook-id: msg_human');
    expect(block).toContain('  signature: valid');
    expect(block).toContain('    "type": "message.new",');
  });
});

describe.concurrent('hookbox listen rejects bad flags', () => {
  it.each([
    [['--status', '42'], /--status: must be an integer from 200 to 599/],
    [['--status', '101'], /--status: must be an integer from 200 to 599/],
    [['--status', 'ok'], /--status: must be a whole number/],
    [['--fail-rate', '1.5'], /--fail-rate: must be a number from 0 to 1/],
    [['--delay', 'soon'], /--delay: must be a duration/],
    [['--secret', 'whsec_dG9vLXNob3J0'], /--secret: key must be 24 to 64 bytes/],
  ])('%j → exit 2 with one line on stderr', async (args, message) => {
    const cli = hookbox('listen', '--port', '0', ...args);
    expect(await cli.exit).toEqual({ code: 2, signal: null });
    const stderr = cli.stderr().trimEnd().split('\n');
    expect(stderr).toHaveLength(1);
    expect(stderr[0]).toMatch(/^hookbox: /);
    expect(stderr[0]).toMatch(message);
    expect(stderr[0]).not.toContain('dG9vLXNob3J0');
    expect(cli.stdout()).toBe('');
  });
});

afterAll(async () => {
  // Nothing may outlive the file, whatever failed above.
  await Promise.all([...running].map(stop));
});
