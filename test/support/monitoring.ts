// What deploy/monitoring/ queries, and what noma's /metrics offers: the metric names and label
// names of PromQL expressions (rules, the dashboard), of promtool test series, and of an
// exposition (a real /metrics) or a prom-client registry, so that tests can check one against
// the other. Imports nothing from vitest.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Registry } from 'prom-client';
import { parse } from 'yaml';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const MONITORING_DIR = join(ROOT, 'deploy', 'monitoring');
export const PROMTOOL_TESTS_DIR = join(MONITORING_DIR, 'tests');

/** Labels Prometheus adds to what it scrapes (target labels): never in /metrics itself. */
export const TARGET_LABELS = new Set([
  'job',
  'instance',
  'namespace',
  'pod',
  'service',
  'endpoint',
  'container',
]);

/** The metrics a source offers: name → label names (histograms also as _bucket/_sum/_count). */
export type MetricCatalog = ReadonlyMap<string, ReadonlySet<string>>;

export interface Rule {
  readonly alert?: string;
  readonly record?: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}

export function ruleGroups(): { name: string; rules: Rule[] }[] {
  const doc = parse(readFileSync(join(MONITORING_DIR, 'rules.yaml'), 'utf8')) as {
    groups: { name: string; rules: Rule[] }[];
  };
  return doc.groups;
}

export const alertRules = (): Rule[] => ruleGroups().flatMap((g) => g.rules);

export interface DashboardTarget {
  readonly expr?: string;
  readonly datasource?: { type?: string; uid?: string };
}
export interface DashboardPanel {
  readonly id?: number;
  readonly type: string;
  readonly title?: string;
  readonly datasource?: { type?: string; uid?: string };
  readonly targets?: DashboardTarget[];
  readonly panels?: DashboardPanel[];
}
export interface Dashboard {
  readonly title?: string;
  readonly uid?: string;
  readonly panels: DashboardPanel[];
  readonly templating?: { list: { name: string; type: string; query?: string }[] };
}

export function dashboardText(): string {
  return readFileSync(join(MONITORING_DIR, 'grafana-dashboard.json'), 'utf8');
}

/** Every panel, those inside collapsed rows too. */
export function allPanels(d: Dashboard): DashboardPanel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

export function dashboardExprs(d: Dashboard): string[] {
  return allPanels(d).flatMap((p) => (p.targets ?? []).flatMap((t) => t.expr ?? []));
}

const METRIC_RE = /\bnoma_[a-zA-Z0-9_]+\b/g;

/** noma metric names an expression reads. */
export function exprMetrics(expr: string): string[] {
  return [...new Set(expr.match(METRIC_RE) ?? [])];
}

/**
 * The label names an expression uses: those of its selectors' matchers (per metric) and of its
 * by/without clauses (for the expression as a whole).
 */
export function exprLabels(expr: string): {
  selectors: { metric: string; labels: string[] }[];
  grouping: string[];
} {
  const selectors = [...expr.matchAll(/\b(noma_[a-zA-Z0-9_]+)\s*\{([^}]*)\}/g)].map((m) => ({
    metric: m[1] ?? '',
    labels: [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map(
      (l) => l[1] ?? '',
    ),
  }));
  const grouping = [...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) =>
    (m[1] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  );
  return { selectors, grouping };
}

/** The input series of the promtool tests: metric name and label names (target labels out). */
export function promtoolSeries(): { file: string; metric: string; labels: string[] }[] {
  const files = readdirSync(PROMTOOL_TESTS_DIR).filter((f) => f.endsWith('.yaml'));
  return files.flatMap((file) => {
    const doc = parse(readFileSync(join(PROMTOOL_TESTS_DIR, file), 'utf8')) as {
      tests: { input_series?: { series: string }[] }[];
    };
    return doc.tests.flatMap((t) =>
      (t.input_series ?? []).map((s) => {
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$/.exec(s.series.trim());
        if (m === null) throw new Error(`${file}: cannot read series ${s.series}`);
        const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)]
          .map((l) => l[1] ?? '')
          .filter((l) => !TARGET_LABELS.has(l));
        return { file, metric: m[1] ?? '', labels };
      }),
    );
  });
}

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The samples of a text exposition (what /metrics answers). */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (m === null) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1] ?? ''] = l[2] ?? '';
    }
    out.push({ name: m[1] ?? '', labels, value: Number(m[3]) });
  }
  return out;
}

/** The catalog of an exposition: every name with a TYPE line or a sample, and the label names seen. */
export function catalogOfExposition(text: string): MetricCatalog {
  const catalog = new Map<string, Set<string>>();
  const add = (name: string, labels: readonly string[]) => {
    const set = catalog.get(name) ?? new Set<string>();
    for (const l of labels) set.add(l);
    catalog.set(name, set);
  };
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [name, type] = [m[1] ?? '', m[2] ?? ''];
    add(name, []);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) add(name + s, []);
  }
  for (const s of parseExposition(text)) add(s.name, Object.keys(s.labels));
  return catalog;
}

/** The catalog of a prom-client registry: what its /metrics would offer, samples or not. */
export function catalogOfRegistry(registry: Registry): MetricCatalog {
  const catalog = new Map<string, Set<string>>();
  for (const m of registry.getMetricsAsArray()) {
    const labels = (m as { labelNames?: readonly string[] }).labelNames ?? [];
    catalog.set(m.name, new Set(labels));
    // prom-client's typings say an enum; at run time it is the exposition's type name.
    if (String(m.type) === 'histogram') {
      catalog.set(`${m.name}_bucket`, new Set([...labels, 'le']));
      for (const s of ['_sum', '_count']) catalog.set(m.name + s, new Set(labels));
    }
  }
  return catalog;
}

/**
 * What `expr` reads that `catalog` does not offer: unknown metrics, selector labels a metric
 * does not have, by/without labels none of its metrics has. Empty when all is there.
 */
export function missingFrom(catalog: MetricCatalog, expr: string): string[] {
  const problems: string[] = [];
  const metrics = exprMetrics(expr);
  for (const m of metrics) if (!catalog.has(m)) problems.push(`metric ${m}`);
  const { selectors, grouping } = exprLabels(expr);
  for (const s of selectors) {
    for (const l of s.labels) {
      if (catalog.get(s.metric)?.has(l) === false) problems.push(`label ${l} of ${s.metric}`);
    }
  }
  for (const l of grouping) {
    if (TARGET_LABELS.has(l)) continue;
    if (!metrics.some((m) => catalog.get(m)?.has(l) === true)) {
      problems.push(`label ${l} (by/without) of ${metrics.join(', ')}`);
    }
  }
  return problems;
}

/** GitHub's anchor of a Markdown heading: lower case, punctuation out, spaces to dashes. */
export function githubAnchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}
