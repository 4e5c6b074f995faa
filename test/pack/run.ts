/**
 * Packaging check (CI step, `pnpm test:pack`): packs @hookbox/outbox, @hookbox/relay and
 * @hookbox/nestjs with `pnpm pack`, checks what the tarballs hold, installs them from npm's
 * registry side into two fresh projects outside the workspace — an ESM NestJS 12 app and
 * a CommonJS NestJS 11 project tested with Jest + ts-jest — migrates with the installed
 * `hookbox migrate`, and runs a transaction + delivery in each; the installed `hookbox serve`
 * serves the web console from the shipped assets. Needs the npm registry.
 * PostgreSQL: DATABASE_URL / TEST_DATABASE_URL, else an embedded one.
 * HOOKBOX_PACK_KEEP=1 keeps the temporary projects for a look.
 */
import { type ExecFileSyncOptions, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEmbeddedPostgres } from '@hookbox/devdb';
import pg from 'pg';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HERE = fileURLToPath(new URL('.', import.meta.url));
const PACKAGES = { outbox: 'packages/outbox', nestjs: 'packages/nestjs', relay: 'apps/relay' } as const;

let failures = 0;
let passes = 0;
function check(ok: boolean, what: string): void {
  if (ok) passes++;
  else {
    failures++;
    console.error(`FAIL ${what}`);
  }
}

function run(cmd: string, args: string[], options: ExecFileSyncOptions = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...options }) as string;
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

/** Packs each package and checks the tarball's contents; returns the tarball paths. */
function packAndInspect(work: string): Record<keyof typeof PACKAGES, string> {
  const out = {} as Record<keyof typeof PACKAGES, string>;
  for (const [key, dir] of Object.entries(PACKAGES) as [keyof typeof PACKAGES, string][]) {
    const dest = join(work, 'tarballs');
    const before = new Set(readdirSync(dest));
    run('pnpm', ['pack', '--pack-destination', dest], { cwd: join(ROOT, dir), stdio: ['ignore', 'ignore', 'inherit'] });
    const tarball = readdirSync(dest).find((f) => !before.has(f));
    if (!tarball) throw new Error(`pnpm pack produced no tarball for ${dir}`);
    out[key] = join(dest, tarball);
    const x = join(work, `x-${key}`);
    run('mkdir', ['-p', x]);
    run('tar', ['-xzf', out[key], '-C', x]);
    const pkgText = readFileSync(join(x, 'package/package.json'), 'utf8');
    const pkg = JSON.parse(pkgText);
    check(!pkgText.includes('workspace:'), `${pkg.name}: no workspace: protocol left in package.json`);
    check(typeof pkg.engines?.node === 'string', `${pkg.name}: engines.node`);
    for (const f of ['README.md', 'LICENSE'])
      check(statSync(join(x, 'package', f)).size > 0, `${pkg.name}: ships ${f}`);
    const files = walk(join(x, 'package'));
    check(!files.some((f) => /\.tsbuildinfo$|\.test\.(js|d\.ts)$/.test(f)), `${pkg.name}: no build info or tests`);
    for (const map of files.filter((f) => f.endsWith('.js.map'))) {
      const m = JSON.parse(readFileSync(map, 'utf8'));
      const ok = Array.isArray(m.sourcesContent) && m.sourcesContent.length === m.sources.length;
      check(ok && m.sourcesContent.every((s: unknown) => typeof s === 'string'), `${map}: sources inlined`);
    }
    if (key === 'relay') {
      const listing = run('tar', ['-tvzf', out[key]]);
      check(
        /^-rwx.* package\/dist\/cli\.js$/m.test(listing),
        '@hookbox/relay: dist/cli.js is executable in the tarball',
      );
      check(
        files.some((f) => f.endsWith('drizzle/meta/_journal.json')),
        '@hookbox/relay: ships the migrations',
      );
      // The web console is plain files served as they are: no build on the user's machine.
      for (const asset of readdirSync(join(ROOT, 'apps/relay/src/serve/assets'))) {
        check(
          files.some((f) => f.endsWith(`package/src/serve/assets/${asset}`)),
          `@hookbox/relay: ships the console asset ${asset}`,
        );
      }
    } else {
      const cjs = JSON.parse(readFileSync(join(x, 'package/dist/cjs/package.json'), 'utf8'));
      check(cjs.type === 'commonjs', `${pkg.name}: dist/cjs is marked CommonJS`);
      check(
        files.some((f) => f.endsWith('dist/esm/index.js')),
        `${pkg.name}: ESM build`,
      );
      check(
        files.some((f) => f.endsWith('dist/cjs/index.d.ts')),
        `${pkg.name}: CommonJS types`,
      );
    }
  }
  return out;
}

async function withDatabase<T>(adminUrl: string, fn: (url: string) => Promise<T>): Promise<T> {
  const name = `hookbox_pack_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  try {
    return await fn(url.toString());
  } finally {
    await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
    await admin.end();
  }
}

function project(work: string, name: string, pkg: object, template: string): string {
  const dir = join(work, name);
  cpSync(join(HERE, template), dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ name, private: true, ...pkg }, null, 2)}\n`);
  console.log(`--- ${name}: npm install`);
  run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, stdio: 'inherit' });
  return dir;
}

/** The installed `hookbox serve` answers the console, its assets and the OpenAPI document. */
async function checkServe(cwd: string, env: NodeJS.ProcessEnv): Promise<void> {
  // The installed bin itself, not `npx hookbox`: npx does not pass SIGTERM on, and the
  // orphaned server kept this script's stdout pipe, and so the whole CI run, open.
  const child = spawn(join(cwd, 'node_modules/.bin/hookbox'), ['serve', '--port', '0'], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('hookbox serve printed no address in 60 s')), 60_000);
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        const m = /hookbox serve: (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1] as string);
        }
      });
      child.once('exit', (code) => reject(new Error(`hookbox serve exited ${code}`)));
    });
    for (const [path, type] of [
      ['/console', 'text/html'],
      ['/portal', 'text/html'],
      ['/assets/portal.js', 'text/javascript'],
      ['/openapi.json', 'application/json'],
    ] as const) {
      const res = await fetch(`${url}${path}`);
      check(
        res.status === 200 && (res.headers.get('content-type') ?? '').startsWith(type),
        `installed hookbox serve: GET ${path} answers 200 ${type} (got ${res.status})`,
      );
    }
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
  }
}

async function main(): Promise<void> {
  // Outside the workspace, so nothing resolves from the repository's node_modules.
  const work = mkdtempSync(join(tmpdir(), 'hookbox-pack-'));
  run('mkdir', ['-p', join(work, 'tarballs')]);
  const embedded =
    process.env.DATABASE_URL || process.env.TEST_DATABASE_URL ? null : await startEmbeddedPostgres({ mode: 'fast' });
  const adminUrl = embedded?.url ?? ((process.env.DATABASE_URL || process.env.TEST_DATABASE_URL) as string);
  try {
    console.log('--- pnpm pack');
    const t = packAndInspect(work);
    const tarballs = { '@hookbox/outbox': `file:${t.outbox}`, '@hookbox/nestjs': `file:${t.nestjs}` };
    const relay = { '@hookbox/relay': `file:${t.relay}` };

    const esm = project(
      work,
      'esm-nest12',
      {
        type: 'module',
        dependencies: {
          ...tarballs,
          ...relay,
          '@nestjs/common': '^12.0.0',
          '@nestjs/core': '^12.0.0',
          '@nestjs/typeorm': '^12.0.0',
          typeorm: '^1.0.0',
          pg: '^8.11.0',
          'reflect-metadata': '^0.2.2',
          rxjs: '^7.8.0',
        },
      },
      'esm',
    );
    await withDatabase(adminUrl, async (url) => {
      const env = { ...process.env, DATABASE_URL: url };
      run('npx', ['hookbox', 'migrate'], { cwd: esm, env, stdio: 'inherit' });
      run('node', ['app.mjs'], { cwd: esm, env, stdio: 'inherit', timeout: 300_000 });
      passes++;
      await checkServe(esm, env);
    });

    const cjs = project(
      work,
      'cjs-nest11-jest',
      {
        scripts: { test: 'jest' },
        dependencies: {
          ...tarballs,
          '@nestjs/common': '^11.0.0',
          '@nestjs/core': '^11.0.0',
          '@nestjs/platform-express': '^11.0.0',
          '@nestjs/typeorm': '^11.0.0',
          typeorm: '^0.3.20',
          pg: '^8.11.0',
          'reflect-metadata': '^0.2.2',
          rxjs: '^7.8.0',
        },
        devDependencies: {
          ...relay,
          '@nestjs/testing': '^11.0.0',
          '@types/jest': '^30.0.0',
          '@types/node': '^20.0.0',
          jest: '^30.0.0',
          'ts-jest': '^29.4.0',
          typescript: '~5.9.0',
        },
      },
      'cjs',
    );
    await withDatabase(adminUrl, async (url) => {
      const env = { ...process.env, DATABASE_URL: url };
      run('npx', ['hookbox', 'migrate'], { cwd: cjs, env, stdio: 'inherit' });
      // --forceExit: a failed test must not leave the run waiting on its open app.
      run('npx', ['jest', '--ci', '--forceExit'], { cwd: cjs, env, stdio: 'inherit', timeout: 300_000 });
      passes++;
    });
  } catch (err) {
    failures++;
    console.error(`FAIL ${(err as Error).message}`);
  } finally {
    await embedded?.stop();
    if (process.env.HOOKBOX_PACK_KEEP === '1') console.log(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
  console.log(`pack: ${passes} passed, ${failures} failed`);
  if (failures > 0) process.exitCode = 1;
}

await main();
