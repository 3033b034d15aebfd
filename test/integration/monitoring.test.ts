// deploy/monitoring/ against the real thing: a coordinator (the real process, its agent link,
// unplanned downtime and degraded-GPU taint on) is brought into the states the alerts are about
// — a Halted maintenance, a drain blocked by a PDB and Stuck, a node missing its tier label, a
// degraded GPU, an agent that disconnected, a node down and tainted, link refusals of the three
// kinds — and its /metrics is scraped. Every series the rules, their promtool tests and the
// Grafana dashboard use must be there with their labels; then `promtool check rules` and
// `promtool test rules` (promtool built from the Prometheus Go module, tools/promtool) pass; the
// dashboard's metric names are all there too. A
// standby of the same Lease shows noma_leader 0 and none of the fleet.
import { createGuardedPod } from '../support/drain-fixtures.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFailed } from 'vitest';
import { AGENT_LINK_PATH, encode } from '../../shared/protocol.js';
import { ensurePromtool, promtool } from '../../tools/promtool/promtool.js';
import { startAgent, type AgentProcess } from '../support/agent-process.js';
import {
  startCoordinator,
  testCoordinatorArgs,
  type CoordinatorProcess,
} from '../support/coordinator-process.js';
import { installCRD } from '../support/crd.js';
import {
  adminKubeConfig,
  createNamespace,
  createNotReadyNode,
  createSimNode,
  deleteSimNode,
  uniqueName,
  waitFor,
} from '../support/kube.js';
import {
  AGENT_SA,
  ensureServiceAccount,
  freePort,
  nodeBoundToken,
  writeLinkTls,
  type LinkTls,
} from '../support/link.js';
import { maintenances } from '../support/maintenance.js';
import {
  alertRules,
  catalogOfExposition,
  dashboardExprs,
  dashboardText,
  exprMetrics,
  missingFrom,
  MONITORING_DIR,
  parseExposition,
  promtoolSeries,
  type Dashboard,
  type Sample,
} from '../support/monitoring.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
/** The downtime watch and the GPU taint look at this run's nodes only: the cluster is shared. */
const SCOPE_LABEL = 'noma.dev/test-monitoring';
const SCOPE = uniqueName('mon');
const LEASE = uniqueName('lease-mon');
const TIER = 'hardware.tier';

let ns: Awaited<ReturnType<typeof createNamespace>>;
let tls: LinkTls;
let agentPort: number;
let ca: Buffer;
let leader: CoordinatorProcess;
const nodes: string[] = [];
const cleanups: (() => Promise<unknown>)[] = [];

const coordinatorArgs = (identity: string): string[] => [
  ...testCoordinatorArgs(ns.name, LEASE, identity),
  ...['--agent-port', String(agentPort), '--agent-tls-cert', tls.certFile],
  ...['--agent-tls-key', tls.keyFile, '--agent-service-account', `${ns.name}/${AGENT_SA}`],
  ...['--agent-heartbeat', '1s', '--agent-handshake-timeout', '1s'],
  ...['--unplanned-downtime-after', '2s', '--unplanned-downtime-settle', '1s'],
  ...['--degraded-gpu-taint', 'noma.dev/gpu-degraded:NoSchedule', '--stuck-after', '2s'],
];
const coordinatorEnv = {
  NOMA_UNPLANNED_DOWNTIME_NODE_SELECTOR: `${SCOPE_LABEL}=${SCOPE}`,
  NOMA_DEGRADED_GPU_NODE_SELECTOR: `${SCOPE_LABEL}=${SCOPE}`,
};

beforeAll(async () => {
  // promtool first: on a clean clone this compiles it (minutes, once; Go's cache after).
  await ensurePromtool();
  await installCRD(kc);
  ns = await createNamespace('monitoring');
  tls = await writeLinkTls();
  ca = await readFile(tls.caFile);
  agentPort = await freePort();
  await ensureServiceAccount(kc, ns.name);
  leader = await startCoordinator(
    inject('kubeconfig'),
    coordinatorArgs('monitoring-leader'),
    30_000,
    false,
    coordinatorEnv,
  );
}, 900_000);

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  await leader.kill('SIGTERM');
  await ns.remove();
  await Promise.all(nodes.map(deleteSimNode));
  await rm(tls.dir, { recursive: true, force: true });
});

async function simNode(prefix: string, labels: Record<string, string> = {}): Promise<string> {
  const name = uniqueName(prefix);
  nodes.push(name);
  await createSimNode(name, {
    capacity: { 'nvidia.com/gpu': '8' },
    labels: { [SCOPE_LABEL]: SCOPE, ...labels },
  });
  return name;
}

async function scrape(c: CoordinatorProcess): Promise<string> {
  const res = await fetch(`${c.baseUrl}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

const find = (samples: readonly Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
const value = (samples: readonly Sample[], name: string, labels: Record<string, string> = {}) =>
  find(samples, name, labels).reduce((n, s) => n + s.value, 0);

async function agentConnected(node: string): Promise<boolean> {
  const res = await fetch(`${leader.baseUrl}/agents`);
  const body = (await res.json()) as { agents: { node: string }[] };
  return body.agents.some((a) => a.node === node);
}

/** A real agent on `node` (8 H100s, the built-in label rules), connected to the leader. */
async function gpuAgent(node: string): Promise<AgentProcess> {
  const home = await mkdtemp(join(tmpdir(), `noma-${node}-`));
  await writeFile(join(home, 'token'), await nodeBoundToken(kc, ns.name, node));
  const agent = await startAgent({
    nodeName: node,
    kubeconfig: inject('kubeconfig'),
    fixture: 'h100-sxm-x8.csv',
    args: [
      ...['--state-dir', join(home, 'state'), '--work-dir', join(home, 'work')],
      ...['--coordinator-url', `wss://localhost:${agentPort}`, '--coordinator-ca', tls.caFile],
      ...['--token-file', join(home, 'token'), '--executor', 'local'],
    ],
  });
  cleanups.push(async () => {
    await agent.stop();
    await rm(home, { recursive: true, force: true });
  });
  onTestFailed(() => {
    console.log(`--- agent ${node} ---\n${agent.logs.slice(-30).join('\n')}`);
  });
  return agent;
}

/** A GPU pod on `node` that a PDB (minAvailable 1) keeps from being evicted. */
const guardedPod = (name: string, node: string) =>
  createGuardedPod(kc, { namespace: ns.name, name, node });

async function createMaintenance(name: string, spec: Record<string, unknown>): Promise<void> {
  const nm = maintenances(kc, ns.name);
  await nm.create(name, spec);
  cleanups.push(async () => {
    await nm.remove(name).catch(() => undefined);
    await waitFor(`${name} gone`, async () => (await nm.get(name)) === undefined, 30_000);
  });
}

/** The three kinds of link refusal, for real: a bad token, a stalled handshake, a stray frame. */
async function provokeLinkRefusals(rawNode: string): Promise<void> {
  const url = `wss://localhost:${String(agentPort)}${AGENT_LINK_PATH}`;
  // 1. A token the API server does not accept: 401, noma_agent_connections_refused_total.
  const junk = new WebSocket(url, { ca, headers: { authorization: 'Bearer junk' } });
  const status = await new Promise<number>((resolve) => {
    junk.on('unexpected-response', (_q, res) => {
      resolve(res.statusCode ?? 0);
    });
    junk.on('error', () => {
      resolve(0);
    });
  });
  expect(status).toBe(401);
  // 2. TCP without TLS, held past --agent-handshake-timeout: noma_link_upgrades_refused_total.
  const tcp = tcpConnect(agentPort, '127.0.0.1');
  tcp.on('error', () => undefined);
  await new Promise((r) => tcp.once('close', r));
  // 3. An agent identity reporting an action never dispatched: noma_link_frames_refused_total.
  const token = await nodeBoundToken(kc, ns.name, rawNode, { podName: uniqueName('mon-raw') });
  const ws = new WebSocket(url, { ca, headers: { authorization: `Bearer ${token}` } });
  ws.on('error', () => undefined);
  cleanups.push(() => {
    ws.terminate();
    return Promise.resolve();
  });
  await new Promise((r) => ws.once('open', r));
  ws.send(
    encode('hello', { node: rawNode, bootID: 'b', version: 't', inventory: null, actions: [] }),
  );
  await waitFor('raw agent connected', () => agentConnected(rawNode).then((c) => c || undefined));
  ws.send(encode('action.progress', { id: 'never/dispatched/0/1', state: 'running' }));
}

describe('monitoring against a real coordinator', () => {
  it('its /metrics has every series the rules, their promtool tests and the dashboard use; promtool passes', async () => {
    onTestFailed(() => {
      console.log(leader.logs.slice(-60).join('\n'));
    });
    // A GPU node with a connected agent, degraded, then its agent gone.
    const gpu = await simNode('mon-gpu');
    const agent = await gpuAgent(gpu);
    const labels = await waitFor('the agent labels its node', async () => {
      const l = (await core.readNode({ name: gpu })).metadata?.labels ?? {};
      return l[TIER] !== undefined && l['noma.dev/gpu.health'] === 'healthy' ? l : undefined;
    });
    await waitFor('agent connected', () => agentConnected(gpu).then((c) => c || undefined));
    await agent.useFixture('h100-sxm-x8-one-gone.csv');
    agent.signal('SIGHUP');
    await waitFor('degraded', async () => {
      const l = (await core.readNode({ name: gpu })).metadata?.labels ?? {};
      return l['noma.dev/gpu.health'] === 'degraded' || undefined;
    });
    await agent.stop();
    // A node no agent labeled (no tier), a node down, a raw agent identity.
    await simNode('mon-bare');
    const down = uniqueName('mon-down');
    nodes.push(down);
    await createNotReadyNode(down, { labels: { [SCOPE_LABEL]: SCOPE } });
    const raw = await simNode('mon-raw');
    // Halted: no agent on its nodes, the first fails after agentTimeout; the budget is 1.
    const haltGroup = uniqueName('mon-halt');
    await Promise.all([
      simNode('mon-h', { 'noma.dev/test-group': haltGroup }),
      simNode('mon-h', { 'noma.dev/test-group': haltGroup }),
    ]);
    await createMaintenance('halted', {
      nodeSelector: `noma.dev/test-group=${haltGroup}`,
      options: { maxUnavailable: 1, agentTimeout: '2s' },
      actions: [{ type: 'Script', name: 'fix', script: { script: 'echo fix' } }],
    });
    // A drain a PDB blocks: Draining, blockedBy, Stuck after --stuck-after (2s).
    const blockGroup = uniqueName('mon-block');
    const blocked = await simNode('mon-b', { 'noma.dev/test-group': blockGroup });
    await guardedPod('mon-guarded', blocked);
    await createMaintenance('blocked', {
      nodeSelector: `noma.dev/test-group=${blockGroup}`,
      options: { evictUnmanagedPods: true, drainTimeout: '10m' },
      actions: [{ type: 'Complete' }],
    });
    await provokeLinkRefusals(raw);

    const key = (name: string) => `${ns.name}/${name}`;
    const tier = labels[TIER] ?? '';
    const text = await waitFor(
      'every state on /metrics',
      async () => {
        const t = await scrape(leader);
        const s = parseExposition(t);
        const ok =
          value(s, 'noma_leader', { identity: 'monitoring-leader' }) === 1 &&
          value(s, 'noma_nodes', { tier, gpu_sku: 'h100' }) >= 1 &&
          value(s, 'noma_nodes_missing_labels', { label: TIER }) >= 1 &&
          value(s, 'noma_nodes_gpu_health', { health: 'degraded' }) >= 1 &&
          value(s, 'noma_agents_disconnected') >= 1 &&
          value(s, 'noma_agents_connected') >= 1 &&
          value(s, 'noma_unplanned_downtime_nodes_tainted') === 1 &&
          value(s, 'noma_degraded_gpu_taints_total', { action: 'taint' }) >= 1 &&
          value(s, 'noma_maintenance_phase', { maintenance: key('halted'), phase: 'Halted' }) ===
            1 &&
          find(s, 'noma_drain_blocked_seconds', { maintenance: key('blocked') }).length === 1 &&
          find(s, 'noma_node_stuck_seconds', { node: blocked, phase: 'Draining' }).length === 1 &&
          value(s, 'noma_nodes_stuck') >= 1 &&
          value(s, 'noma_agent_connections_refused_total', { reason: 'unauthenticated' }) >= 1 &&
          value(s, 'noma_link_upgrades_refused_total', { reason: 'handshake-timeout' }) >= 1 &&
          value(s, 'noma_link_frames_refused_total', { reason: 'not-dispatched' }) >= 1 &&
          value(s, 'noma_drain_events_total', { event: 'pdb-refused' }) >= 1;
        return ok ? t : undefined;
      },
      60_000,
      500,
    ).catch(async (err: unknown) => {
      console.log(await scrape(leader));
      throw err;
    });
    const samples = parseExposition(text);
    const shown =
      /^noma_(leader|nodes|agents_|maintenance_phase|drain_blocked|node_stuck|unplanned_downtime_nodes|link_.*refused|agent_connections_refused)/;
    console.log(
      `MONITORING scraped:\n${text
        .split('\n')
        .filter((l) => shown.test(l))
        .join('\n')}`,
    );
    // Halted counted once, by phase too.
    expect(value(samples, 'noma_maintenances', { phase: 'Halted' })).toBeGreaterThanOrEqual(1);
    expect(value(samples, 'noma_maintenance_nodes', { phase: 'Failed' })).toBeGreaterThanOrEqual(1);

    // Every series of the promtool tests, with its labels, as /metrics shows it.
    const catalog = catalogOfExposition(text);
    const series = promtoolSeries();
    const problems = series.flatMap((s) => {
      const have = catalog.get(s.metric);
      if (have === undefined) return [`${s.file}: no ${s.metric} on /metrics`];
      return s.labels.filter((l) => !have.has(l)).map((l) => `${s.file}: ${s.metric}{${l}}`);
    });
    // Every metric and label the rules and the dashboard query.
    for (const r of alertRules()) {
      const queried = [r.expr, ...Object.values(r.annotations ?? {})].join('\n');
      problems.push(...missingFrom(catalog, queried).map((p) => `rule ${r.alert ?? '?'}: ${p}`));
    }
    // The dashboard's metric names (its labels need samples that this run does not all make,
    // e.g. frames rejected by code: the unit test checks them against the registry).
    const dashboard = JSON.parse(dashboardText()) as Dashboard;
    for (const expr of dashboardExprs(dashboard)) {
      for (const m of exprMetrics(expr)) if (!catalog.has(m)) problems.push(`dashboard: ${m}`);
    }
    expect(problems).toEqual([]);

    // promtool's lint of the exposition: noma's own names pass; prom-client's default Node.js
    // gauges named *_total (nodejs_active_handles_total, …) are not ours to rename.
    const lint = await promtool(['check', 'metrics'], MONITORING_DIR, text);
    const lintProblems = lint.output
      .split('\n')
      .filter((l) => l.trim() !== '' && !/^noma_coordinator_nodejs_\w+_total non-counter/.test(l));
    expect(lintProblems).toEqual([]);

    const check = await promtool(['check', 'rules', 'rules.yaml'], MONITORING_DIR);
    expect(check.code, check.output).toBe(0);
    expect(check.output).toContain('SUCCESS');
    const tests = series.map((s) => s.file).filter((f, i, all) => all.indexOf(f) === i);
    const run = await promtool(
      ['test', 'rules', ...tests.map((f) => `tests/${f}`)],
      MONITORING_DIR,
    );
    console.log(
      `MONITORING promtool_test_files=${String(tests.length)} ${run.output.replace(/\s+/g, ' ')}`,
    );
    expect(run.code, run.output).toBe(0);
    expect(run.output.match(/SUCCESS/g)).toHaveLength(tests.length);
  }, 240_000);

  it('a standby of the same Lease shows noma_leader 0 and none of the fleet', async () => {
    const standby = await startCoordinator(
      inject('kubeconfig'),
      coordinatorArgs('monitoring-standby'),
      30_000,
      false,
      coordinatorEnv,
      'listening',
    );
    cleanups.push(() => standby.kill('SIGTERM'));
    const readyz = (await (await fetch(`${standby.baseUrl}/readyz`)).json()) as { role?: string };
    expect(readyz.role).toBe('standby');
    const s = parseExposition(await scrape(standby));
    expect(find(s, 'noma_leader')).toEqual([
      { name: 'noma_leader', labels: { identity: 'monitoring-standby' }, value: 0 },
    ]);
    for (const name of [
      'noma_nodes',
      'noma_nodes_missing_labels',
      'noma_nodes_gpu_health',
      'noma_maintenance_phase',
      'noma_drain_blocked_seconds',
      'noma_node_stuck_seconds',
      'noma_unplanned_downtime_nodes_tainted',
    ]) {
      expect(find(s, name), name).toEqual([]);
    }
    expect(value(s, 'noma_agents_disconnected')).toBe(0);
    expect(value(s, 'noma_nodes_stuck')).toBe(0);
    // The leader is still the only one with the fleet.
    expect(value(parseExposition(await scrape(leader)), 'noma_leader')).toBe(1);
  }, 60_000);
});
