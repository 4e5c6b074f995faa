// A CommonJS consumer of the packed tarballs: NestJS 11 (its default `module: commonjs`
// tsconfig) with Jest + ts-jest. A feature service joins its transaction through
// HookboxService; the installed `hookbox relay` delivers; the signature is verified.
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HookboxModule, HookboxService } from '@hookbox/nestjs';
import { createOutbox, type Outbox, subscriptions, verify } from '@hookbox/outbox';
import { deliveryLog } from '@hookbox/outbox/admin';
import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';

interface CrmEvents {
  'message.new': { messageId: number; text: string };
}

@Injectable()
class MessagesService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly hookbox: HookboxService<CrmEvents>,
  ) {}

  send(tenantId: string, text: string, fail = false) {
    return this.dataSource.transaction(async (manager) => {
      const [{ id }] = await manager.query('INSERT INTO pack_messages (text) VALUES ($1) RETURNING id', [text]);
      await this.hookbox.triggerEvent(tenantId, 'message.new', { messageId: id, text }, { manager });
      if (fail) throw new Error('roll back');
    });
  }
}

@Module({
  imports: [
    TypeOrmModule.forRoot({ type: 'postgres', url: process.env.DATABASE_URL }),
    HookboxModule.forRoot({ isGlobal: true }),
  ],
  providers: [MessagesService],
})
class AppModule {}

test('typed outbox is assignable to the untyped one (types from the CommonJS build)', () => {
  const typed: Outbox<CrmEvents> = createOutbox<CrmEvents>();
  const general: Outbox = typed;
  expect(typeof general.enqueue).toBe('function');
  expect(typeof deliveryLog).toBe('object');
});

test('a committed transaction is delivered and signed; a rolled-back one is not', async () => {
  const received: { headers: IncomingHttpHeaders; body: string }[] = [];
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.end();
    });
  });
  receiver.listen(0, '127.0.0.1');
  await once(receiver, 'listening');

  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
  const app = await moduleRef.createNestApplication().init();
  const ds = app.get(DataSource);
  const sub = await subscriptions.create(ds, {
    tenantId: 'pack-cjs',
    url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`,
    eventTypes: ['message.*'],
  });
  await ds.query('CREATE TABLE IF NOT EXISTS pack_messages (id serial PRIMARY KEY, text text NOT NULL)');
  const messages = app.get(MessagesService);
  await messages.send('pack-cjs', 'kept');
  await expect(messages.send('pack-cjs', 'gone', true)).rejects.toThrow('roll back');
  await app.close();

  const relay = spawn(
    'node_modules/.bin/hookbox',
    [
      'relay',
      '--database-url',
      process.env.DATABASE_URL as string,
      '--allow-private-network',
      '127.0.0.1',
      '--exit-when-idle',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const [code] = await once(relay, 'exit');
  receiver.close();
  expect(code).toBe(0);
  expect(received).toHaveLength(1);
  const body = verify(sub.secret, received[0].headers as Record<string, string>, received[0].body) as {
    type: string;
    data: { text: string };
  };
  expect(body.type).toBe('message.new');
  expect(body.data.text).toBe('kept');
});
