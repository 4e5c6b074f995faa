/**
 * docs/deploy/Dockerfile is not built here (no container engine on these machines), so it is
 * checked against the repository instead: only known instructions, the pnpm version of
 * package.json's packageManager, a Node.js base image that satisfies engines.node, an entry
 * point that is the relay's bin, a .dockerignore that keeps the host's node_modules and dist
 * out of the context — and its build stage (install, build, deploy), run for real on a copy
 * of that context, yields a relay whose binary starts and that holds its migrations and console.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './harness/cli.js';

const DOCKERFILE = readFileSync(join(REPO_ROOT, 'docs/deploy/Dockerfile'), 'utf8');
const ROOT_PKG = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
const RELAY_PKG = JSON.parse(readFileSync(join(REPO_ROOT, 'apps/relay/package.json'), 'utf8'));
const INSTRUCTIONS = new Set(
  'FROM RUN CMD LABEL EXPOSE ENV ADD COPY ENTRYPOINT VOLUME USER WORKDIR ARG ONBUILD STOPSIGNAL HEALTHCHECK SHELL'.split(
    ' ',
  ),
);

/** Instructions with their continuation lines joined, comments and blank lines dropped. */
function instructions(text: string): { keyword: string; args: string }[] {
  const out: { keyword: string; args: string }[] = [];
  let pending = '';
  for (const line of text.split('\n')) {
    if (pending === '' && (line.trim() === '' || line.trim().startsWith('#'))) continue;
    pending += `${line.replace(/\\$/, '').trim()} `;
    if (line.endsWith('\\')) continue;
    const m = /^(\S+)\s+(.*)$/.exec(pending.trim());
    out.push({ keyword: m?.[1] ?? pending.trim(), args: m?.[2] ?? '' });
    pending = '';
  }
  expect(pending, 'a continuation line ends the file').toBe('');
  return out;
}

const steps = instructions(DOCKERFILE);
const work = mkdtempSync(join(tmpdir(), 'hookbox-dockerfile-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('docs/deploy/Dockerfile', () => {
  it('has only known instructions, and two stages', () => {
    for (const s of steps) expect(INSTRUCTIONS.has(s.keyword), s.keyword).toBe(true);
    expect(steps.filter((s) => s.keyword === 'FROM')).toHaveLength(2);
  });

  it('matches package.json: pnpm version, Node.js engines, the relay bin', () => {
    const pnpm = /npm install -g pnpm@(\S+)/.exec(DOCKERFILE)?.[1];
    expect(`pnpm@${pnpm}`).toBe(ROOT_PKG.packageManager);
    const minMajor = Number(/>=\s*(\d+)/.exec(RELAY_PKG.engines.node)?.[1]);
    for (const from of steps.filter((s) => s.keyword === 'FROM')) {
      const major = Number(/^node:(\d+)/.exec(from.args)?.[1]);
      expect(major, from.args).toBeGreaterThanOrEqual(minMajor);
    }
    const entry = JSON.parse(steps.find((s) => s.keyword === 'ENTRYPOINT')?.args ?? '[]') as string[];
    expect(entry[0]).toBe('node');
    expect(entry.at(-1)).toBe(join('/app', RELAY_PKG.bin.hookbox));
    expect(DOCKERFILE).toContain(`--filter ${RELAY_PKG.name} deploy`);
  });

  it('has a .dockerignore that keeps installed and built files out of the build context', () => {
    const ignore = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n');
    expect(ignore).toContain('**/node_modules');
    expect(ignore).toContain('**/dist');
    expect(ignore).toContain('**/*.tsbuildinfo');
  });

  it('its build stage, run on a copy of the context, yields a relay that starts and ships migrations and the console', {
    timeout: 600_000,
  }, () => {
    // The build context as COPY . . sees it: the repository minus what .dockerignore names.
    const ignored = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('#'));
    // `**/name` (* a wildcard) at any depth; anything else a path from the root.
    const glob = (name: string) =>
      new RegExp(`^${name.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '[^/]*')}$`);
    const anyDepth = ignored.filter((l) => l.startsWith('**/')).map((l) => glob(l.slice(3)));
    const paths = new Set(ignored.filter((l) => !l.startsWith('**/')));
    const src = join(work, 'src');
    cpSync(REPO_ROOT, src, {
      recursive: true,
      filter: (from) => {
        const rel = relative(REPO_ROOT, from);
        return rel === '' || (!anyDepth.some((re) => re.test(basename(from))) && !paths.has(rel));
      },
    });
    // The build stage's RUN steps after COPY (pnpm itself is here already), into a temp
    // directory instead of /out, from the local store only: no network in tests. In a
    // copy: `pnpm deploy --prod` prunes the workspace it runs in.
    const first = steps.slice(
      0,
      steps.findIndex((s, i) => i > 0 && s.keyword === 'FROM'),
    );
    const afterCopy = first.slice(first.findIndex((s) => s.keyword === 'COPY') + 1);
    const script = afterCopy
      .filter((s) => s.keyword === 'RUN')
      .map((s) => s.args)
      .join(' && ')
      .replaceAll('/out', join(work, 'out'))
      .replace('pnpm install ', 'pnpm install --offline ')
      .replace(' deploy ', ' deploy --offline ');
    expect(script).toMatch(/pnpm install .*&& pnpm build .*deploy .*&& cp -r drizzle /);
    const r = spawnSync('sh', ['-c', script], { cwd: src, encoding: 'utf8', env: { ...process.env, CI: 'true' } });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    const out = join(work, 'out');
    const help = spawnSync(process.execPath, [join(out, RELAY_PKG.bin.hookbox), '--help'], { encoding: 'utf8' });
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain('serve');
    expect(existsSync(join(out, 'drizzle/meta/_journal.json'))).toBe(true);
    expect(readdirSync(join(out, 'src/serve/assets'))).toEqual(
      expect.arrayContaining(['console.html', 'portal.html', 'portal.js']),
    );
  });
});
