// The tenant portal: endpoints (create with the event catalog, edit, disable, rotate the
// secret, send a test, delete), the delivery log with filters and attempt details, retry
// and replay, and a per-endpoint success and latency chart. Embeddable in an iframe:
// open /portal#token=<portal token>.
import {
  announce,
  api,
  badge,
  credential,
  fmt,
  h,
  loginForm,
  render,
  router,
  showError,
  statusLine,
  table,
  viewTenant,
} from './app.js';
import { latencyChart, throughputChart } from './chart.js';

let catalog = null;

async function eventTypes() {
  catalog ??= (await api('GET', '/v1/event-types')).items;
  return catalog;
}

function header(active) {
  const link = (href, text, key) => h('a', { href, 'aria-current': active === key ? 'page' : null }, text);
  document
    .getElementById('top')
    .replaceChildren(
      h('h1', {}, 'Webhooks'),
      h(
        'nav',
        { 'aria-label': 'Portal' },
        link('#/', 'Endpoints', 'endpoints'),
        link('#/deliveries', 'Delivery log', 'deliveries'),
      ),
      viewTenant
        ? h('span', { class: 'who' }, `Operator view of tenant ${viewTenant}`)
        : tokenTenant()
          ? h('span', { class: 'who' }, `Tenant ${tokenTenant()}`)
          : '',
    );
}

/**
 * The tenant a portal token names (`hbp_<base64url JSON>.<signature>`), for display only:
 * whoever opens a link with someone else's token sees whose endpoints these are. The
 * server checks the signature; this reads the payload and trusts nothing.
 */
function tokenTenant() {
  const token = credential();
  if (!token?.startsWith('hbp_')) return null;
  try {
    const body = token.slice(4).split('.')[0].replaceAll('-', '+').replaceAll('_', '/');
    const t = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(body), (c) => c.charCodeAt(0)))).t;
    return typeof t === 'string' ? t : null;
  } catch {
    return null;
  }
}

function fail(err) {
  if (err?.status === 401) return start();
  const line = statusLine();
  showError(line, err);
  render(h('h2', {}, 'Something went wrong'), line, h('p', {}, h('a', { href: '#/' }, 'Back to endpoints')));
}

// ---------------------------------------------------------------------------------------
// Endpoints

async function endpointsView() {
  header('endpoints');
  const [page, stats] = await Promise.all([
    api('GET', '/v1/subscriptions', { query: { limit: 500 } }),
    api('GET', '/v1/stats', { query: { since: new Date(Date.now() - 86400e3).toISOString() } }),
  ]);
  const bySub = new Map(stats.subscriptions.map((s) => [s.subscriptionId, s]));
  render(
    h('h2', {}, 'Endpoints'),
    h('div', { class: 'actions' }, h('a', { class: 'button primary', href: '#/new' }, 'Add endpoint')),
    h(
      'div',
      { class: 'panel' },
      table(
        'Your webhook endpoints (success rate over the last 24 hours)',
        ['URL', 'Events', 'Status', 'Success 24 h', 'Last success'],
        page.items.map((s) => {
          const st = bySub.get(s.id);
          return [
            h('a', { href: `#/endpoints/${s.id}`, class: 'url' }, s.url),
            s.eventTypes.join(', '),
            badge(s.active ? 'active' : 'disabled'),
            fmt.pct(st?.successRate),
            fmt.ago(st?.lastSuccessAt),
          ];
        }),
        { numeric: [3] },
      ),
    ),
  );
}

function typePicker(types, selected) {
  const all = selected.includes('*');
  // What the endpoint has that the catalog does not list (patterns such as `order.*`, types
  // not seen yet) is offered too, ticked: saving an edit must not drop it.
  const known = new Set(types.map((t) => t.type));
  const extra = selected.filter((v) => v !== '*' && !known.has(v));
  const box = (value, text, desc) =>
    h(
      'label',
      {},
      h('input', {
        type: 'checkbox',
        name: 'eventTypes',
        value,
        checked: selected.includes(value) || (all && value === '*'),
      }),
      h('span', {}, h('code', {}, text), desc ? h('span', { class: 'hint' }, ` — ${desc}`) : null),
    );
  return h(
    'fieldset',
    {},
    h('legend', {}, 'Events to receive'),
    h(
      'div',
      { class: 'types' },
      box('*', 'All events', 'including types added later'),
      extra.map((v) => box(v, v, v.endsWith('*') ? `every type under ${v.slice(0, -1)}` : 'subscribed now')),
      types.map((t) => box(t.type, t.type, t.description)),
    ),
  );
}

function chosenTypes(form) {
  const values = [...form.querySelectorAll('input[name="eventTypes"]:checked')].map((i) => i.value);
  return values.includes('*') ? ['*'] : values;
}

function secretPanel(title, secret, next) {
  const code = h('p', { class: 'secret', id: 'secret-value' }, secret);
  const copied = statusLine();
  return [
    h('h2', {}, title),
    h(
      'div',
      { class: 'panel', role: 'alert' },
      h(
        'p',
        {},
        h('strong', {}, 'Signing secret. '),
        'It is shown this once: store it in your receiver now. Verify each webhook with it (Standard Webhooks).',
      ),
      code,
      h(
        'div',
        { class: 'actions' },
        h(
          'button',
          {
            type: 'button',
            onclick: async () => {
              try {
                await navigator.clipboard.writeText(secret);
                copied.textContent = 'Copied.';
              } catch {
                copied.textContent = 'Select the secret and copy it.';
              }
            },
          },
          'Copy secret',
        ),
        h('a', { class: 'button primary', href: next }, 'I have stored it'),
      ),
      copied,
    ),
  ];
}

async function newEndpointView() {
  header('endpoints');
  const types = await eventTypes();
  const line = statusLine();
  const form = h(
    'form',
    {
      class: 'panel',
      onsubmit: async (e) => {
        e.preventDefault();
        const f = e.currentTarget;
        const body = { url: f.url.value.trim(), eventTypes: chosenTypes(f) };
        if (f.description.value.trim()) body.description = f.description.value.trim();
        try {
          const r = await api('POST', '/v1/subscriptions', { body });
          announce('Endpoint created');
          render(secretPanel('Endpoint created', r.secret, `#/endpoints/${r.subscription.id}`));
        } catch (err) {
          showError(line, err);
          if (err.field === 'url') f.url.focus();
        }
      },
    },
    h(
      'div',
      { class: 'field' },
      h(
        'label',
        { for: 'url' },
        'Endpoint URL ',
        h('span', { class: 'hint' }, 'https:// address that receives POST requests'),
      ),
      h('input', { type: 'url', id: 'url', name: 'url', required: true, placeholder: 'https://example.com/webhooks' }),
    ),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'description' }, 'Description ', h('span', { class: 'hint' }, 'optional')),
      h('input', { type: 'text', id: 'description', name: 'description', maxlength: 1000 }),
    ),
    h('div', { class: 'field' }, typePicker(types, [])),
    h(
      'div',
      { class: 'actions' },
      h('button', { class: 'primary', type: 'submit' }, 'Create endpoint'),
      h('a', { class: 'button', href: '#/' }, 'Cancel'),
    ),
    line,
  );
  render(h('h2', {}, 'Add endpoint'), form);
}

async function endpointView(id) {
  header('endpoints');
  const since = new Date(Date.now() - 86400e3).toISOString();
  const [sub, series, deliveries, types] = await Promise.all([
    api('GET', `/v1/subscriptions/${encodeURIComponent(id)}`),
    api('GET', '/v1/stats/series', { query: { subscriptionId: id, since, bucket: '1h' } }),
    api('GET', '/v1/deliveries', { query: { subscriptionId: id, limit: 10 } }),
    eventTypes(),
  ]);
  const line = statusLine();
  const act = (label, fn, cls) =>
    h(
      'button',
      {
        type: 'button',
        class: cls,
        onclick: async (e) => {
          e.currentTarget.disabled = true;
          try {
            await fn();
          } catch (err) {
            showError(line, err);
          } finally {
            e.currentTarget.disabled = false;
          }
        },
      },
      label,
    );
  const testType = h(
    'select',
    { id: 'test-type', 'aria-label': 'Test event type' },
    h('option', { value: '' }, 'hookbox.ping'),
    types.filter((t) => t.inCatalog).map((t) => h('option', { value: t.type }, t.type)),
  );
  const edit = h(
    'form',
    {
      class: 'panel',
      hidden: true,
      onsubmit: async (e) => {
        e.preventDefault();
        const f = e.currentTarget;
        try {
          await api('PATCH', `/v1/subscriptions/${id}`, {
            body: {
              url: f.url.value.trim(),
              description: f.description.value.trim() || null,
              eventTypes: chosenTypes(f),
            },
          });
          announce('Endpoint saved');
          await endpointView(id);
        } catch (err) {
          showError(line, err);
        }
      },
    },
    h('h3', {}, 'Edit endpoint'),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'url' }, 'Endpoint URL'),
      h('input', { type: 'url', id: 'url', name: 'url', required: true, value: sub.url }),
    ),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'description' }, 'Description'),
      h('input', { type: 'text', id: 'description', name: 'description', value: sub.description ?? '' }),
    ),
    h('div', { class: 'field' }, typePicker(types, sub.eventTypes)),
    h('button', { class: 'primary', type: 'submit' }, 'Save'),
  );
  render(
    h('h2', {}, 'Endpoint'),
    h(
      'div',
      { class: 'panel' },
      h(
        'dl',
        { class: 'fields' },
        h('dt', {}, 'URL'),
        h('dd', { class: 'url' }, sub.url),
        h('dt', {}, 'Status'),
        h('dd', {}, badge(sub.active ? 'active' : 'disabled'), sub.disabledReason ? ` ${sub.disabledReason}` : ''),
        h('dt', {}, 'Events'),
        h('dd', {}, sub.eventTypes.join(', ')),
        h('dt', {}, 'Description'),
        h('dd', {}, sub.description ?? '–'),
        h('dt', {}, 'Signing secret'),
        h(
          'dd',
          {},
          sub.rotating
            ? `rotated; the previous one also signs until ${fmt.time(sub.previousSecretExpiresAt)}`
            : 'shown once at creation or rotation',
        ),
        h('dt', {}, 'Created'),
        h('dd', {}, fmt.time(sub.createdAt)),
      ),
      h(
        'div',
        { class: 'actions' },
        testType,
        act(
          'Send test event',
          async () => {
            const type = testType.value;
            const example = types.find((t) => t.type === type)?.example;
            const r = await api('POST', `/v1/subscriptions/${id}/test`, {
              body: type ? { type, ...(example !== undefined ? { payload: example } : {}) } : {},
            });
            line.className = 'status';
            line.replaceChildren(
              'Test event sent: ',
              h('a', { href: `#/deliveries/${r.deliveryId}` }, `delivery ${r.deliveryId}`),
            );
            announce('Test event sent');
          },
          'primary',
        ),
        act('Edit', async () => {
          edit.hidden = !edit.hidden;
          if (!edit.hidden) edit.querySelector('input').focus();
        }),
        sub.active
          ? act('Disable', async () => {
              await api('POST', `/v1/subscriptions/${id}/disable`, { body: { reason: 'disabled in the portal' } });
              announce('Endpoint disabled');
              await endpointView(id);
            })
          : act('Enable', async () => {
              await api('POST', `/v1/subscriptions/${id}/enable`);
              announce('Endpoint enabled');
              await endpointView(id);
            }),
        act('Rotate secret', async () => {
          if (!confirm('Make a new signing secret? The current one keeps signing for 24 hours.')) return;
          const r = await api('POST', `/v1/subscriptions/${id}/rotate-secret`, { body: {} });
          render(secretPanel('Secret rotated', r.secret, `#/endpoints/${id}`));
        }),
        act(
          'Delete',
          async () => {
            if (!confirm('Delete this endpoint and its delivery log?')) return;
            await api('DELETE', `/v1/subscriptions/${id}`);
            announce('Endpoint deleted');
            location.hash = '#/';
          },
          'danger',
        ),
      ),
      line,
    ),
    edit,
    h(
      'div',
      { class: 'grid' },
      h('div', { class: 'panel' }, throughputChart('Attempts per hour, last 24 hours', series.points)),
      h('div', { class: 'panel' }, latencyChart('Response time per hour (p50, p95)', series.points)),
    ),
    h('h3', {}, 'Recent deliveries'),
    h('div', { class: 'panel' }, deliveryTable(deliveries.items, false)),
    h('p', {}, h('a', { href: `#/deliveries?subscriptionId=${id}` }, 'Full delivery log of this endpoint')),
  );
}

// ---------------------------------------------------------------------------------------
// Delivery log

function deliveryTable(items, withUrl = true) {
  return table(
    'Deliveries, newest first',
    ['When', 'Event', ...(withUrl ? ['Endpoint'] : []), 'Status', 'Attempts', 'Last response'],
    items.map((d) => [
      h('a', { href: `#/deliveries/${d.id}` }, fmt.time(d.createdAt)),
      d.eventType,
      ...(withUrl ? [h('span', { class: 'url' }, d.url)] : []),
      badge(d.status),
      String(d.attempts),
      d.lastStatus ? `HTTP ${d.lastStatus}` : (d.lastError ?? '–'),
    ]),
    { numeric: [withUrl ? 4 : 3] },
  );
}

async function deliveriesView(params) {
  header('deliveries');
  const [subs, types] = await Promise.all([api('GET', '/v1/subscriptions', { query: { limit: 500 } }), eventTypes()]);
  const field = (id, label, control) => h('div', { class: 'field' }, h('label', { for: id }, label), control);
  const select = (id, options, value) =>
    h(
      'select',
      { id, name: id },
      options.map(([v, t]) => h('option', { value: v, selected: v === (value ?? '') }, t)),
    );
  const sinceOptions = [
    ['', 'Any time'],
    ['1h', 'Last hour'],
    ['24h', 'Last 24 hours'],
    ['7d', 'Last 7 days'],
  ];
  const form = h(
    'form',
    {
      class: 'filters panel',
      role: 'search',
      onsubmit: (e) => {
        e.preventDefault();
        const q = new URLSearchParams();
        for (const k of ['status', 'eventType', 'subscriptionId', 'since'])
          if (e.currentTarget[k].value) q.set(k, e.currentTarget[k].value);
        location.hash = `#/deliveries?${q}`;
      },
    },
    field(
      'status',
      'Status',
      select(
        'status',
        [
          ['', 'Any'],
          ['succeeded', 'Succeeded'],
          ['pending', 'Pending'],
          ['dead', 'Failed (dead)'],
          ['cancelled', 'Cancelled'],
        ],
        params.get('status'),
      ),
    ),
    field(
      'eventType',
      'Event type',
      select('eventType', [['', 'Any'], ...types.map((t) => [t.type, t.type])], params.get('eventType')),
    ),
    field(
      'subscriptionId',
      'Endpoint',
      select('subscriptionId', [['', 'Any'], ...subs.items.map((s) => [s.id, s.url])], params.get('subscriptionId')),
    ),
    field('since', 'Created', select('since', sinceOptions, params.get('since'))),
    h('button', { type: 'submit', class: 'primary' }, 'Filter'),
  );
  const sinceMs = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3 }[params.get('since') ?? ''];
  const query = {
    status: params.get('status'),
    eventType: params.get('eventType'),
    subscriptionId: params.get('subscriptionId'),
    since: sinceMs ? new Date(Date.now() - sinceMs).toISOString() : undefined,
    limit: 25,
  };
  const holder = h('div', { class: 'panel' });
  const more = h('button', { type: 'button', hidden: true }, 'Load older deliveries');
  const line = statusLine();
  const items = [];
  let cursor = null;
  const load = async () => {
    try {
      const page = await api('GET', '/v1/deliveries', { query: { ...query, cursor } });
      items.push(...page.items);
      cursor = page.nextCursor;
      holder.replaceChildren(deliveryTable(items));
      more.hidden = !cursor;
      announce(`${items.length} deliveries shown`);
    } catch (err) {
      showError(line, err);
    }
  };
  more.addEventListener('click', load);
  render(h('h2', {}, 'Delivery log'), form, holder, h('div', { class: 'actions' }, more), line);
  await load();
}

async function deliveryView(id) {
  header('deliveries');
  const { delivery: d, attempts } = await api('GET', `/v1/deliveries/${encodeURIComponent(id)}`);
  const line = statusLine();
  const retry = async () => {
    try {
      const r = await api('POST', `/v1/deliveries/${d.id}/retry`);
      announce('Retry queued');
      location.hash = `#/deliveries/${r.delivery.id}`;
    } catch (err) {
      showError(line, err);
    }
  };
  const replay = async () => {
    try {
      const r = await api('POST', `/v1/events/${d.eventId}/replay`, { body: { subscriptionId: d.subscriptionId } });
      const next = r.created[0] ?? r.alreadyPending[0];
      announce('Event replayed');
      if (next) location.hash = `#/deliveries/${next.id}`;
    } catch (err) {
      showError(line, err);
    }
  };
  render(
    h('h2', {}, `Delivery ${d.id}`),
    h(
      'div',
      { class: 'panel' },
      h(
        'dl',
        { class: 'fields' },
        h('dt', {}, 'Status'),
        h('dd', {}, badge(d.status)),
        h('dt', {}, 'Event'),
        h('dd', {}, `${d.eventType} (${d.eventId})`),
        h('dt', {}, 'Endpoint'),
        h('dd', {}, h('a', { href: `#/endpoints/${d.subscriptionId}`, class: 'url' }, d.url)),
        h('dt', {}, 'Created'),
        h('dd', {}, fmt.time(d.createdAt)),
        h('dt', {}, d.status === 'pending' ? 'Next attempt' : 'Completed'),
        h('dd', {}, fmt.time(d.status === 'pending' ? d.nextAttemptAt : d.completedAt)),
        d.replayOf
          ? [
              h('dt', {}, 'Replay of'),
              h('dd', {}, h('a', { href: `#/deliveries/${d.replayOf}` }, `delivery ${d.replayOf}`)),
            ]
          : null,
      ),
      h(
        'div',
        { class: 'actions' },
        d.status === 'dead' || d.status === 'cancelled'
          ? h('button', { type: 'button', class: 'primary', onclick: retry }, 'Retry delivery')
          : null,
        h('button', { type: 'button', onclick: replay }, 'Replay event'),
        h('button', { type: 'button', onclick: () => deliveryView(id).catch(fail) }, 'Refresh'),
      ),
      line,
    ),
    h('h3', {}, `Attempts (${attempts.length})`),
    attempts.length === 0 ? h('p', { class: 'muted' }, 'No attempt yet: a relay sends pending deliveries.') : null,
    attempts.map((a, i) =>
      h(
        'details',
        { class: 'attempt', open: i === attempts.length - 1 },
        h(
          'summary',
          {},
          `Attempt ${a.attempt} · ${a.statusCode ? `HTTP ${a.statusCode}` : (a.errorClass ?? 'no response')} · ${fmt.ms(a.durationMs)} · ${fmt.time(a.startedAt)}`,
        ),
        a.errorMessage ? h('p', {}, `Error: ${a.errorMessage}`) : null,
        h('h4', {}, 'Request'),
        h(
          'pre',
          {},
          `${a.request.method} ${a.request.url}\n${Object.entries(a.request.headers)
            .map(([k, v]) => `${k}: ${v}`)
            .join('\n')}`,
        ),
        h('h4', {}, 'Response (first bytes)'),
        h('pre', {}, a.responseExcerpt || '(empty)'),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------

let routing = false;

function start() {
  if (!credential()) {
    document.getElementById('top').replaceChildren(h('h1', {}, 'Webhooks'));
    render(
      loginForm({
        title: 'Open the webhook portal',
        label: 'Portal token',
        hint: '(from your app, or hookbox portal-token)',
        onDone: () => start(),
      }),
    );
    return;
  }
  if (routing) {
    window.dispatchEvent(new HashChangeEvent('hashchange'));
    return;
  }
  routing = true;
  router(async (parts) => {
    const [where, id] = parts;
    const query = new URLSearchParams(location.hash.split('?')[1] ?? '');
    try {
      if (!where) await endpointsView();
      else if (where === 'new') await newEndpointView();
      else if (where === 'endpoints' && id) await endpointView(id);
      else if (where.startsWith('deliveries') && id) await deliveryView(id.split('?')[0]);
      else if (where.startsWith('deliveries')) await deliveriesView(query);
      else location.hash = '#/';
    } catch (err) {
      fail(err);
    }
  });
}

start();
