/**
 * The committed operations files: the Prometheus alert rules pass `promtool check rules` and
 * fire (or stay quiet) on the series shapes the relay exports (`promtool test rules`); the
 * Grafana dashboard is valid JSON whose every query parses and only names metrics the relay's
 * real registry exports.
 *
 * promtool comes from the Debian package `prometheus`. When it is missing these checks are
 * skipped with the reason in their titles; CI installs it and sets HOOKBOX_REQUIRE_TOOLS,
 * which makes its absence a failure (test/harness/tools.ts).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createMetricsRegistry, exportedSeriesNames } from '../apps/relay/src/metrics/metrics.js';
import { findTool } from './harness/tools.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ALERTS = join(ROOT, 'ops/prometheus/alerts.yml');
const DASHBOARD = join(ROOT, 'ops/grafana/hookbox-dashboard.json');
const PROMTOOL = findTool('promtool', 'apt-get install -y prometheus');

/** Series names of the relay's real registry, default process metrics included. */
const EXPORTED = exportedSeriesNames(createMetricsRegistry().registry);
/** Prometheus adds `up` for every scrape target itself. */
const PROMETHEUS_OWN = new Set(['up']);

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring']);
const GROUPING = new Set(['group_left', 'group_right', 'inf', 'nan']);

/**
 * The metric names a PromQL expression selects: identifiers that are not functions,
 * keywords, label names (in braces or grouping clauses), strings, durations or numbers.
 */
function metricNamesIn(expr: string): Set<string> {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ');
  const names = new Set<string>();
  for (const m of bare.matchAll(/(?<![\w.:$])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()/g)) {
    const name = m[1]!;
    if (!KEYWORDS.has(name.toLowerCase()) && !GROUPING.has(name.toLowerCase())) names.add(name);
  }
  return names;
}

interface AlertRule {
  alert: string;
  expr: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

function unquote(v: string): string {
  const t = v.trim();
  if (t.startsWith('"')) return JSON.parse(t) as string;
  if (t.startsWith("'")) return t.slice(1, -1).replaceAll("''", "'");
  return t;
}

/**
 * Reads alerts.yml's rules in the narrow YAML shape the file is written in (`expr:` inline or
 * as a `|` block; one-line labels and annotations). promtool parses the real YAML; the test
 * checks both agree on the number of rules.
 */
function parseAlertRules(text: string): AlertRule[] {
  const rules: AlertRule[] = [];
  const lines = text.split('\n');
  let rule: AlertRule | null = null;
  let section: 'labels' | 'annotations' | null = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const start = /^(\s*)- alert: (\S+)\s*$/.exec(line);
    if (start) {
      rule = { alert: start[2]!, expr: '', labels: {}, annotations: {} };
      rules.push(rule);
      section = null;
      continue;
    }
    if (!rule) continue;
    const kv = /^(\s+)([a-z_]+):\s?(.*)$/.exec(line);
    if (!kv) continue;
    const [, indent, key, value] = kv as unknown as [string, string, string, string];
    if (key === 'expr') {
      section = null;
      if (value.trim() === '|') {
        const body: string[] = [];
        while (i + 1 < lines.length && /^\s*$|^\s+/.test(lines[i + 1]!) && lines[i + 1]!.search(/\S/) > indent.length) {
          body.push(lines[++i]!.trim());
        }
        rule.expr = body.join('\n');
      } else {
        rule.expr = unquote(value);
      }
    } else if (key === 'labels' || key === 'annotations') {
      section = key;
    } else if (key === 'for') {
      section = null;
    } else if (section) {
      rule[section][key] = unquote(value);
    }
  }
  return rules;
}

function promtool(args: string[], cwd = ROOT): { status: number | null; out: string } {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

interface Dashboard {
  title: string;
  uid: string;
  panels: { id: number; type: string; title: string; targets?: { refId: string; expr: string }[] }[];
  templating: { list: { name: string; type: string; query?: string | { query: string } }[] };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const queryPanels = dashboard.panels.filter((p) => p.type !== 'row');
const dashboardExprs = queryPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p, ...t })));
const alertsText = readFileSync(ALERTS, 'utf8');
const rules = parseAlertRules(alertsText);

const tmp = mkdtempSync(join(tmpdir(), 'hookbox-ops-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('metricNamesIn (the checker the other tests rely on)', () => {
  it('finds selected metrics and nothing else', () => {
    const expr =
      'histogram_quantile(0.95, sum by (le) (rate(hookbox_x_bucket{job=~"$job",a="b(c) d_total"}[$__rate_interval])))' +
      ' / on() group_left foo_total offset 5m > bool 1e3 and ignoring(instance) time() - bar:rule';
    expect([...metricNamesIn(expr)].sort()).toEqual(['bar:rule', 'foo_total', 'hookbox_x_bucket']);
    expect([...metricNamesIn('max(hookbox_nope_total)')]).toEqual(['hookbox_nope_total']);
  });
});

describe('ops/grafana/hookbox-dashboard.json', () => {
  it('is a dashboard with panels for every view the issue asks for', () => {
    expect(dashboard.uid).toBe('hookbox-relay');
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const titles = queryPanels.map((p) => p.title.toLowerCase()).join(' | ');
    for (const view of ['throughput', 'success rate', 'latency', 'lag', 'backlog', 'failing endpoints', 'tenant']) {
      expect(titles).toContain(view);
    }
    for (const p of queryPanels) {
      expect(p.targets?.length ?? 0, `panel "${p.title}" has no query`).toBeGreaterThan(0);
      for (const t of p.targets ?? []) expect(t.expr.trim(), `panel "${p.title}" ${t.refId}`).not.toBe('');
    }
  });

  it('queries only metrics the relay exports', () => {
    const unknown: string[] = [];
    let seen = 0;
    for (const { panel, refId, expr } of dashboardExprs) {
      for (const name of metricNamesIn(expr)) {
        seen++;
        if (!EXPORTED.has(name)) unknown.push(`${panel.title} ${refId}: ${name}`);
      }
    }
    for (const v of dashboard.templating.list) {
      const q = typeof v.query === 'string' ? v.query : v.query?.query;
      const lv = q && /^label_values\(\s*([a-zA-Z_:][\w:]*)/.exec(q);
      if (lv) {
        seen++;
        if (!EXPORTED.has(lv[1]!)) unknown.push(`variable ${v.name}: ${lv[1]}`);
      }
    }
    expect(unknown).toEqual([]);
    expect(seen).toBeGreaterThan(20);
  });

  it.skipIf(!PROMTOOL.available)(`has queries that all parse as PromQL (promtool)${PROMTOOL.note}`, () => {
    // Each query becomes a recording rule, with Grafana's variables replaced by real values.
    const grafana = (e: string) =>
      e.replaceAll('$__rate_interval', '5m').replaceAll('$__interval', '1m').replaceAll('$job', '.+');
    const file = join(tmp, 'dashboard-rules.yml');
    const recording = dashboardExprs.map(({ panel, refId, expr }) => ({
      record: `hookbox:dashboard:panel_${panel.id}_${refId}`,
      expr: grafana(expr),
    }));
    // JSON is YAML: promtool reads it as a rule file.
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules: recording }] }));
    const r = promtool(['check', 'rules', file]);
    expect(r.out).toContain(`SUCCESS: ${recording.length} rules found`);
    expect(r.status).toBe(0);
  });
});

describe('ops/prometheus/alerts.yml', () => {
  it('has the alerts the issue asks for, each with a severity and a summary', () => {
    const names = rules.map((r) => r.alert);
    expect(new Set(names).size).toBe(names.length);
    for (const required of [
      'HookboxEndpointFailing',
      'HookboxEventBacklogGrowing',
      'HookboxDeadDeliveries',
      'HookboxRelayDown',
      'HookboxFanOutStalled',
      'HookboxDispatchStalled',
      'HookboxCircuitOpen',
      'HookboxSubscriptionAutoDisabled',
    ]) {
      expect(names).toContain(required);
    }
    for (const r of rules) {
      expect(r.expr, r.alert).not.toBe('');
      expect(['critical', 'warning', 'info'], r.alert).toContain(r.labels.severity);
      expect(r.annotations.summary, r.alert).toBeTruthy();
    }
  });

  it('references only metrics the relay exports (and Prometheus’ own `up`)', () => {
    const unknown = rules.flatMap((r) =>
      [...metricNamesIn(r.expr)]
        .filter((n) => !EXPORTED.has(n) && !PROMETHEUS_OWN.has(n))
        .map((n) => `${r.alert}: ${n}`),
    );
    expect(unknown).toEqual([]);
  });

  it.skipIf(!PROMTOOL.available)(`passes promtool check rules${PROMTOOL.note}`, () => {
    const r = promtool(['check', 'rules', 'ops/prometheus/alerts.yml']);
    expect(r.out).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(r.status).toBe(0);
  });

  it.skipIf(!PROMTOOL.available)(
    `fires on a stuck backlog, a failing endpoint and a down relay, and not when healthy${PROMTOOL.note}`,
    () => {
      const annotations = (alert: string, summary: string, description?: string) => ({
        summary,
        description: description ?? rules.find((r) => r.alert === alert)!.annotations.description,
      });
      const relay = 'job="hookbox-relay",instance="relay-a:9464"';
      const test = {
        rule_files: [ALERTS],
        evaluation_interval: '1m',
        tests: [
          {
            // Old pending events while fan-out keeps moving: a backlog, not a stall.
            interval: '1m',
            input_series: [
              { series: `hookbox_oldest_pending_event_age_seconds{${relay}}`, values: '600x20' },
              { series: `hookbox_events_fanned_out_total{${relay},result="matched"}`, values: '0+10x20' },
              { series: `up{${relay}}`, values: '1x20' },
            ],
            alert_rule_test: [
              { eval_time: '4m', alertname: 'HookboxEventBacklogGrowing', exp_alerts: [] },
              {
                eval_time: '6m',
                alertname: 'HookboxEventBacklogGrowing',
                exp_alerts: [
                  {
                    exp_labels: { severity: 'warning' },
                    exp_annotations: annotations(
                      'HookboxEventBacklogGrowing',
                      'hookbox event backlog: oldest pending event is 10m 0s old',
                    ),
                  },
                ],
              },
              { eval_time: '15m', alertname: 'HookboxFanOutStalled', exp_alerts: [] },
              { eval_time: '15m', alertname: 'HookboxRelayDown', exp_alerts: [] },
            ],
          },
          {
            // The same old events and no fan-out at all: stalled.
            interval: '1m',
            input_series: [
              { series: `hookbox_oldest_pending_event_age_seconds{${relay}}`, values: '600x20' },
              { series: `hookbox_events_fanned_out_total{${relay},result="matched"}`, values: '5x20' },
            ],
            alert_rule_test: [
              {
                eval_time: '15m',
                alertname: 'HookboxFanOutStalled',
                exp_alerts: [
                  {
                    exp_labels: { severity: 'critical' },
                    exp_annotations: annotations(
                      'HookboxFanOutStalled',
                      'hookbox relays make no progress on pending events',
                      "Events have waited 10m 0s and no relay fanned out any in 10 minutes. Check the relays' logs and database access.",
                    ),
                  },
                ],
              },
            ],
          },
          {
            // One endpoint failing every attempt, one with a short streak, and a relay that goes down.
            interval: '1m',
            input_series: [
              {
                series: `hookbox_endpoint_failure_streak{${relay},subscription_id="s-bad",tenant="acme"}`,
                values: '12x20',
              },
              {
                series: `hookbox_endpoint_failure_streak{${relay},subscription_id="s-ok",tenant="acme"}`,
                values: '3x20',
              },
              { series: `up{${relay}}`, values: '1 1 1 1 1 0x15' },
            ],
            alert_rule_test: [
              {
                eval_time: '16m',
                alertname: 'HookboxEndpointFailing',
                exp_alerts: [
                  {
                    exp_labels: { severity: 'warning', tenant: 'acme', subscription_id: 's-bad' },
                    exp_annotations: annotations(
                      'HookboxEndpointFailing',
                      'endpoint s-bad of tenant acme failed its last 12 attempts',
                    ),
                  },
                ],
              },
              { eval_time: '5m', alertname: 'HookboxRelayDown', exp_alerts: [] },
              {
                eval_time: '8m',
                alertname: 'HookboxRelayDown',
                exp_alerts: [
                  {
                    exp_labels: { severity: 'critical', job: 'hookbox-relay', instance: 'relay-a:9464' },
                    exp_annotations: annotations('HookboxRelayDown', 'hookbox relay relay-a:9464 is down'),
                  },
                ],
              },
            ],
          },
        ],
      };
      const file = join(tmp, 'alerts.test.yml');
      writeFileSync(file, JSON.stringify(test));
      const r = promtool(['test', 'rules', file]);
      expect(r.out).toContain('SUCCESS');
      expect(r.status, r.out).toBe(0);
    },
  );
});
