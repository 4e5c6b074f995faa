/**
 * @hookbox/nestjs in a real Nest application on a real PostgreSQL: HookboxService joins
 * the caller's transaction (an EntityManager, or typeorm-transactional's @Transactional()),
 * writes in its own short transaction outside one unless `strict`, resolves named
 * DataSources, and attaches the notifier at bootstrap / detaches it at shutdown.
 */
import 'reflect-metadata';
import { HookboxApiModule, HookboxModule, HookboxService } from '@hookbox/nestjs';
import { HookboxError, NOTIFY_CHANNEL, ValidationError } from '@hookbox/outbox';
import { Inject, Injectable, Module } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { Test } from '@nestjs/testing';
import { getDataSourceToken, TypeOrmModule } from '@nestjs/typeorm';
import pg from 'pg';
import { Column, DataSource, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { addTransactionalDataSource, initializeTransactionalContext, Transactional } from 'typeorm-transactional';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from './harness/db.js';

const db = useTestDatabase();

interface NoteEvents {
  'note.created': { noteId: number; text: string };
}

@Entity({ name: 'notes' })
class Note {
  @PrimaryGeneratedColumn()
  id!: number;
  @Column('text')
  text!: string;
  @Column('text')
  tenantId!: string;
}

@Injectable()
class NotesService {
  constructor(
    @Inject(HookboxService) readonly hookbox: HookboxService<NoteEvents>,
    @Inject(getDataSourceToken()) readonly dataSource: DataSource,
  ) {}

  /** The seed's shape: the business write and the event in one transaction. */
  create(tenantId: string, text: string, fail = false) {
    return this.dataSource.transaction(async (manager) => {
      const note = await manager.save(Note, { tenantId, text });
      await this.hookbox.triggerEvent(tenantId, 'note.created', { noteId: note.id, text }, { manager });
      if (fail) throw new Error('business rule failed after the write');
      return note;
    });
  }

  /** The usual Nest way: typeorm-transactional's decorator, no manager passed around. */
  @Transactional()
  async createTransactional(tenantId: string, text: string, fail = false) {
    const note = await this.dataSource.manager.save(Note, { tenantId, text });
    await this.hookbox.triggerEvent(tenantId, 'note.created', { noteId: note.id, text });
    if (fail) throw new Error('business rule failed after the write');
    return note;
  }
}

@Module({ providers: [NotesService], exports: [NotesService] })
class NotesModule {}

const count = async (tenantId: string, table = 'hookbox.events') =>
  Number((await db.pool.query(`SELECT count(*) FROM ${table} WHERE tenant_id = $1`, [tenantId])).rows[0].count);
const notes = async (tenantId: string) =>
  Number((await db.pool.query('SELECT count(*) FROM notes WHERE "tenantId" = $1', [tenantId])).rows[0].count);

async function makeApp(hookbox: ReturnType<typeof HookboxModule.forRoot>, name?: string) {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRootAsync({
        name,
        useFactory: () => ({
          type: 'postgres' as const,
          url: db.url,
          entities: [Note],
          synchronize: true,
          applicationName: 'hookbox-test-nest',
        }),
        dataSourceFactory: async (options) => {
          const ds = new DataSource(options as ConstructorParameters<typeof DataSource>[0]);
          return name ? ds.initialize() : addTransactionalDataSource(await ds.initialize());
        },
      }),
      hookbox,
      ...(name ? [] : [NotesModule]),
    ],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return app;
}

beforeAll(() => {
  initializeTransactionalContext();
});

describe('HookboxModule.forRoot (global, default DataSource, strict)', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  let svc: NotesService;
  let hookbox: HookboxService<NoteEvents>;
  beforeAll(async () => {
    // strict: a write that found no transaction to join would throw, so the tests below
    // prove the join itself (a nested manager.transaction would otherwise hide a miss).
    app = await makeApp(HookboxModule.forRoot({ isGlobal: true, strict: true }));
    svc = app.get(NotesService);
    hookbox = app.get(HookboxService);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('joins the EntityManager passed in: commit keeps note and event, rollback removes both', async () => {
    await svc.create('t-manager', 'hello');
    await svc.create('t-manager', 'boom', true).catch(() => undefined);
    expect(await notes('t-manager')).toBe(1);
    expect(await count('t-manager')).toBe(1);
    const row = (await db.pool.query('SELECT type, payload FROM hookbox.events WHERE tenant_id = $1', ['t-manager']))
      .rows[0];
    expect(row).toMatchObject({ type: 'note.created', payload: { text: 'hello' } });
  });

  it("joins typeorm-transactional's @Transactional() context without a manager", async () => {
    await svc.createTransactional('t-cls', 'kept');
    await svc.createTransactional('t-cls', 'gone', true).catch(() => undefined);
    expect(await notes('t-cls')).toBe(1);
    expect(await count('t-cls')).toBe(1);
  });

  it('strict refuses a write outside a transaction and writes nothing', async () => {
    const ds = app.get<DataSource>(getDataSourceToken());
    const err = await hookbox.triggerEvent('t-strict', 'note.created', { noteId: 1, text: 'x' }).catch((e) => e);
    expect(err).toBeInstanceOf(HookboxError);
    expect((err as HookboxError).code).toBe('HOOKBOX_NO_TRANSACTION');
    const err2 = await hookbox
      .triggerEvent('t-strict', 'note.created', { noteId: 1, text: 'x' }, { manager: ds.manager })
      .catch((e: unknown) => e);
    expect((err2 as HookboxError).code).toBe('HOOKBOX_NO_TRANSACTION');
    expect(await count('t-strict')).toBe(0);
  });

  it('enqueue and enqueueMany join the manager too', async () => {
    const ds = app.get<DataSource>(getDataSourceToken());
    await ds
      .transaction(async (manager) => {
        await hookbox.enqueue(
          { tenantId: 't-many', type: 'note.created', payload: { noteId: 1, text: 'a' } },
          { manager },
        );
        await hookbox.enqueueMany(
          [
            { tenantId: 't-many', type: 'note.created', payload: { noteId: 2, text: 'b' } },
            { tenantId: 't-many', type: 'note.created', payload: { noteId: 3, text: 'c' } },
          ],
          { manager },
        );
        expect(await count('t-many')).toBe(0); // not visible outside the transaction yet
        throw new Error('roll back');
      })
      .catch(() => undefined);
    expect(await count('t-many')).toBe(0);
  });

  it('attaches the notifier to the DataSource pool at bootstrap', async () => {
    const listener = new pg.Client({ connectionString: db.url, application_name: 'nest-test-listener' });
    await listener.connect();
    try {
      await listener.query(`LISTEN ${NOTIFY_CHANNEL}`);
      let heard = 0;
      listener.on('notification', () => heard++);
      await svc.create('t-notify', 'wake up');
      for (let i = 0; i < 250 && heard === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(heard).toBeGreaterThan(0);
    } finally {
      await listener.end();
    }
  });
});

describe('named DataSource, forRootAsync, not strict, shutdown', () => {
  it('outside any transaction writes in a short transaction of its own; a transaction still joins', async () => {
    const app = await makeApp(
      HookboxModule.forRootAsync({ useFactory: async () => ({ dataSource: 'other', notifier: { debounceMs: 5 } }) }),
      'other',
    );
    try {
      const hookbox = app.get(HookboxService);
      const ds = app.get<DataSource>(getDataSourceToken('other'));
      expect(hookbox.dataSource).toBe(ds);
      const r = await hookbox.triggerEvent('t-own', 'x.y', { a: 1 }, { idempotencyKey: 'k1' });
      const again = await hookbox.triggerEvent('t-own', 'x.y', { a: 1 }, { idempotencyKey: 'k1' });
      expect(again).toEqual({ id: r.id, created: false });
      expect(await count('t-own')).toBe(1);
      await ds
        .transaction(async (manager) => {
          await hookbox.triggerEvent('t-own', 'x.y', {}, { manager });
          throw new Error('roll back');
        })
        .catch(() => undefined);
      expect(await count('t-own')).toBe(1);
      // orderingKey passes through: the key's events are in commit order (pos; the relay
      // numbers them in that order at fan-out).
      await hookbox.triggerEvent('t-own', 'x.y', { n: 1 }, { orderingKey: 'conv:1' });
      await ds.transaction((manager) =>
        hookbox.triggerEvent('t-own', 'x.y', { n: 2 }, { manager, orderingKey: 'conv:1' }),
      );
      const rows = await ds.query(
        `SELECT payload->>'n' AS n, ordering_seq FROM hookbox.events
         WHERE tenant_id = 't-own' AND ordering_key = 'conv:1' ORDER BY pos`,
      );
      expect(rows).toEqual([
        { n: '1', ordering_seq: null },
        { n: '2', ordering_seq: null },
      ]);
    } finally {
      await app.close();
    }
  });

  it('detaches the notifier from the pool on shutdown', async () => {
    const app = await makeApp(HookboxModule.forRoot({ dataSource: 'watched' }), 'watched');
    const ds = app.get<DataSource>(getDataSourceToken('watched'));
    const pool = (ds.driver as unknown as { master: pg.Pool }).master;
    const before = pool.listenerCount('release');
    // app.close(): Nest's shutdown hooks, then TypeORM ends the pool.
    await app.close();
    expect(pool.listenerCount('release')).toBe(before - 1);
  });

  it('forRootAsync with imports and inject, imported by a feature module (not global)', async () => {
    const CONFIG = Symbol('CONFIG');
    @Module({ providers: [{ provide: CONFIG, useValue: { strict: true, notifier: false } }], exports: [CONFIG] })
    class ConfigModule {}
    @Injectable()
    class FeatureService {
      constructor(@Inject(HookboxService) readonly hookbox: HookboxService<NoteEvents>) {}
    }
    @Module({
      imports: [
        HookboxModule.forRootAsync({
          imports: [ConfigModule],
          inject: [CONFIG],
          useFactory: (config: { strict: boolean; notifier: boolean }) => config,
        }),
      ],
      providers: [FeatureService],
      exports: [FeatureService],
    })
    class FeatureModule {}
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({ type: 'postgres', url: db.url, applicationName: 'hookbox-test-nest-feature' }),
        FeatureModule,
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    try {
      const { hookbox } = app.get(FeatureService);
      // The injected config took effect: strict refuses a write outside a transaction.
      const err = await hookbox.triggerEvent('t-feature', 'note.created', { noteId: 1, text: 'x' }).catch((e) => e);
      expect((err as HookboxError).code).toBe('HOOKBOX_NO_TRANSACTION');
      const ds = app.get<DataSource>(getDataSourceToken());
      await ds.transaction((manager) =>
        hookbox.triggerEvent('t-feature', 'note.created', { noteId: 2, text: 'y' }, { manager }),
      );
      expect(await count('t-feature')).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('rejects unknown and mistyped options, naming the field', () => {
    expect(() => HookboxModule.forRoot({ strcit: true } as never)).toThrow(/options.strcit: is not an option/);
    expect(() => HookboxModule.forRoot({ strict: 'yes' } as never)).toThrow(/options.strict: must be true or false/);
  });

  it('refuses unknown and out-of-range notifier options at startup, naming the field', async () => {
    const bad: [object, string, string][] = [
      [{ debounceMS: 5 }, 'debounceMS', 'unknown'],
      [{ windowMs: -1 }, 'windowMs', 'range'],
      [{ debounceMs: '5' }, 'debounceMs', 'range'],
    ];
    for (const [notifier, field, rule] of bad) {
      const moduleRef = await Test.createTestingModule({
        imports: [
          TypeOrmModule.forRoot({ type: 'postgres', url: db.url, applicationName: 'hookbox-test-nest-notifier' }),
          HookboxModule.forRoot({ notifier: notifier as never }),
        ],
      }).compile();
      const app = moduleRef.createNestApplication({ logger: false });
      try {
        const err = await app.init().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, JSON.stringify(notifier)).toBeInstanceOf(ValidationError);
        expect(err).toMatchObject({ code: 'HOOKBOX_INVALID_INPUT', field, rule });
      } finally {
        await app.close();
      }
    }
  });

  it('refuses an unknown per-call option instead of writing apart from the transaction', async () => {
    const app = await makeApp(HookboxModule.forRoot({ dataSource: 'loose', notifier: false }), 'loose');
    try {
      const hookbox = app.get<HookboxService<NoteEvents>>(HookboxService);
      const ds = app.get<DataSource>(getDataSourceToken('loose'));
      const ev = { tenantId: 't-typo', type: 'note.created', payload: { noteId: 1, text: 'x' } } as const;
      const errors = await ds.transaction(async (manager) => {
        const caught = (p: Promise<unknown>) =>
          p.then(
            () => undefined,
            (e: unknown) => e,
          );
        return [
          // `entityManager` is not the option's name: the event must not be written in a
          // short transaction of its own, apart from this one.
          await caught(hookbox.triggerEvent('t-typo', 'note.created', ev.payload, { entityManager: manager } as never)),
          await caught(
            hookbox.triggerEvent('t-typo', 'note.created', ev.payload, { manager, ordering_key: 'k' } as never),
          ),
          await caught(hookbox.enqueue(ev, { manager, idempotencyKey: 'k' } as never)),
          await caught(hookbox.enqueueMany([ev], { entityManager: manager } as never)),
          await caught(hookbox.triggerEvent('t-typo', 'note.created', ev.payload, { manager: 'tx' } as never)),
          await caught(hookbox.enqueue(ev, null as never)),
        ];
      });
      expect(errors.map((e) => e instanceof ValidationError && [e.field, e.rule])).toEqual([
        ['entityManager', 'unknown'],
        ['ordering_key', 'unknown'],
        ['idempotencyKey', 'unknown'],
        ['entityManager', 'unknown'],
        ['manager', 'type'],
        ['options', 'type'],
      ]);
      expect((errors[0] as Error).message).toMatch(
        /^entityManager: is not a field of triggerEvent options \(known: manager,/,
      );
      expect(await count('t-typo')).toBe(0);
    } finally {
      await app.close();
    }
  });
});

describe('HookboxApiModule in a Nest app of its own', () => {
  it('takes the tenant from the resolver (req.user), and answers bad input 400 under a nested query parser', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({ type: 'postgres', url: db.url, applicationName: 'hookbox-test-nest-api' }),
        HookboxModule.forRoot({ isGlobal: true, notifier: false }),
        HookboxApiModule.register({ path: '/hooks/', resolveTenant: (req) => req.user?.tenantId }),
      ],
    }).compile();
    const app = moduleRef.createNestApplication<NestExpressApplication>({ logger: false });
    // Express 4's default (NestJS 10): `?status[x]=1` arrives as an object.
    app.set('query parser', 'extended');
    // The app's auth: a bearer token names the user.
    app.use((req: { headers: Record<string, string>; user?: unknown }, _res: unknown, next: () => void) => {
      const m = /^Bearer user-of-(\w+)$/.exec(req.headers.authorization ?? '');
      if (m) req.user = { tenantId: m[1] };
      next();
    });
    await app.listen(0, '127.0.0.1');
    try {
      const base = `${await app.getUrl()}/hooks`;
      const call = async (path: string, user?: string, body?: object) => {
        const res = await fetch(`${base}${path}`, {
          method: body ? 'POST' : 'GET',
          headers: { ...(user ? { authorization: `Bearer user-of-${user}` } : {}), 'content-type': 'application/json' },
          ...(body ? { body: JSON.stringify(body) } : {}),
        });
        // biome-ignore lint/suspicious/noExplicitAny: JSON answers read in assertions
        return { status: res.status, body: (await res.json().catch(() => undefined)) as any };
      };
      expect((await call('/v1/subscriptions')).status).toBe(401);
      const created = await call('/v1/subscriptions', 'acme', { url: 'http://127.0.0.1:9/x', eventTypes: ['*'] });
      expect(created.status).toBe(201);
      const id = created.body.subscription.id as string;
      expect(created.body.subscription.tenantId).toBe('acme');
      expect((await call(`/v1/subscriptions/${id}`, 'other')).status).toBe(404);
      // Naming another tenant in the URL does not widen a tenant's reach.
      expect((await call('/v1/subscriptions?tenant=other', 'acme')).status).toBe(403);
      for (const q of ['status[x]=dead', 'status=dead&status[x]=1', 'eventType[a][b]=x']) {
        const res = await call(`/v1/deliveries?${q}`, 'acme');
        expect(res.status, `${q}: ${JSON.stringify(res.body)}`).toBe(400);
        expect(res.body.error.code).toBe('invalid_input');
      }
    } finally {
      await app.close();
    }
  });
});
