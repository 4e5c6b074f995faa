/**
 * `npm run demo` (apps/demo) as people run it: piped or in CI it prints the console's and
 * the portal's URLs and exits 0 at once; on a terminal (a pseudo-terminal from util-linux
 * `script`) it keeps serving the console until Ctrl-C, then stops cleanly — exit 0, and no
 * embedded PostgreSQL or data directory left in the temp directory.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './harness/cli.js';
import { useCleanup, waitFor } from './harness/relay.js';
import { findTool } from './harness/tools.js';

const SCRIPT = findTool('script', 'apt-get install -y bsdutils');
const DEMO = [process.execPath, '--import', 'tsx', 'apps/demo/src/main.ts'];
const defer = useCleanup(afterEach);

/** A temp directory of the demo's own, which the embedded server's OS user can enter. */
function demoTmp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hookbox-demo-'));
  chmodSync(dir, 0o777);
  defer(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function start(command: string[], tmp: string, env: Record<string, string | undefined>) {
  const child = spawn(command[0] as string, command.slice(1), {
    cwd: REPO_ROOT,
    env: { ...process.env, TMPDIR: tmp, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  defer(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-(child.pid as number), 'SIGKILL');
  });
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child: child as ChildProcess, output: () => out, exited };
}

const leftovers = (tmp: string) => readdirSync(tmp).filter((n) => n.startsWith('hookbox-pg-'));

describe('npm run demo', () => {
  it('piped: prints the console and portal URLs and exits 0 without waiting', { timeout: 180_000 }, async () => {
    const tmp = demoTmp();
    const demo = start(DEMO, tmp, { CI: undefined });
    const code = await demo.exited;
    expect(code, demo.output()).toBe(0);
    expect(demo.output()).toMatch(/operator console +http:\/\/127\.0\.0\.1:\d+\/console#key=hbk_/);
    expect(demo.output()).toMatch(/tenant portal http:\/\/127\.0\.0\.1:\d+\/portal#token=hbp_/);
    expect(demo.output()).not.toContain('serving until Ctrl-C');
    expect(leftovers(tmp)).toEqual([]);
  });

  it.skipIf(!SCRIPT.available)(
    `on a terminal: serves the console until Ctrl-C, then exits 0 and leaves nothing behind${SCRIPT.note}`,
    { timeout: 180_000 },
    async () => {
      const tmp = demoTmp();
      // script runs the demo on a pseudo-terminal; a ^C written to it is the terminal's Ctrl-C,
      // delivered to the whole foreground process group (the embedded server included).
      // `exec`: the shell script starts ($SHELL, or sh when it is unset) must not stay between
      // the terminal and the demo — dash waits, takes the SIGINT itself and exits 130.
      const demo = start(['script', '-qfec', ['exec', ...DEMO].join(' '), '/dev/null'], tmp, { CI: undefined });
      const url = await waitFor(
        () =>
          demo.output().includes('serving until Ctrl-C') &&
          /operator console +(http:\/\/127\.0\.0\.1:\d+)\/console/.exec(demo.output())?.[1],
        { timeoutMs: 150_000, what: 'the demo to serve its console' },
      );
      expect((await fetch(`${url}/console`)).status).toBe(200);
      expect(demo.child.exitCode).toBeNull(); // still serving
      demo.child.stdin?.write('\x03');
      const code = await demo.exited;
      expect(code, demo.output()).toBe(0);
      await expect(fetch(`${url}/console`)).rejects.toThrow();
      expect(leftovers(tmp)).toEqual([]);
    },
  );
});
