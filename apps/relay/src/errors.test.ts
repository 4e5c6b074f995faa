/**
 * One error convention for bad options outside commands/ (errors.ts): the library's
 * ValidationError naming the option (or, for flag and environment text, the flag) and the
 * rule. UsageError stays in commands/. No database, no server: every check here runs before
 * anything is opened.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ValidationError } from '@hookbox/outbox';
import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveRelayConfig } from './config.js';
import { checkAllowList } from './delivery/ssrf.js';
import { parseDuration } from './duration.js';
import { UsageError } from './errors.js';
import { resolveListenOptions } from './listen/server.js';
import { createLogger } from './logger.js';
import { createMetricsRegistry } from './metrics/metrics.js';
import { parseBoolean, parseWholeNumber } from './option-text.js';
import { defaultRetryPolicy } from './policy/retry.js';
import { startPeriodicCleanup } from './relay/cleanup.js';
import { loadCatalogDir } from './serve/catalog.js';

const dir = mkdtempSync(join(tmpdir(), 'hookbox-errors-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The error `fn` throws. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('nothing was thrown');
}

const noDb = {} as pg.Pool;
const logger = createLogger('silent');

describe('bad options outside commands/ throw a ValidationError naming the option and the rule', () => {
  it.each<[string, () => unknown, string, string]>([
    [
      'startPeriodicCleanup',
      () => startPeriodicCleanup({ db: noDb, logger, olderThanMs: 60_000, intervalMs: 1_000, batchSize: 0 }),
      'batchSize',
      'range',
    ],
    ['createMetricsRegistry', () => createMetricsRegistry({ tenantLimit: -1 }), 'tenantLimit', 'range'],
    ['startListener options', () => resolveListenOptions({ port: 70_000 }), 'port', 'range'],
    ['startListener secrets', () => resolveListenOptions({ secrets: ['whsec_short'] }), 'secrets', 'format'],
    ['defaultRetryPolicy', () => defaultRetryPolicy({ maxAttempts: 0 }), 'retry.maxAttempts', 'range'],
    ['parseDuration', () => parseDuration('5', '--lease'), '--lease', 'format'],
    ['parseWholeNumber', () => parseWholeNumber('0', '--concurrency', 1, 10), '--concurrency', 'range'],
    ['parseBoolean', () => parseBoolean('maybe', '--require-https'), '--require-https', 'type'],
    ['checkAllowList', () => checkAllowList(['not a host!']), '--allow-private-network', 'format'],
    [
      'resolveRelayConfig',
      () => resolveRelayConfig({ databaseUrl: 'postgres://x/y', concurrency: '0' }, {}, 'ua'),
      '--concurrency',
      'range',
    ],
    ['resolveRelayConfig without a database', () => resolveRelayConfig({}, {}, 'ua'), '--database-url', 'required'],
  ])('%s', (_name, fn, field, rule) => {
    const err = thrown(fn);
    expect(err).toBeInstanceOf(ValidationError);
    expect(err).not.toBeInstanceOf(UsageError);
    expect(err).toMatchObject({ code: 'HOOKBOX_INVALID_INPUT', field, rule });
    expect((err as Error).message.startsWith(`${field}: `)).toBe(true);
  });

  it('loadCatalogDir: an unreadable directory and a malformed file name the catalog', () => {
    expect(thrown(() => loadCatalogDir(join(dir, 'missing')))).toMatchObject({ field: 'catalog', rule: 'read' });
    writeFileSync(join(dir, 'bad.json'), '{ not json');
    const err = thrown(() => loadCatalogDir(dir));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err).toMatchObject({ field: 'catalog', rule: 'format' });
    expect((err as Error).message).toContain('bad.json');
  });
});
