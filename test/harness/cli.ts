/**
 * How tests run the `hookbox` CLI as a real process: `process.execPath` with these
 * arguments first. By default the compiled binary (apps/relay/dist/cli.js, which the
 * global setup builds before any test runs): what users install, and it starts in a
 * fraction of the time a TypeScript loader needs. HOOKBOX_TEST_CLI=source runs the
 * TypeScript sources through tsx instead.
 */
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export const CLI: readonly string[] =
  process.env.HOOKBOX_TEST_CLI === 'source'
    ? ['--import', 'tsx', `${REPO_ROOT}apps/relay/src/cli.ts`]
    : [`${REPO_ROOT}apps/relay/dist/cli.js`];
