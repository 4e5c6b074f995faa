/**
 * The preamble of a relay test file in one call: a fresh database for the file, a cleanup
 * stack run after each test, unique tenant ids, and receivers and relays that the cleanup
 * stack stops.
 *
 *   const { db, defer, tenant, receiver, relay } = useRelayFixture();
 *
 * Call it once at the top level of the file (it registers vitest hooks).
 */
import { randomUUID } from 'node:crypto';
import { afterEach } from 'vitest';
import { type TestDatabase, useTestDatabase } from './db.js';
import { type Receiver, startReceiver } from './receiver.js';
import { startRelay, type TestRelay, type TestRelayOptions, useCleanup } from './relay.js';

export interface RelayFixture {
  db: TestDatabase;
  /** Registers a cleanup that runs after the current test, last registered first. */
  defer: (fn: () => unknown) => void;
  /** A tenant id no other test uses: `<prefix>-<8 hex>`. */
  tenant: (prefix?: string) => string;
  /** A receiver on 127.0.0.1, closed after the test. */
  receiver: (options?: Parameters<typeof startReceiver>[0]) => Promise<Receiver>;
  /** An in-process relay on the file's database, stopped after the test. */
  relay: (overrides?: TestRelayOptions) => TestRelay;
}

export function useRelayFixture(): RelayFixture {
  const db = useTestDatabase();
  const defer = useCleanup(afterEach);
  return {
    db,
    defer,
    tenant: (prefix = 't') => `${prefix}-${randomUUID().slice(0, 8)}`,
    async receiver(options) {
      const r = await startReceiver(options);
      defer(() => r.close());
      return r;
    },
    relay(overrides = {}) {
      const r = startRelay(db.url, overrides);
      defer(() => r.stop());
      return r;
    },
  };
}
