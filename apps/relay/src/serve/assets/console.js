// The operator console: every tenant. Throughput, success rate, latency, backlog, failing
// endpoints, dead deliveries and per-tenant usage, as charts and tables; each tenant's
// portal one click away. Sign in with an operator API key (hookbox api-keys create).
import { api, badge, credential, fmt, h, loginForm, render, router, showError, statusLine, table } from './app.js';
import { latencyChart, throughputChart, usageChart } from './chart.js';

const RANGES = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3 };

function header() {
  document
    .getElementById('top')
    .replaceChildren(
      h('h1', {}, 'hookbox console'),
      h(
        'nav',
        { 'aria-label': 'Console' },
        h('a', { href: '#/', 'aria-current': 'page' }, 'Overview'),
        h('a', { href: '/openapi.json' }, 'API (OpenAPI)'),
      ),
      h('span', { class: 'who' }, 'Operator: all tenants'),
    );
}

function card(label, value, id) {
  return h('div', { class: 'card', id }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value));
}

async function overview(range) {
  header();
  const span = RANGES[range] ?? RANGES['24h'];
  const since = new Date(Date.now() - span).toISOString();
  const [stats, series, dead] = await Promise.all([
    api('GET', '/v1/stats', { query: { since } }),
    api('GET', '/v1/stats/series', { query: { since } }),
    api('GET', '/v1/deliveries', { query: { status: 'dead', limit: 10 } }),
  ]);
  const attempts = series.points.reduce((s, p) => s + p.attempts, 0);
  const successes = series.points.reduce((s, p) => s + p.successes, 0);
  const backlog = stats.subscriptions.reduce((s, x) => s + x.pending, 0);
  const deadCount = stats.subscriptions.reduce((s, x) => s + x.dead, 0);
  const p95 = Math.max(0, ...stats.subscriptions.map((s) => s.p95Ms ?? 0));
  const failing = stats.subscriptions
    .filter((s) => s.failures > 0 || s.dead > 0 || !s.active)
    .sort((a, b) => (a.successRate ?? 1) - (b.successRate ?? 1) || b.dead - a.dead)
    .slice(0, 10);
  const usage = stats.tenants
    .map((t) => ({ name: t.tenantId, total: t.deliveries, ok: t.succeeded, bad: t.dead }))
    .sort((a, b) => b.total - a.total);
  const rangePicker = h(
    'div',
    { class: 'actions', role: 'group', 'aria-label': 'Time range' },
    Object.keys(RANGES).map((r) =>
      h(
        'a',
        {
          class: `button${r === range ? ' primary' : ''}`,
          href: `#/${r}`,
          'aria-current': r === range ? 'true' : null,
        },
        `Last ${r}`,
      ),
    ),
  );
  const portal = (tenant) => h('a', { href: `/portal?tenant=${encodeURIComponent(tenant)}#/` }, tenant);
  render(
    h('h2', {}, 'Overview'),
    rangePicker,
    h(
      'div',
      { class: 'cards' },
      card('Attempts', fmt.n(attempts), 'card-attempts'),
      card('Success rate', fmt.pct(attempts ? successes / attempts : null), 'card-success'),
      card('Slowest endpoint p95', fmt.ms(p95 || null), 'card-p95'),
      card('Backlog (pending now)', fmt.n(backlog), 'card-backlog'),
      card('Dead deliveries', fmt.n(deadCount), 'card-dead'),
      card('Tenants active', fmt.n(stats.tenants.length), 'card-tenants'),
    ),
    h(
      'div',
      { class: 'grid' },
      h('div', { class: 'panel' }, throughputChart(`Throughput: attempts per ${series.bucket}`, series.points)),
      h('div', { class: 'panel' }, latencyChart(`Latency per ${series.bucket} (p50, p95)`, series.points)),
    ),
    h('div', { class: 'panel' }, usageChart('Deliveries per tenant', usage)),
    h('h3', {}, 'Failing endpoints'),
    h(
      'div',
      { class: 'panel' },
      table(
        'Endpoints with failures, dead deliveries or disabled, worst first',
        ['Tenant', 'URL', 'Status', 'Success', 'p95', 'Dead', 'Pending', 'Last failure'],
        failing.map((s) => [
          portal(s.tenantId),
          h('span', { class: 'url' }, s.url),
          badge(s.active ? 'active' : 'disabled'),
          fmt.pct(s.successRate),
          fmt.ms(s.p95Ms),
          fmt.n(s.dead),
          fmt.n(s.pending),
          fmt.ago(s.lastFailureAt),
        ]),
        { numeric: [3, 4, 5, 6] },
      ),
    ),
    h('h3', {}, 'Latest dead deliveries'),
    h(
      'div',
      { class: 'panel' },
      table(
        'The ten most recent deliveries that ran out of retries',
        ['When', 'Tenant', 'Event', 'URL', 'Attempts', 'Last error'],
        dead.items.map((d) => [
          h(
            'a',
            { href: `/portal?tenant=${encodeURIComponent(d.tenantId)}#/deliveries/${d.id}` },
            fmt.time(d.completedAt ?? d.createdAt),
          ),
          d.tenantId,
          d.eventType,
          h('span', { class: 'url' }, d.url),
          String(d.attempts),
          d.lastStatus ? `HTTP ${d.lastStatus}` : (d.lastError ?? '–'),
        ]),
        { numeric: [4] },
      ),
    ),
    h('h3', {}, 'Tenants'),
    h(
      'div',
      { class: 'panel' },
      table(
        'Usage per tenant in the range; open a tenant to see its portal',
        ['Tenant', 'Events', 'Deliveries', 'Succeeded', 'Dead', 'Pending', 'Attempts'],
        stats.tenants.map((t) => [
          portal(t.tenantId),
          fmt.n(t.events),
          fmt.n(t.deliveries),
          fmt.n(t.succeeded),
          fmt.n(t.dead),
          fmt.n(t.pending),
          fmt.n(t.attempts),
        ]),
        { numeric: [1, 2, 3, 4, 5, 6] },
      ),
    ),
  );
}

let routing = false;

function start() {
  if (!credential()) {
    document.getElementById('top').replaceChildren(h('h1', {}, 'hookbox console'));
    render(
      loginForm({ title: 'Sign in', label: 'Operator API key', hint: '(hookbox api-keys create)', onDone: start }),
    );
    return;
  }
  if (routing) {
    window.dispatchEvent(new HashChangeEvent('hashchange'));
    return;
  }
  routing = true;
  router(async ([range]) => {
    try {
      await overview(range && RANGES[range] ? range : '24h');
    } catch (err) {
      if (err?.status === 401) return start();
      const line = statusLine();
      showError(line, err);
      render(h('h2', {}, 'Something went wrong'), line);
    }
  });
}

start();
