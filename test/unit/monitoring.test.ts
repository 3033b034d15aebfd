// deploy/monitoring/ as files: the PrometheusRule carries exactly the groups of rules.yaml; every
// alert has a severity, a summary and a runbook section in docs/alerts.md; the Grafana
// dashboard is valid JSON with a datasource variable that every panel uses; and every metric
// and label that the rules and the dashboard query is offered by the coordinator's registry,
// built from the real components as coordinator/main.ts builds it (the integration test
// monitoring.test.ts checks the same against a running coordinator's /metrics).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import pLimit from 'p-limit';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { webhookNotifier } from '../../coordinator/actions/notify.js';
import { DowntimeWatch } from '../../coordinator/downtime/watch.js';
import { kubeEventRecorder } from '../../coordinator/events.js';
import { GpuHealthTainter } from '../../coordinator/gpu-health/tainter.js';
import { kubeEndpointReviewer } from '../../coordinator/http-endpoints.js';
import { authenticateAgent, kubeAuthDeps } from '../../coordinator/link/auth.js';
import { AgentLinkServer } from '../../coordinator/link/server.js';
import { createMetrics } from '../../coordinator/metrics.js';
import { generateDevCerts } from '../../shared/dev-certs.js';
import { EndpointAuthorizer } from '../../shared/endpoint-auth.js';
import { createLogger } from '../../shared/log.js';
import { renderPrometheusRule } from '../../tools/monitoring/prometheus-rule.js';
import {
  alertRules,
  allPanels,
  catalogOfRegistry,
  dashboardExprs,
  dashboardText,
  githubAnchor,
  missingFrom,
  MONITORING_DIR,
  promtoolSeries,
  ROOT,
  ruleGroups,
  type Dashboard,
  type MetricCatalog,
} from '../support/monitoring.js';

/** A KubeConfig that is never contacted: the components only build their clients. */
function offlineKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'none', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
    users: [{ name: 'none' }],
    contexts: [{ name: 'none', cluster: 'none', user: 'none' }],
    currentContext: 'none',
  });
  return kc;
}

let link: AgentLinkServer | undefined;
let catalog: MetricCatalog;

/** The leader's registry with everything main.ts registers on it (link, downtime, GPU taint, auth). */
beforeAll(async () => {
  const kc = offlineKubeConfig();
  const log = createLogger('monitoring-test', 'silent');
  const metrics = createMetrics(() => undefined, {
    isLeader: () => true,
    identity: 'test',
    nodes: () => ({ list: () => [] }),
    link: () => link,
    tierLabel: 'hardware.tier',
  });
  const registry: Registry = metrics.registry;
  const certs = await generateDevCerts();
  link = new AgentLinkServer({
    log,
    port: 0,
    tls: { cert: certs.cert, key: certs.key },
    heartbeatMs: 60_000,
    registry,
    authenticate: (token) =>
      authenticateAgent(
        token,
        { audience: 'noma.dev', serviceAccount: 'noma-system/noma-agent' },
        kubeAuthDeps(kc),
      ),
  });
  const cache = { list: () => [], synced: () => Promise.resolve() };
  const events = kubeEventRecorder(kc, log);
  new DowntimeWatch({
    kc,
    log,
    cache,
    config: {
      afterMs: 600_000,
      settleMs: 60_000,
      maxNodes: { percent: 10 },
      taint: { key: 'noma.dev/unreachable', effect: 'NoExecute' },
    },
    registry,
    events,
    notifier: webhookNotifier({ url: undefined }),
    agents: { isConnected: () => false, hasConnected: () => false },
    limit: pLimit(1),
  });
  new GpuHealthTainter({
    kc,
    log,
    cache,
    taint: { key: 'noma.dev/gpu-degraded', effect: 'NoSchedule' },
    registry,
    events,
  });
  new EndpointAuthorizer({ reviewer: kubeEndpointReviewer(kc), registry });
  catalog = catalogOfRegistry(registry);
});

afterAll(async () => {
  await link?.close();
});

describe('deploy/monitoring/rules.yaml and prometheus-rule.yaml', () => {
  const rulesText = readFileSync(join(MONITORING_DIR, 'rules.yaml'), 'utf8');
  const committed = readFileSync(join(MONITORING_DIR, 'prometheus-rule.yaml'), 'utf8');

  it('the PrometheusRule carries exactly the groups of rules.yaml', () => {
    const rule = parse(committed) as { kind: string; apiVersion: string; spec: unknown };
    expect(rule.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(rule.kind).toBe('PrometheusRule');
    expect(rule.spec).toEqual({ groups: (parse(rulesText) as { groups: unknown }).groups });
  });

  it('is what `npm run gen` writes (run it after editing rules.yaml)', async () => {
    expect(committed).toBe(await renderPrometheusRule(rulesText));
  });

  it('has the issue’s alerts, the seed’s NodeMissingLabels first', () => {
    const names = alertRules().map((r) => r.alert);
    expect(names[0]).toBe('NodeMissingLabels');
    expect(names).toEqual(
      expect.arrayContaining([
        'NomaMaintenanceHalted',
        'NomaDrainBlocked',
        'NomaNodeStuck',
        'NomaUnplannedDowntime',
        'NomaGPUDegraded',
        'NomaAgentDisconnected',
        'NomaLinkRefusalsRising',
        'NomaLeaderMissing',
      ]),
    );
    expect(new Set(names).size).toBe(names.length);
  });

  const docs = readFileSync(join(ROOT, 'docs', 'alerts.md'), 'utf8');
  const anchors = new Set(
    [...docs.matchAll(/^#{2,3} (.+)$/gm)].map((m) => githubAnchor(m[1] ?? '')),
  );

  it.each(alertRules().map((r) => [r.alert ?? '?', r] as const))(
    '%s: severity, summary, description, a runbook section in docs/alerts.md',
    (name, rule) => {
      expect(['warning', 'critical']).toContain(rule.labels?.['severity']);
      expect(rule.annotations?.['summary']).toBeTruthy();
      expect(rule.annotations?.['description']).toBeTruthy();
      const anchor = name.toLowerCase();
      expect(rule.annotations?.['runbook_url']).toBe(`docs/alerts.md#${anchor}`);
      expect(anchors).toContain(anchor);
    },
  );

  it('every metric and label a rule queries is in the coordinator’s registry', () => {
    const problems = alertRules().flatMap((r) => {
      const queried = [r.expr, ...Object.values(r.annotations ?? {})].join('\n');
      return missingFrom(catalog, queried).map((p) => `${r.alert ?? '?'}: ${p}`);
    });
    expect(problems).toEqual([]);
  });

  it('every series of the promtool tests is a metric of the registry, with its labels', () => {
    const series = promtoolSeries();
    expect(series.length).toBeGreaterThan(10);
    const problems = series.flatMap((s) => {
      const labels = catalog.get(s.metric);
      if (labels === undefined) return [`${s.file}: metric ${s.metric}`];
      return s.labels.filter((l) => !labels.has(l)).map((l) => `${s.file}: ${s.metric}{${l}}`);
    });
    expect(problems).toEqual([]);
  });

  it('has every group name once', () => {
    const names = ruleGroups().map((g) => g.name);
    expect(new Set(names).size).toBe(names.length);
  });
});

describe('deploy/monitoring/grafana-dashboard.json', () => {
  const text = dashboardText();

  it('is valid JSON with a uid and a title', () => {
    const d = JSON.parse(text) as Dashboard;
    expect(d.uid).toBeTruthy();
    expect(d.title).toBeTruthy();
  });

  const dashboard = JSON.parse(text) as Dashboard;
  const queryPanels = allPanels(dashboard).filter((p) => p.type !== 'row');

  it('has a datasource variable of type datasource (Prometheus)', () => {
    const v = dashboard.templating?.list.find((x) => x.name === 'datasource');
    expect(v).toMatchObject({ type: 'datasource', query: 'prometheus' });
  });

  it('every panel and every query uses ${datasource}, none a fixed data source', () => {
    expect(queryPanels.length).toBeGreaterThan(10);
    for (const p of queryPanels) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets ?? []) {
        expect(t.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      }
    }
    // No data source by name or uid anywhere else in the file.
    expect(text.match(/"uid": "(?!\$\{datasource\}|noma-fleet)[^"]*"/g) ?? []).toEqual([]);
  });

  it('shows what the issue asks: fleet by tier and GPU, phases, drains, PDB refusals, agents, link errors', () => {
    const exprs = dashboardExprs(dashboard).join('\n');
    for (const want of [
      'sum by (tier, gpu_sku) (noma_nodes)',
      'noma_maintenances',
      'noma_drain_duration_seconds_bucket',
      'noma_drain_events_total',
      'noma_agents_connected',
      'noma_link_upgrades_refused_total',
      'noma_agent_frames_rejected_total',
    ]) {
      expect(exprs).toContain(want);
    }
  });

  it('every metric and label it queries is in the coordinator’s registry', () => {
    const problems = queryPanels.flatMap((p) =>
      (p.targets ?? []).flatMap((t) =>
        missingFrom(catalog, t.expr ?? '').map((x) => `${p.title ?? '?'}: ${x}`),
      ),
    );
    expect(problems).toEqual([]);
    for (const p of queryPanels) {
      for (const t of p.targets ?? []) expect(t.expr, p.title).toMatch(/noma_/);
    }
  });
});
