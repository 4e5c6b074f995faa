// Shared by the console and the portal: the credential, the API client, a tiny DOM
// builder (text only: data never becomes HTML), formatting and a hash router.

const STORE = 'hookbox.credential';

/**
 * The bearer credential. It arrives in the URL fragment (#token=… or #key=…), which
 * browsers never send to a server; it is moved to sessionStorage (this tab only) and
 * removed from the address bar and history at once.
 */
export function credential() {
  const m = /^#(?:token|key)=([A-Za-z0-9_.-]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(STORE, m[1]);
    history.replaceState(null, '', `${location.pathname + location.search}#/`);
  }
  return sessionStorage.getItem(STORE);
}

export function setCredential(value) {
  if (value) sessionStorage.setItem(STORE, value);
  else sessionStorage.removeItem(STORE);
}

/** An operator looking at one tenant's portal: /portal?tenant=acme. */
export const viewTenant = new URLSearchParams(location.search).get('tenant');

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = error?.code ?? 'internal';
    this.field = error?.field;
  }
}

/** Calls the API with the credential; resolves to the JSON answer or throws ApiError. */
export async function api(method, path, { query, body } = {}) {
  const params = new URLSearchParams();
  if (viewTenant) params.set('tenant', viewTenant);
  for (const [k, v] of Object.entries(query ?? {}))
    if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  const qs = params.toString();
  const headers = { authorization: `Bearer ${sessionStorage.getItem(STORE) ?? ''}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path + (qs ? `?${qs}` : ''), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'omit',
    cache: 'no-store',
  });
  if (res.status === 204) return undefined;
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    if (res.status === 401) setCredential(null);
    throw new ApiError(res.status, data.error);
  }
  return data;
}

/** h('a', { href, class: 'x', onclick }, 'text', child…): children are text or nodes. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces the main region's content and moves focus to its heading (for screen readers). */
export function render(...nodes) {
  const main = document.getElementById('main');
  main.replaceChildren(
    ...nodes.flat(Number.POSITIVE_INFINITY).filter((n) => n !== null && n !== undefined && n !== false),
  );
  const heading = main.querySelector('h2');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
}

export function announce(text) {
  const el = document.getElementById('announce');
  el.textContent = '';
  setTimeout(() => {
    el.textContent = text;
  }, 30);
}

export function statusLine() {
  return h('p', { class: 'status', role: 'status', 'aria-live': 'polite' });
}

export function showError(line, err) {
  line.className = 'status error';
  line.textContent = err instanceof ApiError ? `${err.message} (${err.code})` : String(err?.message ?? err);
}

export const fmt = {
  time(iso) {
    if (!iso) return '–';
    const d = new Date(iso);
    return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  },
  ago(iso) {
    if (!iso) return 'never';
    const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    if (s < 60) return `${Math.max(s, 0)} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  },
  ms(v) {
    return v === null || v === undefined ? '–' : `${Math.round(v)} ms`;
  },
  pct(v) {
    return v === null || v === undefined ? '–' : `${(v * 100).toFixed(1)} %`;
  },
  n(v) {
    return new Intl.NumberFormat().format(v ?? 0);
  },
};

export function badge(status) {
  return h('span', { class: `badge ${status}` }, status);
}

export function table(caption, headers, rows, { numeric = [] } = {}) {
  return h(
    'table',
    {},
    h('caption', {}, caption),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        headers.map((t, i) => h('th', { scope: 'col', class: numeric.includes(i) ? 'num' : null }, t)),
      ),
    ),
    h(
      'tbody',
      {},
      rows.length === 0
        ? h('tr', {}, h('td', { colspan: headers.length, class: 'muted' }, 'Nothing yet.'))
        : rows.map((r) =>
            h(
              'tr',
              {},
              r.map((c, i) => h('td', { class: numeric.includes(i) ? 'num' : null }, c)),
            ),
          ),
    ),
  );
}

/** `#/a/b` → ['a', 'b']; calls `onRoute(parts)` now and on every change. */
export function router(onRoute) {
  const go = () => onRoute(location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent));
  window.addEventListener('hashchange', go);
  go();
}

/** The sign-in form shown when no (valid) credential is stored. */
export function loginForm({ title, label, hint, onDone }) {
  const input = h('input', {
    type: 'password',
    id: 'credential',
    autocomplete: 'off',
    required: true,
    spellcheck: 'false',
  });
  const line = statusLine();
  return h(
    'div',
    { class: 'login panel' },
    h('h2', {}, title),
    h(
      'form',
      {
        onsubmit: (e) => {
          e.preventDefault();
          setCredential(input.value.trim());
          onDone();
        },
      },
      h(
        'div',
        { class: 'field' },
        h('label', { for: 'credential' }, label, ' ', h('span', { class: 'hint' }, hint)),
        input,
      ),
      h('button', { class: 'primary', type: 'submit' }, 'Sign in'),
      line,
    ),
  );
}
