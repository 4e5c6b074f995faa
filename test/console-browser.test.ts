/**
 * The web console in a real browser: Playwright (playwright-core) drives Chromium from
 * Debian's `chromium` package against `hookbox serve`'s server on a real database, with a
 * real relay delivering to real receivers on 127.0.0.1. A tenant creates an endpoint from
 * the catalog, sees its secret once, sends a test, sees the delivery and its attempt, and
 * retries a failed one; tenant B's token cannot see tenant A's endpoint; the operator view
 * draws its charts. HOOKBOX_SCREENSHOTS=1 also writes the screenshots in docs/img/.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { subscriptions } from '@hookbox/outbox';
import { createApiKey, createPortalToken } from '@hookbox/outbox/api';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../apps/relay/src/logger.js';
import { type ServeHandle, startServe } from '../apps/relay/src/serve/server.js';
import { REPO_ROOT } from './harness/cli.js';
import { useTestDatabase } from './harness/db.js';
import { type Receiver, startReceiver } from './harness/receiver.js';
import { enqueueEvents, LogBuffer, startRelay, type TestRelay, waitForAllFinal } from './harness/relay.js';
import { findTool } from './harness/tools.js';

const CHROMIUM = findTool('chromium', 'apt-get install -y chromium');
// Debian's binary, wherever PATH has it.
const CHROMIUM_PATH = CHROMIUM.available
  ? spawnSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).stdout.trim()
  : '';
const SHOTS = process.env.HOOKBOX_SCREENSHOTS === '1' ? join(REPO_ROOT, 'docs/img') : null;
const CATALOG = [
  { type: 'message.new', description: 'A message arrived', example: { text: 'hello' } },
  { type: 'message.failed', description: 'A message could not be sent' },
  { type: 'contact.created', description: 'A contact was created' },
];

const db = useTestDatabase();
// Generous bounds: the page and the relay share a loaded machine.
const POLL = { timeout: 20_000, interval: 100 };
let serve: ServeHandle;
let relay: TestRelay;
let receiver: Receiver;
let context: BrowserContext;
let profile: string;

async function shot(page: Page, name: string): Promise<void> {
  if (SHOTS) await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function portal(tenantId: string): Promise<Page> {
  const { token } = await createPortalToken(db.pool, { tenantId });
  const page = await context.newPage();
  await page.goto(`${serve.url}/portal#token=${token}`);
  // The token leaves the address bar at once (it lives in this tab's sessionStorage).
  await expect.poll(() => page.url(), POLL).not.toContain(token);
  return page;
}

describe.skipIf(!CHROMIUM.available)(`web console in Chromium${CHROMIUM.note}`, () => {
  beforeAll(async () => {
    receiver = await startReceiver();
    serve = await startServe({ db: db.pool, logger: createLogger('warn', new LogBuffer()), port: 0, catalog: CATALOG });
    relay = startRelay(db.url, { requestTimeoutMs: 10_000, leaseMs: 30_000 });
    profile = mkdtempSync(join(tmpdir(), 'hookbox-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1200, height: 860 },
    });
    context.setDefaultTimeout(20_000);
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    await relay?.stop();
    await serve?.close();
    await receiver?.close();
  });

  it('a tenant creates an endpoint, sees its secret once, sends a test and sees the delivery and its attempt', async () => {
    const page = await portal('acme');
    await page.getByRole('heading', { name: 'Endpoints', exact: true }).waitFor();
    await page.getByRole('link', { name: 'Add endpoint' }).click();
    await page.getByLabel('Endpoint URL').fill(receiver.url('/acme'));
    await page.getByLabel('Description').fill('CRM sync');
    await page.getByRole('checkbox', { name: /message\.new/ }).check();
    await page.getByRole('checkbox', { name: /contact\.created/ }).check();
    await shot(page, 'portal-create-endpoint');
    await page.getByRole('button', { name: 'Create endpoint' }).click();
    const secret = (await page.locator('#secret-value').textContent()) ?? '';
    expect(secret).toMatch(/^whsec_/);
    await shot(page, 'portal-secret-once');
    await page.getByRole('link', { name: 'I have stored it' }).click();
    await page.getByRole('heading', { name: 'Endpoint', exact: true }).waitFor();
    expect(await page.content()).not.toContain(secret);
    await page.getByRole('button', { name: 'Send test event' }).click();
    await page.getByRole('link', { name: /^delivery \d+$/ }).click();
    await page.getByRole('heading', { name: /^Delivery \d+$/ }).waitFor();
    await expect
      .poll(
        async () => {
          await page.getByRole('button', { name: 'Refresh' }).click();
          await page.getByRole('heading', { name: /^Attempts/ }).waitFor();
          return page.locator('.badge').first().textContent();
        },
        { timeout: 20_000, interval: 300 },
      )
      .toBe('succeeded');
    await expect.poll(() => page.locator('details.attempt summary').first().textContent(), POLL).toMatch(/HTTP 200/);
    const headers = (await page.locator('details.attempt pre').first().textContent()) ?? '';
    expect(headers).toContain('webhook-signature: [redacted]');
    const received = await receiver.waitFor((all) => all.some((r) => r.path === '/acme'));
    expect(JSON.parse(received.find((r) => r.path === '/acme')!.body).type).toBe('hookbox.ping');
    await shot(page, 'portal-delivery');
    await page.close();
  }, 90_000);

  it('a tenant finds a failed delivery in the log and retries it', async () => {
    receiver.on('/flaky', { status: 503, body: 'maintenance' });
    const { token } = await createPortalToken(db.pool, { tenantId: 'acme' });
    const res = await fetch(`${serve.url}/v1/subscriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: receiver.url('/flaky'), eventTypes: ['message.*'] }),
    });
    expect(res.status).toBe(201);
    await enqueueEvents(db.pool, [{ tenantId: 'acme', type: 'message.failed', payload: { id: 7 } }]);
    await waitForAllFinal(db.pool, { tenants: ['acme'], atLeast: 2, timeoutMs: 60_000 }).catch(async (err) => {
      const { rows } = await db.pool.query(
        'SELECT d.*, s.url FROM hookbox.deliveries d JOIN hookbox.subscriptions s ON s.id = d.subscription_id',
      );
      console.error(rows, relay.logs.lines.slice(-20));
      throw err;
    });

    const page = await portal('acme');
    await page.getByRole('link', { name: 'Delivery log' }).click();
    await page.getByLabel('Status').selectOption('dead');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(() => page.locator('tbody tr').count(), POLL).toBe(1);
    await shot(page, 'portal-delivery-log');
    await page.locator('tbody tr a').first().click();
    await expect.poll(() => page.locator('details.attempt').count(), POLL).toBe(3);
    expect(await page.locator('details.attempt pre').last().textContent()).toBe('maintenance');
    receiver.on('/flaky', { status: 200 });
    await page.getByRole('button', { name: 'Retry delivery' }).click();
    await page.getByText('Replay of').waitFor();
    await expect
      .poll(
        async () => {
          await page.getByRole('button', { name: 'Refresh' }).click();
          await page.getByRole('heading', { name: /^Attempts/ }).waitFor();
          return page.locator('.badge').first().textContent();
        },
        { timeout: 20_000, interval: 300 },
      )
      .toBe('succeeded');
    // The endpoint's own chart: three failed attempts and the successful retry.
    await page.getByRole('link', { name: receiver.url('/flaky') }).click();
    await page.getByRole('heading', { name: 'Endpoint', exact: true }).waitFor();
    await expect.poll(() => page.locator('[data-chart="throughput"] rect.bad').count(), POLL).toBeGreaterThan(0);
    await expect.poll(() => page.locator('[data-chart="throughput"] rect.ok').count(), POLL).toBeGreaterThan(0);
    expect(await page.locator('[data-chart="latency"] svg').getAttribute('aria-label')).toMatch(/p95 up to \d+ ms/);
    await shot(page, 'portal-endpoint');
    await page.close();
  }, 90_000);

  it('editing an endpoint keeps the patterns and types the catalog does not list', async () => {
    const sub = await subscriptions.create(db.pool, {
      tenantId: 'edit',
      url: receiver.url('/edit'),
      eventTypes: ['order.*', 'invoice.paid', 'message.new'],
    });
    const page = await portal('edit');
    await page.goto(`${serve.url}/portal#/endpoints/${sub.id}`);
    await page.getByRole('heading', { name: 'Endpoint', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Edit' }).click();
    for (const v of ['order.*', 'invoice.paid', 'message.new']) {
      expect(await page.getByRole('checkbox', { name: v }).isChecked(), v).toBe(true);
    }
    await page.getByLabel('Endpoint URL').fill(receiver.url('/edited'));
    await page.getByRole('button', { name: 'Save' }).click();
    await expect
      .poll(async () => (await subscriptions.get(db.pool, { tenantId: 'edit', id: sub.id }))?.url, POLL)
      .toBe(receiver.url('/edited'));
    const after = await subscriptions.get(db.pool, { tenantId: 'edit', id: sub.id });
    expect(after?.eventTypes).toEqual(['order.*', 'invoice.paid', 'message.new']);
    await page.close();
  }, 60_000);

  it("tenant B's portal cannot see tenant A's endpoints", async () => {
    const { rows } = await db.pool.query("SELECT id, url FROM hookbox.subscriptions WHERE tenant_id = 'acme'");
    expect(rows.length).toBeGreaterThan(0);
    const page = await portal('globex');
    await page.getByRole('heading', { name: 'Endpoints', exact: true }).waitFor();
    await page.getByText('Nothing yet.').waitFor();
    // The header says whose portal this is (a link with someone else's token shows their name).
    expect(await page.locator('#top .who').textContent()).toBe('Tenant globex');
    const text = (await page.locator('main').textContent()) ?? '';
    for (const r of rows) expect(text).not.toContain(r.url);
    await page.evaluate(`location.hash = '#/endpoints/${rows[0].id}'`);
    await page.getByRole('heading', { name: 'Something went wrong', exact: true }).waitFor();
    expect(await page.locator('.status.error').textContent()).toContain('not_found');
    await page.close();
  });

  it('the operator view draws throughput, latency and per-tenant charts', async () => {
    await enqueueEvents(db.pool, [
      { tenantId: 'acme', type: 'message.new', payload: { n: 1 } },
      { tenantId: 'acme', type: 'contact.created', payload: { n: 2 } },
    ]);
    await waitForAllFinal(db.pool, { tenants: ['acme'], atLeast: 5, timeoutMs: 60_000 });
    const { key } = await createApiKey(db.pool, { name: 'browser' });
    const page = await context.newPage();
    await page.goto(`${serve.url}/console#key=${key}`);
    await page.getByRole('heading', { name: 'Overview', exact: true }).waitFor();
    await expect.poll(() => page.locator('[data-chart="throughput"] rect.ok').count(), POLL).toBeGreaterThan(0);
    await expect.poll(() => page.locator('[data-chart="throughput"] rect.bad').count(), POLL).toBeGreaterThan(0);
    await expect.poll(() => page.locator('[data-chart="latency"] .line-p95').count(), POLL).toBeGreaterThan(0);
    await expect
      .poll(() => page.locator('[data-chart="usage"] svg[role="img"]').getAttribute('aria-label'), POLL)
      .toContain('acme');
    expect(await page.locator('#card-attempts .value').textContent()).not.toBe('0');
    expect(page.url()).not.toContain(key);
    await shot(page, 'console-overview');
    await page.close();
  }, 60_000);
});
