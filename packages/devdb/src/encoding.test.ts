/**
 * The embedded server is UTF-8 whatever the locale it is started under. Without LANG or
 * LC_ALL (a bare container, `env -i`) initdb chose SQL_ASCII, and the SQL function then
 * counted a tenant id of 255 emoji as 1,020 characters, refusing what the library accepts.
 */
import pg from 'pg';
import { expect, it } from 'vitest';
import { startEmbeddedPostgres } from './index.js';

it('creates a UTF-8 cluster when the environment names no locale', async () => {
  const saved = { LANG: process.env.LANG, LC_ALL: process.env.LC_ALL, LC_CTYPE: process.env.LC_CTYPE };
  delete process.env.LANG;
  delete process.env.LC_ALL;
  delete process.env.LC_CTYPE;
  let server: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined;
  try {
    server = await startEmbeddedPostgres();
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v !== undefined) process.env[k] = v;
  }
  const client = new pg.Client({ connectionString: server.url });
  try {
    await client.connect();
    const { rows } = await client.query("SELECT current_setting('server_encoding') AS enc, length('😀😀') AS n");
    expect(rows[0]).toEqual({ enc: 'UTF8', n: 2 });
  } finally {
    await client.end();
    await server.stop();
  }
}, 60_000);
