// deploy/monitoring/prometheus-rule.yaml is written from deploy/monitoring/rules.yaml (the one
// source of noma's alerting rules, which promtool tests): the same groups in a PrometheusRule
// of the Prometheus Operator. `npm run gen` writes it; a unit test checks that they agree.
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { format } from 'prettier';
import { parse, stringify } from 'yaml';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const MONITORING_DIR = join(ROOT, 'deploy', 'monitoring');
export const RULES_FILE = join(MONITORING_DIR, 'rules.yaml');
export const PROMETHEUS_RULE_FILE = join(MONITORING_DIR, 'prometheus-rule.yaml');

export interface RuleGroups {
  readonly groups: readonly {
    readonly name: string;
    readonly rules: readonly Record<string, unknown>[];
  }[];
}

export function parseRuleGroups(text: string): RuleGroups {
  const doc = parse(text) as Partial<RuleGroups> | null;
  if (doc?.groups === undefined || !Array.isArray(doc.groups)) {
    throw new Error('a rules file needs a groups: list');
  }
  return { groups: doc.groups };
}

export function prometheusRule(rules: RuleGroups): Record<string, unknown> {
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'noma',
      namespace: 'noma-system',
      labels: { 'app.kubernetes.io/name': 'noma', 'app.kubernetes.io/component': 'monitoring' },
    },
    spec: { groups: rules.groups },
  };
}

const HEADER = [
  '# Written by `npm run gen` from deploy/monitoring/rules.yaml (edit that file, not this one).',
  "# noma's alerts for the Prometheus Operator; runbooks in docs/alerts.md. The Operator picks",
  '# up a PrometheusRule whose labels match its ruleSelector: add yours (e.g. kube-prometheus-',
  "# stack's release: <name>) with `kubectl label` or a kustomize patch.",
  '',
].join('\n');

/** The text of prometheus-rule.yaml for the rules in `rulesText`, as prettier formats it. */
export async function renderPrometheusRule(rulesText: string): Promise<string> {
  const body = stringify(prometheusRule(parseRuleGroups(rulesText)), { lineWidth: 90 });
  return format(HEADER + body, { parser: 'yaml', singleQuote: true, printWidth: 100 });
}

export async function writePrometheusRule(): Promise<void> {
  const text = await renderPrometheusRule(await readFile(RULES_FILE, 'utf8'));
  await writeFile(PROMETHEUS_RULE_FILE, text);
}
