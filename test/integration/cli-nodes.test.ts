// `noma nodes` on the real API server, with a kubeconfig of several contexts: it finds which
// context a node is in, shows what the node's labels, spec, status and claim say (Ready, down
// since, downtime taint, GPU health, maintenance and phase), asks a real coordinator which
// agents are connected (by URL, and through the API server's pod proxy to the Lease holder),
// and survives a context whose cluster is down or a coordinator it cannot reach.
import { networkInterfaces } from 'node:os';
import { readFile } from 'node:fs/promises';
import {
  CoordinationV1Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AGENT_LINK_PATH, encode } from '../../shared/protocol.js';
import { multiContextKubeconfig, runNoma } from '../support/cli.js';
import { startCoordinator, type CoordinatorProcess } from '../support/coordinator-process.js';
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
} from '../support/link.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const prefix = uniqueName('cli-nodes');
const h100 = `${prefix}-gpu-07`;
const l4 = `${prefix}-gpu-08`;
const claimed = `${prefix}-gpu-09`;
const down = `${prefix}-gpu-10`;
const leaseName = 'cli-nodes-lease';
const identity = 'cli-nodes-coordinator';
let kubeconfig: string;
let ns: Awaited<ReturnType<typeof createNamespace>> | undefined;
const nsName = (): string => ns?.name ?? '';
let coordinator: CoordinatorProcess | undefined;
/** The coordinator's HTTP address (its health server, where `/agents` is). */
let coordinatorUrl = '';
let agentSocket: WebSocket | undefined;

async function setAnnotations(node: string, annotations: Record<string, string>): Promise<void> {
  await core.patchNode(
    { name: node, body: { metadata: { annotations } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

beforeAll(async () => {
  kubeconfig = await multiContextKubeconfig(inject('kubeconfig'), ['east', 'north'], ['west']);
  await installCRD(kc);
  ns = await createNamespace('cli-nodes');
  await Promise.all([
    createSimNode(h100, {
      capacity: { 'nvidia.com/gpu': '8' },
      labels: { 'hardware.tier': 'high-performance', 'gpu.h100': 'true', 'gpu.count': '8' },
    }),
    createSimNode(l4, {
      capacity: { 'nvidia.com/gpu': '2' },
      labels: { 'hardware.tier': 'dual-gpu', 'gpu.l4': 'true' },
      unschedulable: true,
      taints: [{ key: 'noma.dev/maintenance', effect: 'NoSchedule' }],
    }),
    createSimNode(claimed, {
      capacity: { 'nvidia.com/gpu': '8' },
      labels: { 'gpu.h100': 'true', 'noma.dev/gpu.health': 'healthy' },
      unschedulable: true,
    }),
    createNotReadyNode(down, {
      capacity: { 'nvidia.com/gpu': '8' },
      labels: { 'gpu.h100': 'true', 'noma.dev/gpu.health': 'degraded' },
      taints: [{ key: 'noma.dev/unreachable', effect: 'NoExecute' }],
    }),
  ]);
  // As the coordinator (unplanned downtime) and the agent (GPU health) record them.
  await setAnnotations(down, {
    'noma.dev/unplanned-downtime': JSON.stringify({
      taint: { key: 'noma.dev/unreachable', effect: 'NoExecute' },
      downSince: '2026-11-30T09:48:00Z',
      taintedAt: '2026-11-30T09:58:00Z',
      agent: false,
    }),
    'noma.dev/gpu.health-detail': JSON.stringify({ expected: 8, answering: 7 }),
  });
  await setAnnotations(claimed, {
    'noma.dev/claim': JSON.stringify({
      maintenance: 'gpu-ops/reboot',
      uid: 'u-1',
      phase: 'Draining',
    }),
  });
});

afterAll(async () => {
  agentSocket?.terminate();
  await coordinator?.kill('SIGTERM');
  await Promise.all([h100, l4, claimed, down].map(deleteSimNode));
  await ns?.remove();
});

describe('noma nodes', () => {
  // Agents are asked of a Lease that does not exist (the default, noma-system's, may be held by
  // another test's coordinator): unknown, `-`.
  const noCoordinator = (): string[] => ['--coordinator', `${nsName()}/absent`];

  it('--all-contexts says which context a node is in, and warns about a context that is down', async () => {
    const run = await runNoma([
      ...['nodes', '--all-contexts', '--kubeconfig', kubeconfig, h100],
      ...noCoordinator(),
    ]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      /^CONTEXT +NAME +STATUS +DOWN +DOWNTIME +TIER +GPU +GPUS +HEALTH +SCHEDULABLE +MAINTENANCE +PHASE +AGENT$/m,
    );
    expect(run.stdout).toMatch(
      new RegExp(`^east +${h100} +Ready +- +- +high-performance +h100 +8 +- +yes +no +- +-$`, 'm'),
    );
    expect(run.stdout).toMatch(new RegExp(`^north +${h100} `, 'm'));
    expect(run.stdout).not.toContain(l4);
    expect(run.stderr).toMatch(/^warning: context west: /m);
  });

  it('shows a NotReady node with its down time and downtime taint, GPU health, and a claim', async () => {
    const run = await runNoma([
      ...['nodes', '--context', 'east', '--kubeconfig', kubeconfig, `${prefix}-*`],
      ...noCoordinator(),
    ]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      new RegExp(`^${down} +NotReady +\\d+s +tainted +- +h100 +8 +degraded +yes +no +- +-$`, 'm'),
    );
    expect(run.stdout).toMatch(
      new RegExp(
        `^${claimed} +Ready +- +- +- +h100 +8 +healthy +no +gpu-ops/reboot +Draining +-$`,
        'm',
      ),
    );
  });

  it("-o wide adds Ready's reason, since when tainted, agent labels, link ages and GPU detail", async () => {
    const run = await runNoma([
      ...['nodes', '--context', 'east', '--kubeconfig', kubeconfig, `${prefix}-*`, '-o', 'wide'],
      ...noCoordinator(),
    ]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      / +AGENT +REASON +TAINTED +LABELS +CONNECTED +HEARTBEAT +GPU DETAIL$/m,
    );
    expect(run.stdout).toMatch(
      new RegExp(
        `^${down} +NotReady .* +- +KubeletNotReady +\\d+[smhd]\\S* +\\S+ +- +- +\\{"expected":8,"answering":7\\}$`,
        'm',
      ),
    );
  });

  it('matches a glob in the chosen contexts and prints JSON with every field', async () => {
    const run = await runNoma([
      'nodes',
      '--context',
      'north',
      '--kubeconfig',
      kubeconfig,
      `${prefix}-*`,
      '-o',
      'json',
      ...noCoordinator(),
    ]);
    expect(run.code).toBe(0);
    const records = JSON.parse(run.stdout) as Record<string, unknown>[];
    expect(records.map((r) => r['name'])).toEqual([h100, l4, claimed, down]);
    expect(records[0]).toEqual({
      context: 'north',
      name: h100,
      ready: true,
      readyStatus: 'True',
      readyReason: expect.any(String) as unknown,
      downSince: null,
      downtimeTaint: null,
      downtimeTaintedAt: null,
      schedulable: true,
      inMaintenance: false,
      maintenance: null,
      phase: null,
      controlPlane: false,
      tier: 'high-performance',
      gpuSku: 'h100',
      gpus: 8,
      gpuHealth: null,
      gpuHealthDetail: null,
      agent: 'unknown',
      agentConnected: null,
      agentConnectedAt: null,
      agentLastHeartbeat: null,
    });
    expect(records[1]).toMatchObject({
      schedulable: false,
      inMaintenance: true,
      maintenance: null,
    });
    expect(records[2]).toMatchObject({
      inMaintenance: true,
      maintenance: 'gpu-ops/reboot',
      phase: 'Draining',
      gpuHealth: 'healthy',
    });
    const node = await core.readNode({ name: down });
    const since = node.status?.conditions?.find((c) => c.type === 'Ready')?.lastTransitionTime;
    expect(records[3]).toMatchObject({
      ready: false,
      readyStatus: 'False',
      readyReason: 'KubeletNotReady',
      downSince: since?.toISOString(),
      downtimeTaint: 'noma.dev/unreachable:NoExecute',
      downtimeTaintedAt: '2026-11-30T09:58:00Z',
      gpuHealth: 'degraded',
      gpuHealthDetail: { expected: 8, answering: 7 },
    });
  });

  it('exits 1 when no context has the node', async () => {
    const run = await runNoma(['nodes', '-A', '--kubeconfig', kubeconfig, `${prefix}-nope`]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`no node matches ${prefix}-nope`);
  });

  it('exits 1 when the only context asked is down', async () => {
    const run = await runNoma(['nodes', '--context', 'west', '--kubeconfig', kubeconfig]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^warning: context west: /m);
  });

  it('names --context when it is not in the kubeconfig', async () => {
    const run = await runNoma(['nodes', '--context', 'south', '--kubeconfig', kubeconfig]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--context: no context "south"');
  });
});

/** A non-loopback address of this machine: the API server's pod proxy refuses loopback. */
function hostAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;
}

/** Plays node `node`'s agent on the link: a node-bound token and the agent's `hello`. */
async function connectAgent(agentPort: number, caFile: string, node: string): Promise<WebSocket> {
  const token = await nodeBoundToken(kc, nsName(), node);
  const ws = new WebSocket(`wss://localhost:${agentPort}${AGENT_LINK_PATH}`, {
    ca: await readFile(caFile),
    headers: { authorization: `Bearer ${token}` },
  });
  ws.on('error', () => undefined);
  await new Promise((r) => ws.once('open', r));
  ws.send(encode('hello', { node, bootID: 'b', version: 'test', inventory: null, actions: [] }));
  return ws;
}

describe('noma nodes: agent connections from the coordinator', () => {
  beforeAll(async () => {
    const tls = await writeLinkTls();
    const agentPort = await freePort();
    await ensureServiceAccount(kc, nsName());
    const started = await startCoordinator(inject('kubeconfig'), [
      ...['--namespace', nsName(), '--watch-namespace', nsName()],
      ...['--lease-name', leaseName, '--identity', identity, '--lease-duration', '2s'],
      ...['--agent-port', String(agentPort), '--agent-tls-cert', tls.certFile],
      ...['--agent-tls-key', tls.keyFile, '--agent-service-account', `${nsName()}/${AGENT_SA}`],
    ]);
    coordinator = started;
    coordinatorUrl = started.baseUrl;
    agentSocket = await connectAgent(agentPort, tls.caFile, h100);
    await waitFor('agent connected', async () => {
      const body = (await (await fetch(`${coordinatorUrl}/agents`)).json()) as {
        agents: { node: string }[];
      };
      return body.agents.some((a) => a.node === h100) || undefined;
    });
  }, 60_000);

  const agentColumn = (stdout: string, node: string): string | undefined =>
    new RegExp(`^${node} .* (\\S+)$`, 'm').exec(stdout)?.[1];

  it('--coordinator URL: yes for the connected agent, no for the others', async () => {
    const run = await runNoma([
      ...['nodes', '--context', 'east', '--kubeconfig', kubeconfig, `${prefix}-*`],
      ...['--coordinator', coordinatorUrl],
    ]);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    expect(agentColumn(run.stdout, h100)).toBe('yes');
    expect(agentColumn(run.stdout, l4)).toBe('no');
    expect(agentColumn(run.stdout, down)).toBe('no');
    const json = await runNoma([
      ...['nodes', '--context', 'east', '--kubeconfig', kubeconfig, h100, '-o', 'json'],
      ...['--coordinator', coordinatorUrl],
    ]);
    expect(JSON.parse(json.stdout)).toMatchObject([
      {
        name: h100,
        agentConnected: true,
        agentConnectedAt: expect.stringMatching(/^\d{4}-/) as unknown,
        agentLastHeartbeat: expect.stringMatching(/^\d{4}-/) as unknown,
      },
    ]);
  });

  it('--coordinator URL refuses several contexts', async () => {
    const run = await runNoma([
      ...['nodes', '-A', '--kubeconfig', kubeconfig, '--coordinator', coordinatorUrl],
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--coordinator: a URL reaches one cluster');
  });

  it('through the API server: the Lease holder pod, its http port, the pod proxy', async () => {
    // The API server proxies to a pod IP; loopback is not allowed there, so this needs the
    // machine's own address (every machine this runs on has one).
    const address = hostAddress();
    if (address === undefined) throw new Error('no non-loopback IPv4 address on this machine');
    // The coordinator runs here, not in a pod: a Pod named as its identity, on a node no
    // kubelet plays, whose status says its IP is this machine's, stands for it.
    const port = Number(new URL(coordinatorUrl).port);
    await core.createNamespacedPod({
      namespace: nsName(),
      body: {
        metadata: { name: identity },
        spec: {
          nodeName: down,
          containers: [
            { name: 'c', image: 'noma', ports: [{ name: 'http', containerPort: port }] },
          ],
        },
      },
    });
    await core.patchNamespacedPodStatus(
      {
        namespace: nsName(),
        name: identity,
        body: { status: { phase: 'Running', podIP: address, podIPs: [{ ip: address }] } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const run = await runNoma([
      ...['nodes', '--context', 'east', '--kubeconfig', kubeconfig, `${prefix}-*`],
      ...['--coordinator', `${nsName()}/${leaseName}`],
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(agentColumn(run.stdout, h100)).toBe('yes');
    expect(agentColumn(run.stdout, claimed)).toBe('no');
  });

  it('falls back to unknown (-) when the coordinator cannot be asked, and says why', async () => {
    const coordination = kc.makeApiClient(CoordinationV1Api);
    await coordination.createNamespacedLease({
      namespace: nsName(),
      body: { metadata: { name: 'ghost-lease' }, spec: { holderIdentity: 'ghost' } },
    });
    const cases = [
      { ref: `${nsName()}/no-such-lease`, why: `Lease ${nsName()}/no-such-lease: HTTP 404` },
      { ref: `${nsName()}/ghost-lease`, why: `leader pod ${nsName()}/ghost: HTTP 404` },
      { ref: 'http://127.0.0.1:1', why: 'agent connections unknown' },
    ];
    for (const { ref, why } of cases) {
      const run = await runNoma([
        ...['nodes', '--context', 'east', '--kubeconfig', kubeconfig, h100],
        ...['--coordinator', ref, '-o', 'json'],
      ]);
      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(/^warning: context east: agent connections unknown: /m);
      expect(run.stderr).toContain(why);
      expect(JSON.parse(run.stdout)).toMatchObject([{ name: h100, agentConnected: null }]);
    }
  });
});
