/**
 * TypeORM as a caller: the opt-in `requireTransaction` check refuses executors that would
 * write the event apart from the business write, and `attachNotifier` takes a TypeORM
 * DataSource or a drizzle db as well as a pg Pool.
 */
import { createOutbox, HookboxError, NOTIFY_CHANNEL, NotFoundError, subscriptions } from '@hookbox/outbox';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from './harness/db.js';

const db = useTestDatabase();
let dataSource: DataSource;

beforeAll(async () => {
  dataSource = new DataSource({ type: 'postgres', url: db.url, applicationName: 'hookbox-test-typeorm' });
  await dataSource.initialize();
});
afterAll(async () => {
  await dataSource?.destroy();
});

const count = async (tenantId: string) =>
  Number((await db.pool.query('SELECT count(*) FROM hookbox.events WHERE tenant_id = $1', [tenantId])).rows[0].count);

describe('requireTransaction', () => {
  const strict = createOutbox({ requireTransaction: true });
  const ev = (tenantId: string) => ({ tenantId, type: 'message.new', payload: { n: 1 } });

  it('refuses the DataSource, its plain manager and an idle QueryRunner, writing nothing', async () => {
    const qr = dataSource.createQueryRunner();
    try {
      for (const executor of [dataSource, dataSource.manager, qr]) {
        const err = await strict.enqueue(executor, ev('rt-refused')).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(HookboxError);
        expect((err as HookboxError).code).toBe('HOOKBOX_NO_TRANSACTION');
        const many = await strict.enqueueMany(executor, [ev('rt-refused')]).catch((e: unknown) => e);
        expect((many as HookboxError).code).toBe('HOOKBOX_NO_TRANSACTION');
      }
    } finally {
      await qr.release();
    }
    expect(await count('rt-refused')).toBe(0);
  });

  it('accepts the transaction manager and a QueryRunner in a transaction; their rollback removes the event', async () => {
    await dataSource.transaction(async (manager) => {
      await strict.enqueue(manager, ev('rt-ok'));
    });
    const qr = dataSource.createQueryRunner();
    await qr.startTransaction();
    await strict.enqueue(qr, ev('rt-ok'));
    await qr.commitTransaction();
    await qr.release();
    expect(await count('rt-ok')).toBe(2);

    await dataSource
      .transaction(async (manager) => {
        await strict.enqueue(manager, ev('rt-rolled-back'));
        throw new Error('business write failed');
      })
      .catch(() => undefined);
    expect(await count('rt-rolled-back')).toBe(0);
  });

  it('is off by default: the plain manager autocommits, the hazard the option exists for', async () => {
    await createOutbox().enqueue(dataSource.manager, ev('rt-default'));
    expect(await count('rt-default')).toBe(1);
  });

  it('rejects a non-boolean value', () => {
    expect(() => createOutbox({ requireTransaction: 'yes' as unknown as boolean })).toThrow(
      /options.requireTransaction: must be true or false/,
    );
  });
});

describe('UPDATE and DELETE through TypeORM', () => {
  // TypeORM answers them with [rows, rowCount], not rows: another tenant's id must still be
  // "not found", and the tenant's own update must return the updated row.
  it('disable/enable/delete on a DataSource and an EntityManager', async () => {
    const sub = await subscriptions.create(dataSource, {
      tenantId: 'orm-a',
      url: 'http://127.0.0.1:9/x',
      eventTypes: ['*'],
    });
    await expect(subscriptions.disable(dataSource, { tenantId: 'orm-b', id: sub.id })).rejects.toBeInstanceOf(
      NotFoundError,
    );
    const disabled = await dataSource.transaction((m) => subscriptions.disable(m, { tenantId: 'orm-a', id: sub.id }));
    expect(disabled).toMatchObject({ id: sub.id, active: false });
    expect((await subscriptions.enable(dataSource, { tenantId: 'orm-a', id: sub.id })).active).toBe(true);
    await expect(subscriptions.delete(dataSource, { tenantId: 'orm-b', id: sub.id })).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });
});

describe('attachNotifier sources', () => {
  let listener: pg.Client;
  let heard = 0;
  beforeAll(async () => {
    listener = new pg.Client({ connectionString: db.url, application_name: 'typeorm-notify-listener' });
    await listener.connect();
    await listener.query(`LISTEN ${NOTIFY_CHANNEL}`);
    listener.on('notification', () => heard++);
  });
  afterAll(async () => {
    await listener.end();
  });

  async function heardAfter(fn: () => Promise<void>, flush: () => Promise<void>): Promise<boolean> {
    const before = heard;
    await fn();
    await flush();
    for (let i = 0; i < 100 && heard === before; i++) await new Promise((r) => setTimeout(r, 20));
    return heard > before;
  }

  it('a TypeORM DataSource: a committed transaction is followed by a hint; detach stops them', async () => {
    const outbox = createOutbox();
    const notifier = outbox.attachNotifier(dataSource);
    const commit = () =>
      dataSource.transaction(async (m) => {
        await outbox.enqueue(m, { tenantId: 'n', type: 'message.new', payload: {} });
      });
    expect(await heardAfter(commit, notifier.flush)).toBe(true);
    notifier.detach();
    expect(await heardAfter(commit, notifier.flush)).toBe(false);
  });

  it('a drizzle node-postgres db', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 2, application_name: 'typeorm-notify-drizzle' });
    const ddb = drizzle(pool);
    const outbox = createOutbox();
    const notifier = outbox.attachNotifier(ddb);
    try {
      const commit = () =>
        ddb.transaction(async (tx) => {
          await outbox.enqueue(tx, { tenantId: 'n', type: 'message.new', payload: {} });
        });
      expect(await heardAfter(commit, notifier.flush)).toBe(true);
    } finally {
      notifier.detach();
      await pool.end();
    }
  });

  it('refuses an uninitialised DataSource and other objects with a HookboxError', () => {
    const idle = new DataSource({ type: 'postgres', url: db.url });
    expect(() => createOutbox().attachNotifier(idle)).toThrow(/initialise it first/);
    expect(() => createOutbox().attachNotifier({} as never)).toThrow(/expected a pg Pool/);
  });
});
