/**
 * `hookbox subscriptions …` run as a real process against a real PostgreSQL: the main
 * operator path, secret handling in the output, exit codes and error lines.
 */
import { describe, expect, it } from 'vitest';
import { type CliRun, envWithout, runCli } from './harness/cli.js';
import { useTestDatabase } from './harness/db.js';

const db = useTestDatabase();

/** Runs the CLI with this file's database; DATABASE_URL is removed so only the flag counts. */
function hookbox(...args: string[]): Promise<CliRun> {
  return runCli(['subscriptions', ...args, '--database-url', db.url], {
    env: envWithout(['DATABASE_URL']),
    timeoutMs: 120_000,
  });
}

function ok(run: CliRun): CliRun {
  expect(run.stderr, run.stderr).toBe('');
  expect(run.code).toBe(0);
  return run;
}

const json = (run: CliRun) => JSON.parse(ok(run).stdout) as Record<string, unknown>;

async function rawRow(id: string): Promise<Record<string, unknown> | undefined> {
  const { rows } = await db.pool.query('SELECT * FROM hookbox.subscriptions WHERE id = $1', [id]);
  return rows[0];
}

const SECRET = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;
const LONG = { timeout: 180_000 };

describe('hookbox subscriptions (spawned)', () => {
  it('create → list → show → disable → enable → rotate-secret → update → delete', LONG, async () => {
    const tenant = 'acme';
    // create --json: the stored subscription, its secret printed this once.
    const created = json(
      await hookbox(
        'create',
        '--tenant',
        tenant,
        '--url',
        'https://acme.example/hooks',
        '--events',
        'message.*, contact.created',
        '--description',
        'CRM',
        '--header',
        'X-Api-Key: k1',
        '--header',
        'X-Team:ops',
        '--json',
      ),
    );
    const id = created.id as string;
    expect(created).toMatchObject({
      tenantId: tenant,
      url: 'https://acme.example/hooks',
      eventTypes: ['message.*', 'contact.created'],
      description: 'CRM',
      // Header values are masked in output (#11.6); they are stored as given.
      headers: { 'X-Api-Key': '********', 'X-Team': '********' },
      active: true,
    });
    const secret = created.secret as string;
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(await rawRow(id)).toMatchObject({
      tenant_id: tenant,
      secret,
      event_types: ['message.*', 'contact.created'],
      headers: { 'X-Api-Key': 'k1', 'X-Team': 'ops' },
    });

    // create (human): prints the given secret once and says so.
    const human = ok(
      await hookbox('create', '--tenant', tenant, '--url', 'http://b.example/in', '--events', '*', '--secret', SECRET),
    );
    expect(human.stdout).toMatch(/^created subscription [0-9a-f-]{36}/);
    expect(human.stdout).toContain(SECRET);
    expect(human.stdout).toMatch(/Save this secret now: it is shown only here/);
    const secondId = /created subscription ([0-9a-f-]{36})/.exec(human.stdout)![1]!;

    // list: both, never a secret, in JSON or as a table.
    const listed = await hookbox('list', '--tenant', tenant, '--json');
    const page = json(listed) as { items: Record<string, unknown>[]; nextCursor: string | null };
    expect(page.items.map((s) => s.id).sort()).toEqual([id, secondId].sort());
    expect(page.nextCursor).toBeNull();
    for (const item of page.items) {
      expect(item).not.toHaveProperty('secret');
      expect(item).not.toHaveProperty('previousSecret');
    }
    expect(listed.stdout).not.toContain('whsec_');
    const table = ok(await hookbox('list', '--tenant', tenant));
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+STATUS\s+FAILS\s+EVENTS\s+URL$/);
    expect(table.stdout).toContain(id);
    expect(table.stdout).toContain(secondId);
    expect(table.stdout).not.toContain('whsec_');
    // Event-type filter and paging flags reach the library.
    const contact = json(await hookbox('list', '--tenant', tenant, '--event-type', 'contact.created', '--json'));
    expect((contact.items as { id: string }[]).map((s) => s.id).sort()).toEqual([id, secondId].sort());
    const flow = json(await hookbox('list', '--tenant', tenant, '--event-type', 'flow.started', '--json'));
    expect((flow.items as { id: string }[]).map((s) => s.id)).toEqual([secondId]);
    const first = json(await hookbox('list', '--tenant', tenant, '--limit', '1', '--json'));
    expect(first.items).toHaveLength(1);
    expect(first.nextCursor).toBe((first.items as { id: string }[])[0]!.id);

    // show: hidden by default, revealed on request.
    const shown = json(await hookbox('show', id, '--tenant', tenant, '--json'));
    expect(shown.id).toBe(id);
    expect(shown).not.toHaveProperty('secret');
    const plainShow = ok(await hookbox('show', id, '--tenant', tenant));
    expect(plainShow.stdout).toMatch(/secret\s+\(hidden; --reveal-secret prints it\)/);
    expect(plainShow.stdout).not.toContain('whsec_');
    const revealed = json(await hookbox('show', id, '--tenant', tenant, '--reveal-secret', '--json'));
    expect(revealed.secret).toBe(secret);
    expect(ok(await hookbox('show', id, '--tenant', tenant, '--reveal-secret')).stdout).toContain(secret);

    // disable / enable.
    const disabled = json(await hookbox('disable', id, '--tenant', tenant, '--reason', 'endpoint migrating', '--json'));
    expect(disabled).toMatchObject({ active: false, disabledReason: 'endpoint migrating' });
    expect(await rawRow(id)).toMatchObject({ active: false, disabled_reason: 'endpoint migrating' });
    const inactive = json(await hookbox('list', '--tenant', tenant, '--inactive', '--json'));
    expect((inactive.items as { id: string }[]).map((s) => s.id)).toEqual([id]);
    await db.pool.query('UPDATE hookbox.subscriptions SET failure_streak = 5 WHERE id = $1', [id]);
    const enabled = ok(await hookbox('enable', id, '--tenant', tenant));
    expect(enabled.stdout.trim()).toBe(`enabled subscription ${id}; resumed 0 pending deliveries`);
    expect(await rawRow(id)).toMatchObject({ active: true, disabled_reason: null, failure_streak: 0 });

    // rotate-secret: new secret printed once, the old one kept as previous for the ttl.
    const rotated = json(await hookbox('rotate-secret', id, '--tenant', tenant, '--previous-ttl', '1h', '--json'));
    const newSecret = rotated.secret as string;
    expect(newSecret).toMatch(/^whsec_/);
    expect(newSecret).not.toBe(secret);
    expect(rotated).not.toHaveProperty('previousSecret');
    const expires = new Date(rotated.previousSecretExpiresAt as string).getTime();
    expect(expires - new Date(rotated.updatedAt as string).getTime()).toBe(3_600_000);
    expect(await rawRow(id)).toMatchObject({ secret: newSecret, previous_secret: secret });
    const rotatedHuman = ok(await hookbox('rotate-secret', secondId, '--tenant', tenant));
    expect(rotatedHuman.stdout).toMatch(/new secret: whsec_\S+/);
    expect(rotatedHuman.stdout).toMatch(/previous secret keeps signing until \S+ \(1d\)/);
    expect(rotatedHuman.stdout).not.toContain(SECRET); // the old secret is not re-printed

    // update: only the given fields change.
    const updated = json(
      await hookbox('update', id, '--tenant', tenant, '--url', 'https://acme.example/v2', '--clear-headers', '--json'),
    );
    expect(updated).toMatchObject({ url: 'https://acme.example/v2', headers: {}, description: 'CRM' });
    expect(updated).not.toHaveProperty('secret');

    // Per-subscription limits: set with durations, shown, and returned to the relay's defaults.
    const limited = json(
      await hookbox(
        'update',
        id,
        '--tenant',
        tenant,
        '--rate-limit',
        '20',
        '--timeout',
        '5s',
        '--retry-schedule',
        '5s,1m,10m',
        '--json',
      ),
    );
    expect(limited).toMatchObject({
      rateLimit: 20,
      requestTimeoutMs: 5_000,
      retryScheduleMs: [5_000, 60_000, 600_000],
    });
    const limitsShown = ok(await hookbox('show', id, '--tenant', tenant));
    expect(limitsShown.stdout).toMatch(/rate limit\s+20 requests\/s/);
    expect(limitsShown.stdout).toMatch(/retry schedule\s+5s,1m,10m/);
    const reset = json(
      await hookbox(
        'update',
        id,
        '--tenant',
        tenant,
        '--rate-limit',
        'none',
        '--timeout',
        'default',
        '--retry-schedule',
        'none',
        '--json',
      ),
    );
    expect(reset).toMatchObject({ rateLimit: null, requestTimeoutMs: null, retryScheduleMs: [] });

    // delete, then it is gone: show exits 1 with "not found".
    const deleted = ok(await hookbox('delete', id, '--tenant', tenant));
    expect(deleted.stdout.trim()).toBe(`deleted subscription ${id}`);
    expect(await rawRow(id)).toBeUndefined();
    const gone = await hookbox('show', id, '--tenant', tenant);
    expect(gone.code).toBe(1);
    expect(gone.stderr.trim()).toBe(`hookbox: subscription ${id} not found`);
  });

  it('invalid input exits 2 with one line on stderr and writes nothing', LONG, async () => {
    const tenant = 'validation';
    const cases: [string[], RegExp][] = [
      [['--url', 'ftp://x.example/', '--events', '*'], /^hookbox: --url: must use http or https/],
      [['--url', 'https://u:p@x.example/', '--events', '*'], /^hookbox: --url: must not contain a username/],
      [['--url', 'https://x.example/', '--events', 'message.*,Bad'], /^hookbox: --events \(eventTypes\[1\]\): /],
      [
        ['--url', 'https://x.example/', '--events', '*', '--header', 'Host: evil'],
        /^hookbox: --header \(headers\.Host\): .*relay/,
      ],
      [
        ['--url', 'https://x.example/', '--events', '*', '--header', 'no colon'],
        /^hookbox: --header: expected "Name: value"/,
      ],
      [['--url', 'https://x.example/', '--events', '*', '--secret', 'whsec_abc'], /^hookbox: --secret: /],
      [['--url', 'https://x.example/', '--events', '*', '--max-in-flight', '0'], /^hookbox: --max-in-flight: /],
    ];
    const runs = await Promise.all(cases.map(([args]) => hookbox('create', '--tenant', tenant, ...args)));
    runs.forEach((run, i) => {
      expect(run.code, run.stderr).toBe(2);
      expect(run.stdout).toBe('');
      const lines = run.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(cases[i]![1]);
    });
    const { rows } = await db.pool.query('SELECT 1 FROM hookbox.subscriptions WHERE tenant_id = $1', [tenant]);
    expect(rows).toHaveLength(0);

    // Flag errors caught by commander are usage errors too.
    const missing = await hookbox('create', '--url', 'https://x.example/', '--events', '*');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/required option '--tenant <id>'/);
    const badTtl = await hookbox(
      'rotate-secret',
      '00000000-0000-4000-8000-000000000000',
      '--tenant',
      tenant,
      '--previous-ttl',
      '5',
    );
    expect(badTtl.code).toBe(2);
    expect(badTtl.stderr.trimEnd().split('\n')).toHaveLength(1);
  });

  it("another tenant's id is not found (exit 1) and the row is unchanged", LONG, async () => {
    const created = json(
      await hookbox('create', '--tenant', 'owner', '--url', 'https://o.example/', '--events', '*', '--json'),
    );
    const id = created.id as string;
    const before = await rawRow(id);
    const attempts = await Promise.all([
      hookbox('show', id, '--tenant', 'intruder', '--reveal-secret'),
      hookbox('update', id, '--tenant', 'intruder', '--url', 'https://evil.example/'),
      hookbox('disable', id, '--tenant', 'intruder'),
      hookbox('rotate-secret', id, '--tenant', 'intruder'),
      hookbox('delete', id, '--tenant', 'intruder'),
    ]);
    for (const run of attempts) {
      expect(run.code, run.stderr).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr.trim()).toBe(`hookbox: subscription ${id} not found`);
    }
    expect(await rawRow(id)).toEqual(before);
    const list = json(await hookbox('list', '--tenant', 'intruder', '--json'));
    expect(list.items).toEqual([]);
  });

  it('--help shows examples', LONG, async () => {
    const help = ok(await hookbox('create', '--help'));
    expect(help.stdout).toContain('Examples:');
    expect(help.stdout).toContain(
      "hookbox subscriptions create --tenant acme --url https://acme.example/hooks --events 'message.*,contact.created'",
    );
  });
});
