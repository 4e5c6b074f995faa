/**
 * The receiver examples of docs/receiving.md (docs/receivers/<language>/) run for real:
 * each is started with its toolchain, a real `hookbox relay` delivers signed events to it
 * (non-ASCII payloads included: raw-body handling is where receivers fail), and requests
 * sent directly check that it refuses a tampered body, a stale timestamp and a wrong
 * secret, accepts a rotated secret's second signature, and acknowledges a repeated
 * webhook-id as a duplicate; the relay delivers through a proxy that alters the body, and
 * the receiver's 401 is recorded as a failed attempt; last, a relay delivery captured on the
 * way by another proxy is replayed unchanged once the receiver's timestamp tolerance
 * (WEBHOOK_TOLERANCE_SECONDS, set small here) has passed, and refused as stale, not taken
 * for a duplicate. A missing toolchain skips its example with the reason in the title;
 * .ci/run installs them all and requires them (HOOKBOX_REQUIRE_TOOLS).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type Server } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSecret, sign, subscriptions, uuidv7 } from '@hookbox/outbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCatalog } from './harness/catalog.js';
import { REPO_ROOT } from './harness/cli.js';
import { useTestDatabase } from './harness/db.js';
import { deliveries, enqueueEvents, killCliRelays, spawnRelayCli, waitFor } from './harness/relay.js';
import { findTool, isRequired, type Tool } from './harness/tools.js';

const db = useTestDatabase();
const DIR = join(REPO_ROOT, 'docs/receivers');
/**
 * The receivers' WEBHOOK_TOLERANCE_SECONDS: small, so that a replay goes stale within the
 * test, but with a margin over how long a fresh request takes to be verified on a busy machine.
 */
const TOLERANCE_SECONDS = 3;

interface Example {
  name: string;
  tool: Tool;
  cwd: string;
  /** Command and arguments; `port` is where it must listen. */
  command: (port: number) => [string, string[]];
  /** Whether the receiver prints the event's type after its id (Java does not parse JSON). */
  printsType: boolean;
}

const node: Tool = { name: 'node', available: true, note: '' };

/** A Ruby that has WEBrick (Debian: ruby-webrick; no longer in Ruby's default gems). */
function findRuby(): Tool {
  const ruby = findTool('ruby', 'apt-get install ruby ruby-webrick');
  if (!ruby.available) return ruby;
  if (spawnSync('ruby', ['-e', 'require "webrick"']).status === 0) return ruby;
  const install = 'apt-get install ruby-webrick';
  if (isRequired('ruby'))
    throw new Error(`ruby is required here (HOOKBOX_REQUIRE_TOOLS) but lacks webrick: ${install}`);
  return { name: 'ruby', available: false, note: ` [skipped: ruby has no webrick; ${install}]` };
}

const examples: Example[] = [
  {
    name: 'Node.js, @hookbox/outbox verify',
    tool: node,
    cwd: 'node',
    command: () => [process.execPath, ['receiver.mjs']],
    printsType: true,
  },
  {
    name: 'Node.js, standardwebhooks',
    tool: node,
    cwd: 'node',
    command: () => [process.execPath, ['receiver-standardwebhooks.mjs']],
    printsType: true,
  },
  {
    name: 'Python',
    tool: findTool('python3', 'apt-get install python3'),
    cwd: 'python',
    command: () => ['python3', ['receiver.py']],
    printsType: true,
  },
  {
    name: 'Go',
    tool: findTool('go', 'apt-get install golang-go'),
    cwd: 'go',
    command: () => ['go', ['run', 'receiver.go']],
    printsType: true,
  },
  {
    name: 'PHP',
    tool: findTool('php', 'apt-get install php-cli'),
    cwd: 'php',
    command: (port) => ['php', ['-S', `127.0.0.1:${port}`, 'receiver.php']],
    printsType: true,
  },
  { name: 'Ruby', tool: findRuby(), cwd: 'ruby', command: () => ['ruby', ['receiver.rb']], printsType: true },
  {
    name: 'Java',
    tool: findTool('java', 'apt-get install default-jdk-headless'),
    cwd: 'java',
    command: () => ['java', ['Receiver.java']],
    printsType: false,
  },
];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Running {
  child: ChildProcess;
  output: () => string;
  stop: () => Promise<void>;
}

function startReceiver(example: Example, port: number, secret: string, tmp: string): Running {
  const [command, args] = example.command(port);
  const child = spawn(command, args, {
    cwd: join(DIR, example.cwd),
    env: {
      ...process.env,
      WEBHOOK_SECRET: secret,
      WEBHOOK_TOLERANCE_SECONDS: String(TOLERANCE_SECONDS),
      PORT: String(port),
      TMPDIR: tmp,
      GOCACHE: join(tmp, 'gocache'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group: `go run` and its binary stop together
  });
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    output: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-(child.pid as number), 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await exited;
    },
  };
}

/** The receivers' one line per request: `accepted|duplicate <id> [type]` or `rejected <reason>`. */
function verdicts(output: string): { verdict: string; rest: string }[] {
  return output
    .split('\n')
    .map((line) => /(?:^|\] )(accepted|duplicate|rejected)\b ?(.*)$/.exec(line))
    .filter((m) => m !== null)
    .map((m) => ({ verdict: m[1] as string, rest: (m[2] as string).trim() }));
}

async function post(url: string, body: string, headers: Record<string, string>): Promise<number> {
  const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  await res.arrayBuffer();
  return res.status;
}

function signed(secret: string | string[], body: string, id = uuidv7(), timestamp = Math.floor(Date.now() / 1000)) {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': sign(secret, id, timestamp, body),
  };
}

/**
 * A reverse proxy to the receiver that changes one byte of each body (`"` → `'` in the
 * first key quote) and forwards the relay's headers untouched: a request tampered on the way.
 */
async function tamperingProxy(
  target: string,
): Promise<{ url: string; altered: () => number; close: () => Promise<void> }> {
  let altered = 0;
  const server = createHttpServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const changed = body.replace('"data"', '"DATA"');
    if (changed !== body) altered++;
    const headers: Record<string, string> = {};
    for (const name of ['content-type', 'webhook-id', 'webhook-timestamp', 'webhook-signature']) {
      const v = req.headers[name];
      if (typeof v === 'string') headers[name] = v;
    }
    try {
      const answer = await fetch(target, { method: 'POST', headers, body: changed });
      await answer.arrayBuffer();
      res.writeHead(answer.status).end();
    } catch {
      res.writeHead(502).end();
    }
  });
  return { ...(await listenOnLoopback(server)), altered: () => altered };
}

/** A request as received: its raw header lines (names, values and order) and its raw body. */
interface Captured {
  rawHeaders: string[];
  body: Buffer;
}

/** Sends `captured` to `target` byte for byte as it was received; resolves with the status. */
function resend(target: string, captured: Captured): Promise<number> {
  const { hostname, port, pathname } = new URL(target);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { hostname, port, path: pathname, method: 'POST', headers: captured.rawHeaders, agent: false },
      (res) => {
        res.resume().on('end', () => {
          req.destroy(); // the captured headers may ask for keep-alive: no socket left open
          resolve(res.statusCode ?? 0);
        });
      },
    );
    req.on('error', reject);
    req.end(captured.body);
  });
}

/**
 * A reverse proxy to the receiver that forwards the relay's request unchanged and keeps a
 * copy of the first one, to send again later: an attacker replaying a captured delivery.
 */
async function replayingProxy(
  target: string,
): Promise<{ url: string; captured: () => Captured | undefined; close: () => Promise<void> }> {
  let captured: Captured | undefined;
  const server = createHttpServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const request = { rawHeaders: [...req.rawHeaders], body: Buffer.concat(chunks) };
    try {
      res.writeHead(await resend(target, request)).end();
      captured ??= request;
    } catch {
      res.writeHead(502).end();
    }
  });
  return { ...(await listenOnLoopback(server)), captured: () => captured };
}

/** Starts a proxy on 127.0.0.1: its webhook URL, and a close that also ends open connections. */
async function listenOnLoopback(server: Server): Promise<{ url: string; close: () => Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/webhooks`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The value of header `name` (case-insensitive) among raw header lines. */
function rawHeader(rawHeaders: string[], name: string): string | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() === name) return rawHeaders[i + 1];
  }
  return undefined;
}

let tmp: string;

beforeAll(() => {
  if (!existsSync(join(REPO_ROOT, 'packages/outbox/dist/esm/index.js'))) {
    throw new Error('packages/outbox/dist is missing: the Node.js receiver imports the built package (pnpm build)');
  }
  tmp = mkdtempSync(join(tmpdir(), 'hookbox-receivers-'));
  spawnRelayCli(db.url); // one relay for every example, stopped in afterAll
});

afterAll(async () => {
  await killCliRelays();
  rmSync(tmp, { recursive: true, force: true });
});

const catalog = loadCatalog();
const byType = (type: string) => catalog.find((e) => e.type === type)!.example;

describe('receiver examples in docs/receivers', () => {
  it.each(examples.map((e) => [`${e.name}${e.tool.note}`, e] as [string, Example]))(
    '%s: accepts what hookbox relay delivers, refuses tampered, stale, replayed and wrongly signed requests',
    { timeout: 180_000 },
    async (_title, example) => {
      if (!example.tool.available) return; // skipped: the reason is in the title
      const secret = generateSecret();
      const port = await freePort();
      const receiver = startReceiver(example, port, secret, mkdtempSync(join(tmp, `${example.cwd}-`)));
      let replayer: Awaited<ReturnType<typeof replayingProxy>> | undefined;
      try {
        const url = `http://127.0.0.1:${port}/webhooks`;
        // Toolchains compile first (go run, java Receiver.java): wait until it listens.
        await waitFor(
          async () => {
            if (receiver.child.exitCode !== null) throw new Error(`receiver exited early:\n${receiver.output()}`);
            return post(url, '{}', {}).then(
              () => true,
              () => false,
            );
          },
          { timeoutMs: 150_000, intervalMs: 200, what: `${example.name} receiver listening` },
        );

        // The probe that found it listening was unsigned: wait for its verdict, then count from here.
        const probes = (
          await waitFor(() => verdicts(receiver.output()).length > 0 && verdicts(receiver.output()), {
            what: 'the probe to be refused',
          })
        ).length;
        expect(verdicts(receiver.output())[0]?.verdict).toBe('rejected');

        // Through the relay: three catalog events, one with non-ASCII text in its payload;
        // and a fourth through a proxy that keeps a copy of the request to replay at the end.
        const tenantId = `receivers-${example.cwd}-${port}`;
        await subscriptions.create(db.pool, { tenantId, url, eventTypes: ['*'], secret });
        replayer = await replayingProxy(url);
        const replayTenant = `${tenantId}-replayed`;
        await subscriptions.create(db.pool, { tenantId: replayTenant, url: replayer.url, eventTypes: ['*'], secret });
        const [replayedEvent] = await enqueueEvents(db.pool, [
          { tenantId: replayTenant, type: 'contact.created', payload: byType('contact.created') },
        ]);
        const ids = await enqueueEvents(db.pool, [
          {
            tenantId,
            type: 'message.new',
            payload: { ...byType('message.new'), text: 'Grüße — 👋 "quoted" \u2028 €' },
          },
          { tenantId, type: 'contact.created', payload: byType('contact.created') },
          { tenantId, type: 'template.rejected', payload: byType('template.rejected') },
        ]);
        const rows = await waitFor(
          async () => {
            const r = await deliveries(db.pool, 'event_id = ANY($1)', [ids]);
            return r.length === 3 && r.every((d) => d.status !== 'pending') && r;
          },
          { timeoutMs: 60_000, what: 'the relay to deliver three events' },
        );
        expect(rows.map((d) => [d.status, d.lastStatus])).toEqual([
          ['succeeded', 204],
          ['succeeded', 204],
          ['succeeded', 204],
        ]);
        // The receiver prints its verdict around its answer: its output can trail the
        // relay's record of the 204 by a moment.
        const accepted = await waitFor(
          () => {
            const a = verdicts(receiver.output()).filter((v) => v.verdict === 'accepted');
            return a.length >= 3 && a;
          },
          { what: `${example.name} to print three accepted verdicts` },
        );
        for (const [i, type] of ['message.new', 'contact.created', 'template.rejected'].entries()) {
          expect(accepted.map((v) => v.rest)).toContain(example.printsType ? `${ids[i]} ${type}` : ids[i]);
        }
        // The delivery through the replaying proxy went through unchanged: accepted too.
        const [original] = await waitFor(
          async () => {
            const r = await deliveries(db.pool, 'event_id = $1', [replayedEvent]);
            return r.length === 1 && r[0]?.status !== 'pending' && r;
          },
          { timeoutMs: 60_000, what: 'the relay to deliver through the replaying proxy' },
        );
        expect([original?.status, original?.lastStatus]).toEqual(['succeeded', 204]);
        const captured = replayer.captured();
        expect(captured).toBeDefined();
        const replayedId = rawHeader(captured!.rawHeaders, 'webhook-id');
        expect(replayedId).toBeTruthy();
        await waitFor(
          () => verdicts(receiver.output()).some((v) => v.verdict === 'accepted' && v.rest.startsWith(`${replayedId}`)),
          { what: `${example.name} to accept the delivery through the replaying proxy` },
        );

        // Directly: a good one, then the same again (a duplicate is acknowledged).
        const body = JSON.stringify({
          id: uuidv7(),
          type: 'contact.updated',
          timestamp: new Date().toISOString(),
          data: { ...byType('contact.updated'), name: 'Zoë Ærøskøbing' },
        });
        const good = signed(secret, body);
        expect(await post(url, body, good)).toBe(204);
        expect(await post(url, body, good)).toBe(204);
        // Rotation: the first signature is under another secret, the second under this one.
        const rotated = signed([generateSecret(), secret], body);
        expect(await post(url, body, rotated)).toBe(204);

        const tampered = body.replace('Zoë', 'Zoe');
        expect(tampered).not.toBe(body);
        expect(await post(url, tampered, signed(secret, body, good['webhook-id']))).toBe(401);
        const stale = signed(secret, body, uuidv7(), Math.floor(Date.now() / 1000) - 600);
        expect(await post(url, body, stale)).toBe(401);
        expect(await post(url, body, signed(generateSecret(), body))).toBe(401);
        expect(await post(url, body, {})).toBe(401);

        const lines = await waitFor(
          () => {
            const v = verdicts(receiver.output()).slice(probes);
            return v.filter((x) => x.verdict === 'rejected').length >= 4 && v;
          },
          { timeoutMs: 10_000, what: 'the receiver to log its verdicts' },
        );
        const goodId = good['webhook-id'];
        const rest = (v: string) => lines.filter((x) => x.verdict === v).map((x) => x.rest.split(' ')[0]);
        expect(rest('accepted')).toContain(goodId);
        expect(rest('accepted')).toContain(rotated['webhook-id']);
        expect(rest('duplicate')).toEqual([goodId]);
        expect(lines.filter((x) => x.verdict === 'rejected')).toHaveLength(4);

        // Through the relay again, with a proxy on the way that alters one byte of the
        // body: the receiver refuses the relay's own request, and the relay records the 401
        // as a failed attempt (it retries; the subscription is disabled after the first).
        const proxy = await tamperingProxy(url);
        try {
          const tamperTenant = `${tenantId}-tampered`;
          const sub = await subscriptions.create(db.pool, {
            tenantId: tamperTenant,
            url: proxy.url,
            eventTypes: ['*'],
            secret,
          });
          const [tamperedEvent] = await enqueueEvents(db.pool, [
            { tenantId: tamperTenant, type: 'contact.created', payload: byType('contact.created') },
          ]);
          const [failed] = await waitFor(
            async () => {
              const r = await deliveries(db.pool, 'event_id = $1', [tamperedEvent]);
              return r.length === 1 && r[0]?.lastStatus != null && r; // the first attempt's outcome recorded
            },
            { timeoutMs: 60_000, what: 'the relay to deliver the tampered event once' },
          );
          await subscriptions.disable(db.pool, { tenantId: tamperTenant, id: sub.id });
          expect(proxy.altered()).toBeGreaterThanOrEqual(1);
          expect(failed?.lastStatus).toBe(401);
          expect(failed?.status).not.toBe('succeeded');
          await waitFor(
            () =>
              verdicts(receiver.output())
                .slice(probes)
                .filter((x) => x.verdict === 'rejected').length >= 5,
            {
              timeoutMs: 10_000,
              what: 'the receiver to log the tampered request as rejected',
            },
          );
          const after = verdicts(receiver.output()).filter((x) => x.verdict !== 'rejected');
          expect(after.map((x) => x.rest.split(' ')[0])).not.toContain(tamperedEvent);
        } finally {
          await proxy.close();
        }

        // Last, the replay: the captured delivery sent again, byte for byte, once its
        // timestamp is older than the receiver's tolerance. It must be refused on its
        // timestamp (401, rejected), before the webhook-id check could call it a duplicate.
        const sentAt = Number(rawHeader(captured!.rawHeaders, 'webhook-timestamp'));
        expect(Number.isSafeInteger(sentAt)).toBe(true);
        const staleAtMs = (sentAt + TOLERANCE_SECONDS + 2) * 1000;
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, staleAtMs - Date.now())));
        const before = verdicts(receiver.output()).length;
        expect(await resend(url, captured!)).toBe(401);
        const replayVerdicts = await waitFor(
          () => {
            const v = verdicts(receiver.output()).slice(before);
            return v.some((x) => x.verdict === 'rejected' && /timestamp/i.test(x.rest)) && v;
          },
          { timeoutMs: 10_000, what: `${example.name} to reject the replay for its timestamp` },
        );
        expect(replayVerdicts.filter((x) => x.verdict !== 'rejected')).toEqual([]);
        const forReplayed = verdicts(receiver.output()).filter((x) => x.rest.split(' ')[0] === replayedId);
        expect(forReplayed.map((x) => x.verdict)).toEqual(['accepted']);
      } finally {
        await replayer?.close();
        await receiver.stop();
      }
    },
  );
});
