/**
 * apps/example-crm/test-webhooks-api.sh, run as a user would: the example CRM listening on
 * 127.0.0.1, the `hookbox relay` binary beside it, a receiver as the endpoint, and the
 * script walking the REST API with curl. It exits non-zero on any unexpected status.
 */
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { INestApplication } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../../../test/harness/db.js';
import { type Receiver, startReceiver } from '../../../test/harness/receiver.js';
import { type CliRelay, spawnRelayCli } from '../../../test/harness/relay.js';
import { findTool } from '../../../test/harness/tools.js';
import { createExampleApp } from './app.js';

// The script is bash with curl, as the seed's is; a machine without curl skips (CI requires it).
const CURL = findTool('curl', 'apt-get install -y curl');
const BASH = findTool('bash', 'apt-get install -y bash');
const HAVE = CURL.available && BASH.available;

const SCRIPT = fileURLToPath(new URL('../test-webhooks-api.sh', import.meta.url));

const db = useTestDatabase();
let app: INestApplication;
let base: string;
let receiver: Receiver;
let relay: CliRelay;

beforeAll(async () => {
  if (!HAVE) return;
  app = await createExampleApp(db.url);
  await app.listen(0, '127.0.0.1');
  base = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  receiver = await startReceiver();
  relay = spawnRelayCli(db.url);
});

afterAll(async () => {
  await relay?.kill();
  await app?.close();
  await receiver?.close();
});

function runScript(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [SCRIPT, base, 'initech'], {
      env: { ...process.env, OTHER_TENANT: 'umbrella', WAIT_SECONDS: '60', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.skipIf(!HAVE)(`test-webhooks-api.sh${CURL.note}${BASH.note}`, () => {
  it('walks every part of the REST API with the statuses it expects, retry and replay included', async () => {
    // The endpoint fails, so the test delivery goes dead (two quick retries) and is retried.
    receiver.on('/script', { status: 500, body: 'down for the test' });
    const { code, stdout, stderr } = await runScript({ ENDPOINT: receiver.url('/script') });
    expect(code, `${stdout}\n${stderr}`).toBe(0);
    expect(stdout).toMatch(/event types in the catalog: 22\n/);
    // One endpoint matches message.new: a new delivery, or the first one if still pending.
    expect(stdout).toMatch(/replay: (1 new, 0|0 new, 1) already pending/);
    expect(stdout).toMatch(/delivery \d+: dead after 3 attempt\(s\)/);
    expect(stdout).toMatch(/retried as delivery \d+/);
    expect(stdout).toMatch(/^unauthorized$/m);
    expect(stdout).toMatch(/^not_found$/m);
    expect(stdout).toMatch(/^url$/m);
    expect(stdout.trimEnd().endsWith('done')).toBe(true);
    for (const route of [
      'POST /webhooks/v1/subscriptions -> 201',
      'PATCH /webhooks/v1/subscriptions/',
      '/disable -> 200',
      '/enable -> 200',
      '/rotate-secret -> 200',
      '/test -> 202',
      '/replay -> 202',
      '/retry -> 202',
      'GET /webhooks/v1/stats -> 200',
      'GET /docs-json -> 200',
      'DELETE /webhooks/v1/subscriptions/',
    ]) {
      expect(stderr).toContain(route);
    }
    expect(stderr).not.toMatch(/-> 5\d\d/);
    // The receiver got the test event, the replayed message.new and the retry, all signed.
    const got = receiver.requests('/script');
    expect(got.length).toBeGreaterThanOrEqual(3);
    expect(got.every((r) => typeof r.headers['webhook-signature'] === 'string')).toBe(true);
  }, 180_000);

  it('fails, naming the call, when an answer is not the one it expects', async () => {
    // An endpoint URL the API refuses: creating it is a 400, not the 201 the script expects.
    const { code, stderr } = await runScript({ ENDPOINT: 'ftp://127.0.0.1/nope' });
    expect(code).toBe(1);
    expect(stderr).toMatch(/FAIL: POST \/webhooks\/v1\/subscriptions answered 400, expected 201/);
  }, 60_000);
});
