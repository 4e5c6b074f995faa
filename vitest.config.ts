import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

// HOOKBOX_TEST_CANARY=1 runs only the deliberately failing files in test/canary, through
// the same configuration: CI requires that run to exit non-zero.
const canary = process.env.HOOKBOX_TEST_CANARY === '1';

export default defineConfig({
  resolve: {
    // Run the workspace packages from source: no build step before the tests.
    alias: {
      // Before '@hookbox/outbox', which would otherwise match it as a prefix.
      '@hookbox/outbox/api': src('./packages/outbox/src/api/index.ts'),
      '@hookbox/outbox/admin': src('./packages/outbox/src/admin.ts'),
      '@hookbox/outbox': src('./packages/outbox/src/index.ts'),
      '@hookbox/devdb': src('./packages/devdb/src/index.ts'),
      '@hookbox/relay': src('./apps/relay/src/index.ts'),
      '@hookbox/nestjs': src('./packages/nestjs/src/index.ts'),
    },
  },
  test: {
    include: canary
      ? ['test/canary/*.canary.ts']
      : ['test/**/*.test.ts', 'packages/*/src/**/*.test.ts', 'apps/*/src/**/*.test.ts', 'apps/*/test/**/*.test.ts'],
    globalSetup: ['./test/global-setup.ts'],
    // Generous: a test's own waits bound what it checks; this only stops a hung test. Files
    // that run the CLI a few dozen times took over 30 s on a loaded two-core machine.
    testTimeout: 90_000,
    hookTimeout: 60_000,
    // Two cores: files run in parallel, each on its own database.
    pool: 'forks',
    // Many files wait on spawned CLI processes and sockets rather than CPU: run more than
    // one per core.
    maxWorkers: 4,
  },
});
