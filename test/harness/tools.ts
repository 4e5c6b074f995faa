/**
 * System tools some checks need (promtool, a browser, other languages' toolchains). A fresh
 * machine with only Node and npm passes the tests: a check whose tool is missing is skipped,
 * and says why in its title and on stderr. CI installs the tools and sets
 * HOOKBOX_REQUIRE_TOOLS (a comma-separated list, or `all`), which turns such a skip into a
 * failure, so a missing install step cannot hide behind a skip.
 */
import { spawnSync } from 'node:child_process';

export interface Tool {
  name: string;
  available: boolean;
  /** Appended to a test title: empty when the tool is there, the skip reason when not. */
  note: string;
}

export function isRequired(name: string, env: Record<string, string | undefined> = process.env): boolean {
  const list = (env.HOOKBOX_REQUIRE_TOOLS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return list.includes('all') || list.includes(name);
}

/**
 * Looks for `command` on PATH. Missing and required: throws (the test file fails to load,
 * so the run fails). Missing and not required: returns a note for skipped tests' titles.
 */
export function findTool(
  command: string,
  install: string,
  env: Record<string, string | undefined> = process.env,
): Tool {
  const r = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  const available = r.status === 0 && r.stdout.trim() !== '';
  if (available) return { name: command, available, note: '' };
  if (isRequired(command, env)) {
    throw new Error(`${command} is required here (HOOKBOX_REQUIRE_TOOLS) but not on PATH: ${install}`);
  }
  const note = `[skipped: ${command} not on PATH; ${install}]`;
  process.stderr.write(`hookbox tests: ${note}\n`);
  return { name: command, available, note: ` ${note}` };
}
