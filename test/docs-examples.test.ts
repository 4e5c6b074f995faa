/**
 * The runnable examples the docs include (docs/examples/) run here against a real,
 * freshly migrated PostgreSQL: each integration example commits its event with its
 * business row (and the drizzle one shows a rollback leaving nothing), the SQL example
 * runs as psql would send it, and the quick start script goes from migrate to a delivered,
 * signature-checked webhook with the real CLI.
 */
import { spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './harness/cli.js';
import { useTestDatabase } from './harness/db.js';
import { deliveries, waitFor } from './harness/relay.js';

const db = useTestDatabase();

function run(
  command: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: REPO_ROOT,
      env: { ...process.env, DATABASE_URL: db.url, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.once('exit', (code) => resolve({ code, out }));
  });
}

const tsx = (file: string) => run(process.execPath, ['--import', 'tsx', file]);

async function orderEvents(): Promise<{ type: string; payload: { orderId: number } }[]> {
  const { rows } = await db.pool.query(
    `SELECT type, payload FROM hookbox.events WHERE tenant_id = 'acme' AND type LIKE 'order.%' ORDER BY id`,
  );
  return rows;
}

afterEach(async () => {
  await db.pool.query(`DELETE FROM hookbox.events WHERE tenant_id = 'acme'`);
  await db.pool.query('DELETE FROM hookbox.subscriptions');
  await db.pool.query('DROP TABLE IF EXISTS public.orders');
});

describe('docs/examples', () => {
  it('drizzle.ts commits the event with the order; its rolled-back transaction leaves neither', async () => {
    const r = await tsx('docs/examples/drizzle.ts');
    expect(r.out).toMatch(/enqueued [0-9a-f-]{36}/);
    expect(r.out).toContain('rolled back: payment declined');
    expect(r.code).toBe(0);
    const events = await orderEvents();
    expect(events.map((e) => e.type)).toEqual(['order.created']);
    const { rows } = await db.pool.query('SELECT id, customer FROM orders');
    expect(rows.map((o) => o.customer)).toEqual(['ada']);
    expect(events[0]?.payload.orderId).toBe(rows[0].id);
  });

  it('node-postgres.ts commits two events with one order', async () => {
    const r = await tsx('docs/examples/node-postgres.ts');
    expect(r.code, r.out).toBe(0);
    expect((await orderEvents()).map((e) => e.type)).toEqual(['order.created', 'order.paid']);
  });

  it('typeorm.ts commits the event in a TypeORM transaction', async () => {
    const r = await tsx('docs/examples/typeorm.ts');
    expect(r.code, r.out).toBe(0);
    expect((await orderEvents()).map((e) => e.type)).toEqual(['order.created']);
  });

  it('enqueue.sql enqueues with the SQL function in the same transaction', async () => {
    const { readFileSync } = await import('node:fs');
    await db.pool.query(readFileSync(`${REPO_ROOT}docs/examples/enqueue.sql`, 'utf8'));
    const events = await orderEvents();
    expect(events.map((e) => e.type)).toEqual(['order.created']);
    const { rows } = await db.pool.query('SELECT id FROM orders');
    expect(events[0]?.payload.orderId).toBe(rows[0].id);
  });

  it("integration.md's Prisma $queryRaw runs as Prisma sends it: one $n parameter per interpolation", async () => {
    const { readFileSync } = await import('node:fs');
    const page = readFileSync(`${REPO_ROOT}docs/integration.md`, 'utf8');
    const prisma = page.slice(page.indexOf('## Prisma'), page.indexOf('## Any language'));
    const template = /\$queryRaw<[^>]*>`([\s\S]*?)`;/.exec(prisma)?.[1];
    expect(template, 'the Prisma section shows a $queryRaw tagged template').toBeDefined();
    let n = 0;
    // Prisma turns each ${…} of the tagged template into a bind parameter, in order, and
    // sends a JavaScript string typed as text (not untyped as node-postgres does): hence
    // the casts a raw query needs (`::jsonb` here, the well-known `::uuid` elsewhere).
    const text = (template as string).replace(/\$\{(?:[^{}]|\{[^{}]*\})*\}/g, () => `$${++n}::text`);
    expect(n).toBe(4);
    const client = await db.pool.connect();
    try {
      await client.query(
        'CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, customer text NOT NULL, total_cents int NOT NULL)',
      );
      await client.query('BEGIN');
      const order = (await client.query("INSERT INTO orders (customer, total_cents) VALUES ('ada', 4200) RETURNING id"))
        .rows[0];
      const values = ['acme', 'order.created', JSON.stringify({ orderId: order.id }), `order.created:${order.id}`];
      const [row] = (await client.query(text, values)).rows;
      expect(row.id).toMatch(/^[0-9a-f-]{36}$/);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const events = await orderEvents();
    expect(events.map((e) => e.type)).toEqual(['order.created']);
  });

  async function freePort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise((resolve) => server.close(resolve));
    return port;
  }

  /** Whether something still listens on the port (a receiver the script left behind). */
  function listening(port: number): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
  }

  // As the page runs it (the built binary by default) and through `pnpm hookbox`, whose
  // wrapper processes must not keep the receiver alive after the script ends.
  it.each([
    ['the built binary (default)', undefined],
    ['pnpm --silent hookbox', 'pnpm --silent hookbox'],
  ])(
    'quickstart.sh with %s migrates, subscribes, enqueues, delivers a signed webhook and leaves nothing listening',
    { timeout: 120_000 },
    async (_name, hookbox) => {
      const port = await freePort();
      const r = await run('bash', ['docs/examples/quickstart.sh'], {
        PORT: String(port),
        ...(hookbox ? { HOOKBOX: hookbox } : {}),
      });
      expect(r.code, r.out).toBe(0);
      const rows = await deliveries(db.pool);
      expect(rows.map((d) => d.status)).toEqual(['succeeded']);
      // hookbox listen checked the signature and printed the event.
      expect(r.out).toMatch(/order\.created/);
      expect(r.out).not.toMatch(/invalid|too old/i);
      // The script stopped its receiver: the port is free again (give a killed process a moment).
      await waitFor(async () => !(await listening(port)), { timeoutMs: 10_000, what: 'the receiver to be stopped' });
    },
  );
});
