/**
 * The post-commit wake-up: every committed enqueue is followed by a NOTIFY the relay can
 * hear, sent after the commit (never inside the transaction), debounced, and only when
 * something was enqueued.
 */
import { createOutbox, NOTIFY_CHANNEL, notifyRelay, ValidationError } from '@hookbox/outbox';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from './harness/db.js';

const db = useTestDatabase();
let listener: pg.Client;
let heard: number[] = [];

beforeAll(async () => {
  listener = new pg.Client({ connectionString: db.url, application_name: 'notify-test-listener' });
  await listener.connect();
  await listener.query(`LISTEN ${NOTIFY_CHANNEL}`);
  listener.on('notification', () => heard.push(performance.now()));
});
afterAll(async () => {
  await listener.end();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function settle() {
  // Let notifications in flight arrive.
  await sleep(150);
}

async function commitOne(pool: pg.Pool, outbox: ReturnType<typeof createOutbox>, enqueue: boolean): Promise<number> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    if (enqueue) await outbox.enqueue(client, { tenantId: 't', type: 'message.new', payload: {} });
    else await client.query('SELECT 1');
    await client.query('COMMIT');
    return performance.now();
  } finally {
    client.release();
  }
}

describe('attachNotifier', () => {
  it('sends a hint after each commit that enqueued, spaced beyond the debounce', async () => {
    const outbox = createOutbox();
    const notifier = outbox.attachNotifier(db.pool, { debounceMs: 2 });
    heard = [];
    const commits: number[] = [];
    for (let i = 0; i < 10; i++) {
      commits.push(await commitOne(db.pool, outbox, true));
      await sleep(15);
    }
    await notifier.flush();
    await settle();
    notifier.detach();
    expect(heard.length).toBeGreaterThanOrEqual(10);
    // Each commit is followed by a notification heard after it.
    for (const c of commits) expect(heard.some((h) => h > c)).toBe(true);
    // The hint is never sent from inside the transaction: the first one comes after the first commit.
    expect(Math.min(...heard)).toBeGreaterThan(commits[0] as number);
  });

  it('debounces a burst: fewer hints than commits, and one after the last commit', async () => {
    const outbox = createOutbox();
    const notifier = outbox.attachNotifier(db.pool, { debounceMs: 50 });
    heard = [];
    const commits = await Promise.all(Array.from({ length: 40 }, () => commitOne(db.pool, outbox, true)));
    await notifier.flush();
    await settle();
    notifier.detach();
    expect(heard.length).toBeGreaterThanOrEqual(1);
    expect(heard.length).toBeLessThan(40);
    expect(Math.max(...heard)).toBeGreaterThan(Math.max(...commits));
  });

  it('stays quiet when nothing was enqueued, and after detach', async () => {
    const outbox = createOutbox();
    const notifier = outbox.attachNotifier(db.pool, { windowMs: 1000 });
    heard = [];
    for (let i = 0; i < 5; i++) await commitOne(db.pool, outbox, false);
    await notifier.flush();
    await settle();
    expect(heard).toHaveLength(0);
    notifier.detach();
    for (let i = 0; i < 3; i++) await commitOne(db.pool, outbox, true);
    await settle();
    expect(heard).toHaveLength(0);
  });

  it('refuses unknown keys, wrong types and values out of range, attaching nothing', () => {
    const outbox = createOutbox();
    const before = db.pool.listenerCount('release');
    const bad: [unknown, string, string][] = [
      [{ debounceMS: 5 }, 'debounceMS', 'unknown'],
      [{ windowMs: -1 }, 'windowMs', 'range'],
      [{ windowMs: 0 }, 'windowMs', 'range'],
      [{ debounceMs: -1 }, 'debounceMs', 'range'],
      [{ debounceMs: '5' }, 'debounceMs', 'range'],
      [{ debounceMs: 1.5 }, 'debounceMs', 'range'],
      [{ windowMs: Number.POSITIVE_INFINITY }, 'windowMs', 'range'],
      [{ debounceMs: 60_001 }, 'debounceMs', 'range'],
      [null, 'notifier options', 'required'],
    ];
    for (const [options, field, rule] of bad) {
      expect(() => outbox.attachNotifier(db.pool, options as never), JSON.stringify(options)).toThrow(ValidationError);
      expect(() => outbox.attachNotifier(db.pool, options as never)).toThrow(
        expect.objectContaining({ code: 'HOOKBOX_INVALID_INPUT', field, rule }),
      );
    }
    expect(db.pool.listenerCount('release')).toBe(before);
    // The limits themselves are accepted.
    for (const options of [{}, { debounceMs: 0, windowMs: 1 }, { debounceMs: 60_000, windowMs: 3_600_000 }]) {
      outbox.attachNotifier(db.pool, options).detach();
    }
    expect(db.pool.listenerCount('release')).toBe(before);
  });

  it('notifyRelay sends one hint on the executor given', async () => {
    heard = [];
    await notifyRelay(db.pool);
    await settle();
    expect(heard).toHaveLength(1);
  });
});
