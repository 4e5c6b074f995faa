/**
 * vitest globalSetup: one PostgreSQL server for the whole run and a migrated template
 * database; each test file then clones its own database from the template (test/harness/db.ts).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { migrate } from '../apps/relay/src/migrate.js';
import { startTestServer } from './harness/server.js';
import { choosePostgresSource, dockerAnswers } from './harness/source.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    pgTemplate: string;
  }
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export default async function setup(project: TestProject) {
  // Tests run the CLI as the compiled binary (test/harness/cli.ts): build it first
  // (incremental, a second or two when nothing changed).
  if (process.env.HOOKBOX_TEST_CLI !== 'source') {
    const root = fileURLToPath(new URL('..', import.meta.url));
    const build = spawnSync(
      process.execPath,
      [`${root}node_modules/typescript/bin/tsc`, '-b', 'packages/outbox', 'apps/relay'],
      {
        cwd: root,
        stdio: 'inherit',
      },
    );
    if (build.status !== 0)
      throw new Error('building the CLI for the tests failed (tsc -b packages/outbox apps/relay)');
  }
  const source = await choosePostgresSource(process.env, dockerAnswers);
  const server = await startTestServer(source);
  console.log(`[hookbox tests] PostgreSQL: ${server.describe}`);
  const template = `hookbox_tpl_${process.pid}_${Date.now().toString(36)}`;
  try {
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${template}`);
    } finally {
      await admin.end();
    }
    await migrate(withDatabase(server.url, template));
  } catch (err) {
    // No teardown will run: stop the server here (an embedded one would be left running).
    await dropTemplate(server.url, template).catch(() => {});
    await server.stop();
    throw err;
  }
  project.provide('pgAdminUrl', server.url);
  project.provide('pgTemplate', template);
  return async () => {
    await dropTemplate(server.url, template);
    await server.stop();
  };
}

async function dropTemplate(url: string, template: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`DROP DATABASE IF EXISTS ${template}`);
  } finally {
    await c.end();
  }
}
