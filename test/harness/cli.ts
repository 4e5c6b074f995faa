/**
 * How tests run the `hookbox` CLI as a real process: `process.execPath` with these
 * arguments first. By default the compiled binary (apps/relay/dist/cli.js, which the
 * global setup builds before any test runs): what users install, and it starts in a
 * fraction of the time a TypeScript loader needs. HOOKBOX_TEST_CLI=source runs the
 * TypeScript sources through tsx instead.
 */
import { type ChildProcessByStdio, execFile, spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export const CLI: readonly string[] =
  process.env.HOOKBOX_TEST_CLI === 'source'
    ? ['--import', 'tsx', `${REPO_ROOT}apps/relay/src/cli.ts`]
    : [`${REPO_ROOT}apps/relay/dist/cli.js`];

/** What one CLI run left behind. */
export interface CliRun {
  /** The exit code; -1 when it was killed (timeout) or did not start. */
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `hookbox <args>` as a process from the repository root and collects its output. It
 * never rejects: a failing command is a non-zero `code`. `env` is the whole environment
 * (default: this process's); a run longer than `timeoutMs` is killed.
 */
export function runCli(
  args: readonly string[],
  { env = process.env, timeoutMs = 60_000 }: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...CLI, ...args],
      { cwd: REPO_ROOT, env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** This process's environment without these variables (and, with `hookbox: true`, without any HOOKBOX_*). */
export function envWithout(names: readonly string[], { hookbox = false } = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (names.includes(k) || (hookbox && k.startsWith('HOOKBOX_'))) delete env[k];
  return env;
}

/** A long-running CLI process whose output is collected as it comes. */
export interface SpawnedCli {
  child: ChildProcessByStdio<null, Readable, Readable>;
  stdout(): string;
  stderr(): string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `hookbox <args>` from the repository root in its own process group (so cleanup
 * can reach anything it starts) and collects stdout and stderr. One node process, so
 * signals reach the CLI itself and its exit code is its own.
 */
export function spawnCli(args: readonly string[], { env = process.env }: { env?: NodeJS.ProcessEnv } = {}): SpawnedCli {
  const child = spawn(process.execPath, [...CLI, ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    env,
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return { child, stdout: () => out, stderr: () => err, exit };
}
