// An ESM consumer of the packed tarballs: NestJS 12 + TypeORM + @hookbox/nestjs, plain
// JavaScript (no build step). One committed and one rolled-back business transaction,
// then the installed `hookbox relay` delivers; the receiver checks the signature.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { HookboxModule, HookboxService } from '@hookbox/nestjs';
import * as root from '@hookbox/outbox';
import { HookboxError, subscriptions, verify } from '@hookbox/outbox';
import * as admin from '@hookbox/outbox/admin';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';

const url = process.env.DATABASE_URL;
assert.ok(url, 'DATABASE_URL is required');
assert.equal(typeof admin.deliveryLog, 'object', '@hookbox/outbox/admin exports the delivery log');
assert.equal('deliveryLog' in root, false, 'the root export leaves the operator code out');

const received = [];
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

class AppModule {}
Module({
  imports: [TypeOrmModule.forRoot({ type: 'postgres', url }), HookboxModule.forRoot({ isGlobal: true, strict: true })],
})(AppModule);

const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
const ds = app.get(DataSource);
const hookbox = app.get(HookboxService);
const sub = await subscriptions.create(ds, {
  tenantId: 'pack-esm',
  url: `http://127.0.0.1:${receiver.address().port}/hooks`,
  eventTypes: ['note.*'],
});
await ds.query('CREATE TABLE IF NOT EXISTS pack_notes (id serial PRIMARY KEY, text text NOT NULL)');
await ds.transaction(async (manager) => {
  const [{ id }] = await manager.query('INSERT INTO pack_notes (text) VALUES ($1) RETURNING id', ['kept']);
  await hookbox.triggerEvent('pack-esm', 'note.created', { id, text: 'kept' }, { manager });
});
await ds
  .transaction(async (manager) => {
    await manager.query('INSERT INTO pack_notes (text) VALUES ($1)', ['gone']);
    await hookbox.triggerEvent('pack-esm', 'note.rolled_back', { text: 'gone' }, { manager });
    throw new Error('roll back');
  })
  .catch(() => undefined);
const strictErr = await hookbox.triggerEvent('pack-esm', 'note.loose', {}).catch((e) => e);
assert.ok(strictErr instanceof HookboxError && strictErr.code === 'HOOKBOX_NO_TRANSACTION', 'strict refuses');
await app.close();

const relay = spawn(
  'node_modules/.bin/hookbox',
  ['relay', '--database-url', url, '--allow-private-network', '127.0.0.1', '--exit-when-idle'],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);
const [code] = await once(relay, 'exit');
assert.equal(code, 0, 'the relay exits 0 when idle');
receiver.close();

assert.equal(received.length, 1, 'exactly the committed event was delivered');
const body = verify(sub.secret, received[0].headers, received[0].body);
assert.equal(body.type, 'note.created');
assert.equal(body.data.text, 'kept');
console.log('pack-esm: committed event delivered and verified; rolled-back event not sent');
