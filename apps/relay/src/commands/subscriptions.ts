/**
 * `hookbox subscriptions …`: manage a tenant's webhook endpoints from the shell. Commander
 * parses; `@hookbox/outbox`'s `subscriptions` does the work. Signing secrets are printed
 * only by `create`, `rotate-secret` and `show --reveal-secret`; custom header values (often
 * tokens) are masked unless `list` or `show` is given `--reveal-headers`.
 */
import { circuitState, type OrderingOnDead, type SubscriptionRecord, subscriptions } from '@hookbox/outbox';
import { type Command, Option } from 'commander';
import type pg from 'pg';
import { databaseUrlOption } from '../config.js';
import { formatDuration, parseDuration, parseDurationList } from '../duration.js';
import { UsageError } from '../errors.js';
import { parseWholeNumber } from '../option-text.js';
import { collect, examples, run as runWith, uuidArg } from './flags.js';
import { formatFields, formatTable, formatTime, printJson } from './output.js';

/** `--retry-schedule`: a list of durations, or "none" for no retries. */
function parseSchedule(text: string): number[] {
  return text.trim() === 'none' ? [] : parseDurationList(text, '--retry-schedule');
}

/** Library field → the flag an operator types, for error messages. */
const FLAGS: Record<string, string> = {
  tenantId: '--tenant',
  url: '--url',
  eventTypes: '--events',
  secret: '--secret',
  description: '--description',
  headers: '--header',
  maxInFlight: '--max-in-flight',
  orderingOnDead: '--ordering-on-dead',
  rateLimit: '--rate-limit',
  requestTimeoutMs: '--timeout',
  retryScheduleMs: '--retry-schedule',
  reason: '--reason',
  eventType: '--event-type',
  limit: '--limit',
  after: '--after',
  previousSecretTtlMs: '--previous-ttl',
};

/** `--ordering-on-dead`: what a dead delivery of an ordering key does to the key's later events. */
function orderingOnDeadOption(): Option {
  return new Option(
    '--ordering-on-dead <policy>',
    "events with an ordering key whose delivery went dead: 'block' holds the key's later events until it is replayed; 'skip' moves on",
  ).choices(['block', 'skip']);
}

const SAVE_SECRET_NOTE =
  'Save this secret now: it is shown only here (hookbox prints it again only with `subscriptions show --reveal-secret`).';

interface Common {
  tenant: string;
  databaseUrl?: string;
  json?: boolean;
}

/** What a masked header value prints as. */
export const MASKED = '********';

/** Header values masked (names kept), unless `reveal`. */
function maskHeaders(headers: Record<string, string>, reveal: boolean): Record<string, string> {
  return reveal ? headers : Object.fromEntries(Object.keys(headers).map((name) => [name, MASKED]));
}

/** The fields to print: signing secrets only when asked for, header values masked unless asked for. */
function view(
  sub: SubscriptionRecord,
  secrets: 'none' | 'current' | 'all',
  revealHeaders = false,
): Record<string, unknown> {
  const { secret, previousSecret, ...all } = sub;
  const rest = { ...all, headers: maskHeaders(sub.headers, revealHeaders), circuit: circuitState(sub) };
  if (secrets === 'none') return rest;
  if (secrets === 'current') return { ...rest, secret };
  return { ...rest, secret, previousSecret };
}

function parseEvents(text: string): string[] {
  return text.split(',').map((s) => s.trim());
}

function parseHeaders(values: readonly string[]): Record<string, string> {
  // A null prototype: `--header '__proto__: x'` stays a key, and the library refuses it by name.
  const out: Record<string, string> = Object.create(null);
  for (const h of values) {
    const colon = h.indexOf(':');
    if (colon <= 0) throw new UsageError(`--header: expected "Name: value" (got ${JSON.stringify(h)})`);
    const name = h.slice(0, colon).trim();
    if (Object.hasOwn(out, name)) throw new UsageError(`--header: ${name} given twice`);
    out[name] = h.slice(colon + 1).trim();
  }
  return out;
}

function status(sub: SubscriptionRecord): string {
  if (!sub.active) return `disabled${sub.disabledReason ? ` (${sub.disabledReason})` : ''}`;
  const circuit = circuitState(sub);
  return circuit === 'closed' ? 'active' : `active, circuit ${circuit}`;
}

/** The breaker in words: closed, open until when, or half-open (probing). */
function circuitText(sub: SubscriptionRecord): string {
  const state = circuitState(sub);
  const cooldown = sub.circuitCooldownMs === null ? '' : `, cooldown ${formatDuration(sub.circuitCooldownMs)}`;
  if (state === 'open')
    return `open until ${formatTime(sub.circuitOpenUntil)} (deliveries held, no attempts spent${cooldown})`;
  if (state === 'half-open') return `half-open (one probe at a time${cooldown})`;
  return 'closed';
}

function details(
  sub: SubscriptionRecord,
  secrets: 'none' | 'current' | 'all',
  revealHeaders = false,
  now = new Date(),
): string {
  const headerNames = Object.entries(maskHeaders(sub.headers, revealHeaders)).map(
    ([name, value]) => `${name}: ${value}`,
  );
  const headerNote = revealHeaders || headerNames.length === 0 ? '' : ' (values hidden; --reveal-headers prints them)';
  const fields: [string, string][] = [
    ['id', sub.id],
    ['tenant', sub.tenantId],
    ['url', sub.url],
    ['events', sub.eventTypes.join(', ')],
    ['status', sub.active ? 'active' : `disabled since ${formatTime(sub.disabledAt)}`],
  ];
  if (!sub.active) fields.push(['reason', sub.disabledReason ?? '-']);
  fields.push(
    ['description', sub.description ?? '-'],
    ['headers', headerNames.length > 0 ? `${headerNames.join('; ')}${headerNote}` : '-'],
    ['max in flight', sub.maxInFlight === null ? 'relay default' : String(sub.maxInFlight)],
    ['ordering on dead', sub.orderingOnDead],
    ['circuit', circuitText(sub)],
    ['rate limit', sub.rateLimit === null ? 'none' : `${sub.rateLimit} requests/s`],
    ['request timeout', sub.requestTimeoutMs === null ? 'relay default' : formatDuration(sub.requestTimeoutMs)],
    [
      'retry schedule',
      sub.retryScheduleMs === null
        ? 'relay default'
        : sub.retryScheduleMs.length === 0
          ? 'no retries'
          : sub.retryScheduleMs.map(formatDuration).join(','),
    ],
    ['failure streak', String(sub.failureStreak)],
    ['failing since', formatTime(sub.failingSince)],
    ['last success', formatTime(sub.lastSuccessAt)],
    ['last failure', formatTime(sub.lastFailureAt)],
    ['created', formatTime(sub.createdAt)],
    ['updated', formatTime(sub.updatedAt)],
    ['secret', secrets === 'none' ? '(hidden; --reveal-secret prints it)' : sub.secret],
  );
  const expires = sub.previousSecretExpiresAt;
  if (sub.previousSecret && expires) {
    const state = expires > now ? `signs until ${formatTime(expires)}` : `expired ${formatTime(expires)}`;
    fields.push(['previous secret', secrets === 'all' ? `${sub.previousSecret} (${state})` : `(hidden; ${state})`]);
  }
  return formatFields(fields);
}

/** `--tenant`, `--database-url` and (optionally) `--json` on a subcommand. */
function common(cmd: Command, json = true): Command {
  cmd.requiredOption('--tenant <id>', 'tenant that owns the subscriptions').addOption(databaseUrlOption());
  if (json) cmd.option('--json', 'print JSON instead of a table');
  return cmd;
}

function run<T>(databaseUrl: string | undefined, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  return runWith(FLAGS, databaseUrl, fn);
}

/** A subscription id argument (a uuid), checked before connecting. */
const subId = (id: string) => uuidArg(id, 'ID', 'a subscription');

export function registerSubscriptions(program: Command): void {
  const group = program
    .command('subscriptions')
    .description("manage a tenant's webhook endpoints (subscriptions)")
    .addHelpText(
      'after',
      examples(
        "hookbox subscriptions create --tenant acme --url https://acme.example/hooks --events 'message.*,contact.created'",
        "ID=$(hookbox subscriptions create --tenant acme --url https://acme.example/in --events '*' --json | jq -r .id)",
        'hookbox subscriptions list --tenant acme --event-type message.new',
        'hookbox subscriptions show $ID --tenant acme --reveal-secret',
        'hookbox subscriptions rotate-secret $ID --tenant acme --previous-ttl 48h',
      ),
    );

  common(group.command('create'))
    .description('create a subscription; prints its signing secret once')
    .requiredOption('--url <url>', 'endpoint: absolute http(s) URL without credentials')
    .requiredOption('--events <patterns>', 'comma-separated event-type patterns: message.new, message.*, *')
    .option('--secret <whsec>', 'signing secret (whsec_ + base64 key of 24–64 bytes); default: generated')
    .option('--description <text>', 'free text for operators')
    .option('--header <"Name: value">', 'extra request header (repeatable)', collect)
    .option('--max-in-flight <n>', 'concurrent requests to this endpoint (1–1000); default: the relay’s')
    .addOption(orderingOnDeadOption().default('block'))
    .option(
      '--rate-limit <n>',
      'requests per second to this endpoint (1–10000), across every relay sharing the database; default: no limit',
    )
    .option(
      '--timeout <dur>',
      'time allowed per request, e.g. 5s (at most the relay’s --request-timeout); default: the relay’s',
    )
    .option(
      '--retry-schedule <list>',
      'delays before each retry, e.g. 5s,1m,10m (its length is the retry budget; "none": no retries); default: the relay’s',
    )
    .addHelpText(
      'after',
      examples(
        "hookbox subscriptions create --tenant acme --url https://acme.example/hooks --events 'message.*,contact.created'",
        "hookbox subscriptions create --tenant acme --url https://acme.example/in --events '*' --header 'X-Api-Key: k1' --json",
      ),
    )
    .action(
      async (
        opts: Common & {
          url: string;
          events: string;
          secret?: string;
          description?: string;
          header?: string[];
          maxInFlight?: string;
          orderingOnDead: OrderingOnDead;
          rateLimit?: string;
          timeout?: string;
          retrySchedule?: string;
        },
      ) => {
        // Flags are parsed before connecting: a typo never costs a connection.
        const input = {
          tenantId: opts.tenant,
          url: opts.url,
          eventTypes: parseEvents(opts.events),
          ...(opts.secret === undefined ? {} : { secret: opts.secret }),
          ...(opts.description === undefined ? {} : { description: opts.description }),
          ...(opts.header === undefined ? {} : { headers: parseHeaders(opts.header) }),
          ...(opts.maxInFlight === undefined
            ? {}
            : { maxInFlight: parseWholeNumber(opts.maxInFlight, '--max-in-flight', 1, 1000) }),
          orderingOnDead: opts.orderingOnDead,
          ...(opts.rateLimit === undefined
            ? {}
            : { rateLimit: parseWholeNumber(opts.rateLimit, '--rate-limit', 1, 10_000) }),
          ...(opts.timeout === undefined ? {} : { requestTimeoutMs: parseDuration(opts.timeout, '--timeout') }),
          ...(opts.retrySchedule === undefined ? {} : { retryScheduleMs: parseSchedule(opts.retrySchedule) }),
        };
        const sub = await run(opts.databaseUrl, (c) => subscriptions.create(c, input));
        if (opts.json) return printJson(view(sub, 'current'));
        console.log(`created subscription ${sub.id}\n\n${details(sub, 'current')}\n\n${SAVE_SECRET_NOTE}`);
      },
    );

  common(group.command('list'))
    .description("list a tenant's subscriptions (secrets are never listed)")
    .addOption(new Option('--active', 'only active subscriptions').conflicts('inactive'))
    .addOption(new Option('--inactive', 'only disabled subscriptions').conflicts('active'))
    .option('--event-type <type>', 'only subscriptions whose patterns match this event type')
    .option('--limit <n>', 'page size (1–500)', '50')
    .option('--after <id>', 'start after this id (the cursor printed by the previous page)')
    .option('--reveal-headers', 'print custom header values (masked by default: they often hold tokens)')
    .addHelpText(
      'after',
      examples(
        'hookbox subscriptions list --tenant acme',
        'hookbox subscriptions list --tenant acme --inactive --json',
        'hookbox subscriptions list --tenant acme --limit 100 --after $ID',
      ),
    )
    .action(
      async (
        opts: Common & {
          active?: boolean;
          inactive?: boolean;
          eventType?: string;
          limit: string;
          after?: string;
          revealHeaders?: boolean;
        },
      ) => {
        const limit = parseWholeNumber(opts.limit, '--limit', 1, 500);
        const page = await run(opts.databaseUrl, (c) =>
          subscriptions.list(c, {
            tenantId: opts.tenant,
            limit,
            ...(opts.active ? { active: true } : opts.inactive ? { active: false } : {}),
            ...(opts.eventType === undefined ? {} : { eventType: opts.eventType }),
            ...(opts.after === undefined ? {} : { after: uuidArg(opts.after, '--after', 'a subscription') }),
          }),
        );
        if (opts.json) {
          const items = page.items.map((s) => view(s, 'none', opts.revealHeaders === true));
          return printJson({ items, nextCursor: page.nextCursor });
        }
        if (page.items.length === 0) return console.log('no subscriptions');
        const rows = page.items.map((s) => [s.id, status(s), String(s.failureStreak), s.eventTypes.join(','), s.url]);
        console.log(formatTable(['ID', 'STATUS', 'FAILS', 'EVENTS', 'URL'], rows));
        if (page.nextCursor) console.log(`\nmore: --after ${page.nextCursor}`);
      },
    );

  common(group.command('show'))
    .description('show one subscription')
    .argument('<id>', 'subscription id')
    .option('--reveal-secret', 'also print the signing secret(s)')
    .option('--reveal-headers', 'print custom header values (masked by default: they often hold tokens)')
    .addHelpText(
      'after',
      examples(
        'hookbox subscriptions show $ID --tenant acme',
        'hookbox subscriptions show $ID --tenant acme --reveal-secret --json',
        'hookbox subscriptions show $ID --tenant acme --reveal-headers',
      ),
    )
    .action(async (id: string, opts: Common & { revealSecret?: boolean; revealHeaders?: boolean }) => {
      const ref = { tenantId: opts.tenant, id: subId(id) };
      const sub = await run(opts.databaseUrl, (c) => subscriptions.get(c, ref));
      const secrets = opts.revealSecret ? 'all' : 'none';
      const reveal = opts.revealHeaders === true;
      if (opts.json) return printJson(view(sub, secrets, reveal));
      console.log(details(sub, secrets, reveal));
    });

  common(group.command('update'))
    .description('change a subscription (only the fields given)')
    .argument('<id>', 'subscription id')
    .option('--url <url>', 'new endpoint URL')
    .option('--events <patterns>', 'new comma-separated event-type patterns (replaces all)')
    .addOption(new Option('--description <text>', 'new description').conflicts('clearDescription'))
    .option('--clear-description', 'remove the description')
    .addOption(
      new Option('--header <"Name: value">', 'request header (repeatable; replaces all headers)')
        .argParser(collect)
        .conflicts('clearHeaders'),
    )
    .option('--clear-headers', 'remove all custom headers')
    .option('--max-in-flight <n>', "concurrent requests (1–1000), or 'default' for the relay's")
    .addOption(orderingOnDeadOption())
    .option('--rate-limit <n>', "requests per second (1–10000) across all relays, or 'none' to remove the limit")
    .option('--timeout <dur>', "time allowed per request, e.g. 5s, or 'default' for the relay's")
    .option(
      '--retry-schedule <list>',
      "delays before each retry, e.g. 5s,1m,10m ('none': no retries), or 'default' for the relay's",
    )
    .addHelpText(
      'after',
      examples(
        'hookbox subscriptions update $ID --tenant acme --url https://acme.example/v2/hooks',
        "hookbox subscriptions update $ID --tenant acme --events 'message.*' --header 'X-Api-Key: k2'",
      ),
    )
    .action(
      async (
        id: string,
        opts: Common & {
          url?: string;
          events?: string;
          description?: string;
          clearDescription?: boolean;
          header?: string[];
          clearHeaders?: boolean;
          maxInFlight?: string;
          orderingOnDead?: OrderingOnDead;
          rateLimit?: string;
          timeout?: string;
          retrySchedule?: string;
        },
      ) => {
        const changes = {
          ...(opts.url === undefined ? {} : { url: opts.url }),
          ...(opts.events === undefined ? {} : { eventTypes: parseEvents(opts.events) }),
          ...(opts.description !== undefined ? { description: opts.description } : {}),
          ...(opts.clearDescription ? { description: null } : {}),
          ...(opts.header === undefined ? {} : { headers: parseHeaders(opts.header) }),
          ...(opts.clearHeaders ? { headers: {} } : {}),
          ...(opts.maxInFlight === undefined
            ? {}
            : {
                maxInFlight:
                  opts.maxInFlight === 'default'
                    ? null
                    : parseWholeNumber(opts.maxInFlight, '--max-in-flight', 1, 1000),
              }),
          ...(opts.orderingOnDead === undefined ? {} : { orderingOnDead: opts.orderingOnDead }),
          ...(opts.rateLimit === undefined
            ? {}
            : {
                rateLimit:
                  opts.rateLimit === 'none' ? null : parseWholeNumber(opts.rateLimit, '--rate-limit', 1, 10_000),
              }),
          ...(opts.timeout === undefined
            ? {}
            : { requestTimeoutMs: opts.timeout === 'default' ? null : parseDuration(opts.timeout, '--timeout') }),
          ...(opts.retrySchedule === undefined
            ? {}
            : { retryScheduleMs: opts.retrySchedule === 'default' ? null : parseSchedule(opts.retrySchedule) }),
        };
        if (Object.keys(changes).length === 0) {
          throw new UsageError('update: nothing to change (give --url, --events, --description, --header, …)');
        }
        const ref = { tenantId: opts.tenant, id: subId(id) };
        const sub = await run(opts.databaseUrl, (c) => subscriptions.update(c, { ...ref, ...changes }));
        if (opts.json) return printJson(view(sub, 'none'));
        console.log(`updated subscription ${sub.id}\n\n${details(sub, 'none')}`);
      },
    );

  common(group.command('disable'))
    .description('stop deliveries to a subscription; its pending deliveries are kept and resume on enable')
    .argument('<id>', 'subscription id')
    .option('--reason <text>', 'why (shown by show and list)')
    .addHelpText('after', examples("hookbox subscriptions disable $ID --tenant acme --reason 'endpoint migrating'"))
    .action(async (id: string, opts: Common & { reason?: string }) => {
      const ref = { tenantId: opts.tenant, id: subId(id) };
      const sub = await run(opts.databaseUrl, (c) => subscriptions.disable(c, { ...ref, reason: opts.reason ?? null }));
      if (opts.json) return printJson(view(sub, 'none'));
      console.log(`disabled subscription ${sub.id}${sub.disabledReason ? ` (${sub.disabledReason})` : ''}`);
    });

  common(group.command('enable'))
    .description(
      're-activate a subscription (clears the reason, the failure streak and the circuit breaker) and resume its pending deliveries',
    )
    .argument('<id>', 'subscription id')
    .addHelpText('after', examples('hookbox subscriptions enable $ID --tenant acme'))
    .action(async (id: string, opts: Common) => {
      const ref = { tenantId: opts.tenant, id: subId(id) };
      const { resumedDeliveries, ...sub } = await run(opts.databaseUrl, (c) => subscriptions.enable(c, ref));
      if (opts.json) return printJson({ ...view(sub, 'none'), resumedDeliveries });
      const n = resumedDeliveries;
      console.log(`enabled subscription ${sub.id}; resumed ${n} pending ${n === 1 ? 'delivery' : 'deliveries'}`);
    });

  common(group.command('delete'))
    .description('delete a subscription and its delivery history')
    .argument('<id>', 'subscription id')
    .addHelpText('after', examples('hookbox subscriptions delete $ID --tenant acme'))
    .action(async (id: string, opts: Common) => {
      const ref = { tenantId: opts.tenant, id: subId(id) };
      await run(opts.databaseUrl, (c) => subscriptions.delete(c, ref));
      if (opts.json) return printJson({ id, deleted: true });
      console.log(`deleted subscription ${id}`);
    });

  common(group.command('rotate-secret'))
    .description('make a new signing secret current; the old one keeps signing for --previous-ttl')
    .argument('<id>', 'subscription id')
    .option('--secret <whsec>', 'the new secret; default: generated')
    .option('--previous-ttl <duration>', 'how long the old secret keeps signing (0 to 30d)', '24h')
    .addHelpText(
      'after',
      examples(
        'hookbox subscriptions rotate-secret $ID --tenant acme',
        'hookbox subscriptions rotate-secret $ID --tenant acme --previous-ttl 1h --json',
      ),
    )
    .action(async (id: string, opts: Common & { secret?: string; previousTtl: string }) => {
      const ttl = parseDuration(opts.previousTtl, '--previous-ttl');
      const ref = { tenantId: opts.tenant, id: subId(id) };
      const sub = await run(opts.databaseUrl, (c) =>
        subscriptions.rotateSecret(c, {
          ...ref,
          previousSecretTtlMs: ttl,
          ...(opts.secret === undefined ? {} : { secret: opts.secret }),
        }),
      );
      if (opts.json) return printJson(view(sub, 'current'));
      console.log(
        [
          `rotated the signing secret of subscription ${sub.id}`,
          `new secret: ${sub.secret}`,
          `the previous secret keeps signing until ${formatTime(sub.previousSecretExpiresAt)} (${formatDuration(ttl)})`,
          '',
          SAVE_SECRET_NOTE,
        ].join('\n'),
      );
    });
}
