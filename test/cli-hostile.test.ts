/**
 * The CLI against hostile arguments and data (issue #11 items 4, 6, 7): every usage or
 * validation error exits 2 with one line naming the flag or argument (one table covers
 * every command), nothing is written, header values stay masked unless asked for, and every
 * read path prints payloads however deep the database holds them.
 */
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildProgram } from '../apps/relay/src/program.js';
import { type CliRun, runCli } from './harness/cli.js';
import { useTestDatabase } from './harness/db.js';

const db = useTestDatabase();

/** Runs `hookbox <args>` as a process; `{db}` in an argument is this file's database URL. */
function hookbox(...args: string[]): Promise<CliRun> {
  return runCli(
    args.map((a) => a.replace('{db}', db.url)),
    { env: { ...process.env, DATABASE_URL: db.url, NO_COLOR: '1' }, timeoutMs: 30_000 },
  );
}

const T = `hostile-${randomUUID().slice(0, 8)}`;
const UUID = '0190a5c4-1c2b-7d3e-8f40-123456789abc';

/** Every leaf command of the program, as `group sub` paths. */
type Command = ReturnType<typeof buildProgram>;

function leafCommands(cmd: Command, prefix = ''): string[] {
  return cmd.commands.flatMap((c: Command) => {
    const path = `${prefix}${c.name()}`;
    return c.commands.length > 0 ? leafCommands(c, `${path} `) : [path];
  });
}

/**
 * One bad argument per command (several for some), with what the one-line error must say.
 * Before #11.7 the malformed ids and the bad --allow-private-network entry exited 1.
 */
const BAD: Record<string, [args: string[], says: string][]> = {
  migrate: [[['--database-url', 'mysql://db/app'], '--database-url']],
  relay: [
    [['--allow-private-network', 'not a cidr!'], '--allow-private-network'],
    [['--concurrency', '0'], '--concurrency'],
    [['--breaker-threshold', '0'], '--breaker-threshold'],
    [['--breaker-cooldown', 'soon'], '--breaker-cooldown'],
    [['--breaker-cooldown', '1m', '--breaker-max-cooldown', '30s'], '--breaker-max-cooldown'],
    [['--disable-after', '0s'], '--disable-after'],
    // A bind host that is neither an IP nor a hostname failed its lookup at run time (exit 1).
    [['--metrics-host', 'bad host'], '--metrics-host'],
  ],
  listen: [
    [['--port', 'eighty'], '--port'],
    [['--host', 'bad host'], '--host'],
  ],
  replay: [
    [[], '--tenant'],
    [['--tenant', T, '--subscription', 'x OR 1=1'], '--subscription'],
    [['--tenant', T, '--since', '2024-02-30'], '--since'],
  ],
  'send-test': [[['--tenant', T, '--subscription', 'nope'], '--subscription']],
  cleanup: [[['--older-than', '5'], '--older-than']],
  stats: [
    [['--tenant', T, '--since', 'yesterday'], '--since'],
    [['--tenant', T, '--since', '275760-09-13T00:00:00Z'], 'year'],
  ],
  'subscriptions create': [
    [['--tenant', T, '--url', 'ftp://x.example/', '--events', '*'], '--url'],
    [['--tenant', T, '--url', 'https://x.example/', '--events', '*', '--header', '__proto__: x'], '__proto__'],
    [['--tenant', T, '--url', 'https://x.example/', '--events', '*', '--header', 'X-City: 東京'], 'Latin-1'],
    [['--tenant', T, '--url', 'https://x.example/', '--events', '*', '--header', 'X-Mood: 👍'], 'U+1F44D'],
    [
      ['--tenant', T, '--url', 'https://x.example/', '--events', '*', '--ordering-on-dead', 'wait'],
      '--ordering-on-dead',
    ],
    [['--tenant', T, '--url', 'https://x.example/', '--events', '*', '--rate-limit', '0'], '--rate-limit'],
    [['--tenant', T, '--url', 'https://x.example/', '--events', '*', '--rate-limit', '2.5'], '--rate-limit'],
    [['--tenant', T, '--url', 'https://x.example/', '--events', '*', '--timeout', '5'], '--timeout'],
    [['--tenant', T, '--url', 'https://x.example/', '--events', '*', '--timeout', '2h'], '--timeout'],
    [['--tenant', T, '--url', 'https://x.example/', '--events', '*', '--retry-schedule', '5s,,1m'], '--retry-schedule'],
    [['--tenant', T, '--url', 'https://x.example/', '--events', '*', '--retry-schedule', '31d'], '--retry-schedule'],
  ],
  'subscriptions list': [
    [['--tenant', T, '--limit', '0'], '--limit'],
    [['--tenant', T, '--after', 'zzz'], '--after'],
  ],
  'subscriptions show': [[['not-a-uuid', '--tenant', T], 'ID']],
  'subscriptions update': [
    [["'; drop table x; --", '--tenant', T, '--url', 'https://x.example/'], 'ID'],
    [[UUID, '--tenant', T, '--ordering-on-dead', 'BLOCK'], '--ordering-on-dead'],
    [[UUID, '--tenant', T, '--rate-limit', '10001'], '--rate-limit'],
    [[UUID, '--tenant', T, '--timeout', 'soon'], '--timeout'],
    [[UUID, '--tenant', T, '--retry-schedule', '-5s'], '--retry-schedule'],
  ],
  'subscriptions disable': [[['12', '--tenant', T], 'ID']],
  'subscriptions enable': [[['not-a-uuid', '--tenant', T], 'ID']],
  'subscriptions delete': [[['not-a-uuid', '--tenant', T], 'ID']],
  'subscriptions rotate-secret': [[['not-a-uuid', '--tenant', T], 'ID']],
  'deliveries list': [
    [['--tenant', T, '--since', '2024-02-30'], '2024-02-30 does not exist'],
    [['--tenant', T, '--until', '275760-09-13T00:00:00Z'], 'year must be from 0001 to 9999'],
    [['--tenant', T, '--status', 'lost'], '--status'],
    [['--tenant', T, '--ordering-key', 'a\tb'], '--ordering-key'],
  ],
  'deliveries show': [
    [['56 OR 1=1', '--tenant', T], 'ID'],
    [['-1', '--tenant', T], ''],
  ],
  'deliveries retry': [[['abc', '--tenant', T], 'ID']],
  'events list': [[['--tenant', T, '--type', 'Message.New'], '--type']],
  'events show': [[['not-a-uuid', '--tenant', T], 'ID']],
  'events replay': [[['not-a-uuid', '--tenant', T], 'EVENT_ID']],
  serve: [
    [['--port', '99999'], '--port'],
    [['--host', 'bad host'], '--host'],
    [['--host', 'a/b'], '--host'],
  ],
  'api-keys create': [[[], '--name']],
  'api-keys list': [[['--database-url', 'mysql://db/app'], '--database-url']],
  'api-keys revoke': [[['not-a-uuid'], 'ID']],
  'portal-token': [
    [[], '--tenant'],
    [['--tenant', T, '--ttl', '30d'], '--ttl'],
  ],
};

describe('exit code 2 for every usage or validation error (#11.7)', () => {
  it('the table covers every command', () => {
    expect(Object.keys(BAD).sort()).toEqual(leafCommands(buildProgram()).sort());
  });

  const cases = Object.entries(BAD).flatMap(([command, list]) =>
    list.map(([args, says]) => ({ command, args, says, name: `${command} ${args.join(' ')}` })),
  );
  it.each(cases)('$name', async ({ command, args, says }) => {
    const before = await db.pool.query('SELECT (SELECT count(*) FROM hookbox.subscriptions)::int AS n');
    const r = await hookbox(...command.split(' '), ...args);
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 2, stdout: '' });
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(says);
    const after = await db.pool.query('SELECT (SELECT count(*) FROM hookbox.subscriptions)::int AS n');
    expect(after.rows).toEqual(before.rows);
  });

  it('an id that is well-formed but unknown is still "not found" (exit 1)', async () => {
    const r = await hookbox('events', 'show', UUID, '--tenant', T);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('not found');
  });
});

describe('header values are masked unless asked for (#11.6)', () => {
  let id = '';
  beforeAll(async () => {
    const r = await hookbox(
      'subscriptions',
      'create',
      '--tenant',
      T,
      '--url',
      'https://hooks.example/in',
      '--events',
      '*',
      '--header',
      'X-Api-Key: tok_live_5ecret',
      '--json',
    );
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('tok_live_5ecret');
    id = (JSON.parse(r.stdout) as { id: string; headers: Record<string, string> }).id;
    expect(JSON.parse(r.stdout).headers).toEqual({ 'X-Api-Key': '********' });
  });

  it('list and show mask them, text and --json', async () => {
    for (const args of [
      ['list', '--tenant', T],
      ['list', '--tenant', T, '--json'],
      ['show', id, '--tenant', T],
      ['show', id, '--tenant', T, '--json'],
      ['show', id, '--tenant', T, '--reveal-secret'],
    ]) {
      const r = await hookbox('subscriptions', ...args);
      expect(r.code).toBe(0);
      expect(r.stdout).not.toContain('tok_live_5ecret');
    }
    const text = await hookbox('subscriptions', 'show', id, '--tenant', T);
    expect(text.stdout).toContain('X-Api-Key: ********');
    expect(text.stdout).toContain('--reveal-headers');
  });

  it('--reveal-headers prints them', async () => {
    const shown = await hookbox('subscriptions', 'show', id, '--tenant', T, '--reveal-headers');
    expect(shown.stdout).toContain('X-Api-Key: tok_live_5ecret');
    const listed = await hookbox('subscriptions', 'list', '--tenant', T, '--reveal-headers', '--json');
    const items = (JSON.parse(listed.stdout) as { items: { id: string; headers: Record<string, string> }[] }).items;
    expect(items.find((s) => s.id === id)?.headers).toEqual({ 'X-Api-Key': 'tok_live_5ecret' });
  });
});

describe('read paths print deep stored payloads (#11.4)', () => {
  const DEPTH = 5000;
  let eventId = '';
  let deliveryId = '';
  beforeAll(async () => {
    // Written as SQL did before the depth limit (or as any other writer might).
    const deep = `${'{"a":'.repeat(DEPTH)}"bottom"${'}'.repeat(DEPTH)}`;
    const ev = await db.pool.query<{ id: string }>(
      `INSERT INTO hookbox.events (tenant_id, type, payload, fanned_out_at) VALUES ($1, 'deep.x', $2::jsonb, now()) RETURNING id`,
      [T, deep],
    );
    eventId = ev.rows[0]?.id as string;
    const sub = await db.pool.query<{ id: string }>(
      `INSERT INTO hookbox.subscriptions (tenant_id, url, event_types, secret) VALUES ($1, 'https://deep.example/', '{*}', 'whsec_x') RETURNING id`,
      [T],
    );
    const d = await db.pool.query<{ id: string }>(
      `INSERT INTO hookbox.deliveries (event_id, subscription_id, tenant_id, status, attempts) VALUES ($1, $2, $3, 'pending', 0) RETURNING id`,
      [eventId, sub.rows[0]?.id, T],
    );
    deliveryId = String(d.rows[0]?.id);
  });

  /** Depth of the `a` chain, without recursion. */
  function depthOf(value: unknown): number {
    let n = 0;
    let v = value as { a?: unknown };
    while (v && typeof v === 'object' && 'a' in v) {
      v = v.a as { a?: unknown };
      n++;
    }
    expect(v).toBe('bottom');
    return n;
  }

  it('events show, text and --json', async () => {
    const text = await hookbox('events', 'show', eventId, '--tenant', T);
    expect(text.stderr).toBe('');
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('"bottom"');
    expect(
      depthOf(JSON.parse(text.stdout.slice(text.stdout.indexOf('payload:\n') + 9).split('\n\nID')[0] as string)),
    ).toBe(DEPTH);
    const json = await hookbox('events', 'show', eventId, '--tenant', T, '--json');
    expect(json.code).toBe(0);
    expect(depthOf((JSON.parse(json.stdout) as { event: { payload: unknown } }).event.payload)).toBe(DEPTH);
  });

  it('events list, deliveries list and deliveries show, text and --json', async () => {
    for (const args of [
      ['events', 'list', '--tenant', T],
      ['events', 'list', '--tenant', T, '--json'],
      ['deliveries', 'list', '--tenant', T],
      ['deliveries', 'list', '--tenant', T, '--json'],
      ['deliveries', 'show', deliveryId, '--tenant', T],
      ['deliveries', 'show', deliveryId, '--tenant', T, '--json'],
    ]) {
      const r = await hookbox(...args);
      expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: '' });
    }
  });
});
