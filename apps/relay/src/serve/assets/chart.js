// Small SVG charts, no library: stacked bars (successes and failures per bucket), lines
// (latency percentiles) and horizontal bars (per-tenant usage). Each chart is an image
// with a text summary for screen readers, and a hidden data table.

const NS = 'http://www.w3.org/2000/svg';
const W = 560;
const H = 220;
const PAD = { l: 56, r: 12, t: 10, b: 26 };

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function frame(label, max, unit, points) {
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label });
  root.append(svg('title', {}, label));
  const ih = H - PAD.t - PAD.b;
  for (const f of [0, 0.5, 1]) {
    const y = PAD.t + ih - f * ih;
    root.append(svg('line', { class: 'axis', x1: PAD.l, x2: W - PAD.r, y1: y, y2: y }));
    const v = max * f;
    root.append(
      svg('text', { x: PAD.l - 6, y: y + 4, 'text-anchor': 'end' }, `${Number.isInteger(v) ? v : v.toFixed(1)}${unit}`),
    );
  }
  const n = points.length;
  const iw = W - PAD.l - PAD.r;
  for (const i of [0, Math.floor(n / 2), n - 1]) {
    if (i < 0 || !points[i]) continue;
    const x = PAD.l + ((i + 0.5) * iw) / n;
    const t = new Date(points[i].t);
    root.append(
      svg(
        'text',
        { x, y: H - 6, 'text-anchor': 'middle' },
        t.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' }),
      ),
    );
  }
  return { root, ih, iw };
}

function dataTable(caption, headers, rows) {
  const t = document.createElement('table');
  t.className = 'visually-hidden';
  const cap = document.createElement('caption');
  cap.textContent = caption;
  t.append(cap);
  const tr = document.createElement('tr');
  for (const head of headers) {
    const th = document.createElement('th');
    th.textContent = head;
    tr.append(th);
  }
  t.append(tr);
  for (const r of rows) {
    const row = document.createElement('tr');
    for (const c of r) {
      const td = document.createElement('td');
      td.textContent = String(c);
      row.append(td);
    }
    t.append(row);
  }
  return t;
}

function legend(items) {
  const div = document.createElement('div');
  div.className = 'legend';
  for (const [cls, text] of items) {
    const span = document.createElement('span');
    const sw = document.createElement('span');
    sw.className = `swatch ${cls}`;
    span.append(sw, text);
    div.append(span);
  }
  return div;
}

/** Attempts per bucket: successes (green) stacked under failures (red). */
export function throughputChart(title, points) {
  const total = points.reduce((s, p) => s + p.attempts, 0);
  const failed = points.reduce((s, p) => s + p.failures, 0);
  const label = `${title}: ${total} attempts, ${failed} failed, in ${points.length} buckets`;
  const max = niceMax(Math.max(0, ...points.map((p) => p.attempts)));
  const { root, ih, iw } = frame(label, max, '', points);
  const bw = iw / Math.max(points.length, 1);
  points.forEach((p, i) => {
    const x = PAD.l + i * bw + bw * 0.1;
    const okH = (p.successes / max) * ih;
    const badH = (p.failures / max) * ih;
    if (okH > 0) root.append(svg('rect', { class: 'ok', x, y: PAD.t + ih - okH, width: bw * 0.8, height: okH }));
    if (badH > 0)
      root.append(svg('rect', { class: 'bad', x, y: PAD.t + ih - okH - badH, width: bw * 0.8, height: badH }));
  });
  const wrap = document.createElement('figure');
  wrap.className = 'chart';
  wrap.dataset.chart = 'throughput';
  const cap = document.createElement('figcaption');
  cap.textContent = title;
  wrap.append(
    cap,
    root,
    legend([
      ['ok', 'succeeded'],
      ['bad', 'failed'],
    ]),
  );
  wrap.append(
    dataTable(
      title,
      ['bucket', 'attempts', 'failed'],
      points.filter((p) => p.attempts).map((p) => [p.t, p.attempts, p.failures]),
    ),
  );
  return wrap;
}

/** p50 and p95 attempt latency per bucket, as lines (gaps where there were no attempts). */
export function latencyChart(title, points) {
  const withData = points.filter((p) => p.p95Ms !== null);
  const worst = Math.max(0, ...withData.map((p) => p.p95Ms));
  const label = `${title}: p95 up to ${worst} ms over ${withData.length} buckets with attempts`;
  const max = niceMax(worst);
  const { root, ih, iw } = frame(label, max, ' ms', points);
  const n = Math.max(points.length, 1);
  for (const [key, cls] of [
    ['p50Ms', 'line-p50'],
    ['p95Ms', 'line-p95'],
  ]) {
    let d = '';
    let pen = false;
    points.forEach((p, i) => {
      const v = p[key];
      if (v === null) {
        pen = false;
        return;
      }
      const x = PAD.l + ((i + 0.5) * iw) / n;
      const y = PAD.t + ih - (v / max) * ih;
      d += `${pen ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)} `;
      pen = true;
    });
    if (d) root.append(svg('path', { class: cls, d }));
    // A lone point draws no line: mark it.
    points.forEach((p, i) => {
      const v = p[key];
      const prev = points[i - 1]?.[key] ?? null;
      const next = points[i + 1]?.[key] ?? null;
      if (v !== null && prev === null && next === null) {
        root.append(
          svg('circle', { class: cls, cx: PAD.l + ((i + 0.5) * iw) / n, cy: PAD.t + ih - (v / max) * ih, r: 3 }),
        );
      }
    });
  }
  const wrap = document.createElement('figure');
  wrap.className = 'chart';
  wrap.dataset.chart = 'latency';
  const cap = document.createElement('figcaption');
  cap.textContent = title;
  wrap.append(
    cap,
    root,
    legend([
      ['p50', 'p50'],
      ['p95', 'p95'],
    ]),
  );
  wrap.append(
    dataTable(
      title,
      ['bucket', 'p50 ms', 'p95 ms'],
      withData.map((p) => [p.t, p.p50Ms, p.p95Ms]),
    ),
  );
  return wrap;
}

/** Horizontal bars: one per row, succeeded (green) and dead (red) of its deliveries. */
export function usageChart(title, rows) {
  const top = rows.slice(0, 12);
  const label = `${title}: ${top.map((r) => `${r.name} ${r.total}`).join(', ') || 'no data'}`;
  const rowH = 24;
  const height = Math.max(1, top.length) * rowH + 10;
  const root = svg('svg', { viewBox: `0 0 ${W} ${height}`, role: 'img', 'aria-label': label });
  root.append(svg('title', {}, label));
  const max = niceMax(Math.max(0, ...top.map((r) => r.total)));
  const left = 160;
  const iw = W - left - 60;
  top.forEach((r, i) => {
    const y = 5 + i * rowH;
    root.append(
      svg(
        'text',
        { x: left - 8, y: y + 15, 'text-anchor': 'end' },
        r.name.length > 20 ? `${r.name.slice(0, 19)}…` : r.name,
      ),
    );
    const okW = (r.ok / max) * iw;
    const badW = (r.bad / max) * iw;
    const restW = ((r.total - r.ok - r.bad) / max) * iw;
    root.append(svg('rect', { class: 'ok', x: left, y, width: Math.max(okW, 0), height: rowH - 8 }));
    root.append(svg('rect', { class: 'bad', x: left + okW, y, width: Math.max(badW, 0), height: rowH - 8 }));
    root.append(svg('rect', { class: 'bar', x: left + okW + badW, y, width: Math.max(restW, 0), height: rowH - 8 }));
    root.append(svg('text', { x: left + okW + badW + restW + 6, y: y + 13 }, r.total));
  });
  const wrap = document.createElement('figure');
  wrap.className = 'chart';
  wrap.dataset.chart = 'usage';
  const cap = document.createElement('figcaption');
  cap.textContent = title;
  wrap.append(
    cap,
    root,
    legend([
      ['ok', 'succeeded'],
      ['bad', 'dead'],
      ['p50', 'other'],
    ]),
  );
  wrap.append(
    dataTable(
      title,
      ['tenant', 'deliveries', 'succeeded', 'dead'],
      top.map((r) => [r.name, r.total, r.ok, r.bad]),
    ),
  );
  return wrap;
}
