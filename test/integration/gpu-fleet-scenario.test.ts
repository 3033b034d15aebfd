// Issue 11's headline scenario, end to end: three simulated GPU nodes and a CPU node; an
// inference Deployment (3 replicas, one GPU each, a Memory-backed emptyDir at /dev/shm as vLLM,
// TGI and Triton pods have) spread one per GPU node, a PodDisruptionBudget minAvailable 2 on
// it, and a CPU-only router Deployment beside it. Then the manifest of
// `noma init reboot -l nvidia.com/gpu=true --max-unavailable 1 --complete`, from the real CLI,
// applied. The real scheduler places the pods, KWOK runs them, the real coordinator drives the
// maintenance and real agents (one per GPU node, tokens bound to DaemonSet pods) reboot their
// simulated machines. Watched throughout: never more than one GPU node unschedulable, the PDB
// never violated, every GPU node rebooted once, drained of every pod before its reboot, and
// returned to service clean.
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PolicyV1Api,
  type V1Deployment,
  type V1Node,
  type V1Pod,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFailed } from 'vitest';
import { parse } from 'yaml';
import { GROUP, PLURAL, VERSION, type NodeMaintenance } from '../../shared/api/index.js';
import { CLAIM_ANNOTATION, MAINTENANCE_LABEL } from '../../shared/maintenance-keys.js';
import { daemonSetBoundTokens } from '../support/agent-daemonset.js';
import { startAgent, type AgentProcess } from '../support/agent-process.js';
import { runNoma } from '../support/cli.js';
import { startCoordinator, type CoordinatorProcess } from '../support/coordinator-process.js';
import { installCRD } from '../support/crd.js';
import {
  adminKubeConfig,
  createNamespace,
  createSimNode,
  deleteSimNode,
  simulateReboot,
  uniqueName,
  waitFor,
} from '../support/kube.js';
import { AGENT_SA, ensureServiceAccount, freePort, writeLinkTls } from '../support/link.js';
import { SimulatedMachine } from '../support/machine.js';
import { maintenances, nodeStatus } from '../support/maintenance.js';
import { recordNodes, recordWatch, type Seen } from '../support/observers.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const apps = kc.makeApiClient(AppsV1Api);
const GPU = 'nvidia.com/gpu';
// The cluster is shared with other test files, whose agents label their nodes
// nvidia.com/gpu=true too: the pool label keeps this maintenance (and the pods) on our nodes.
const POOL_LABEL = 'noma.dev/test-pool';
const pool = uniqueName('fleet');
const gpuNodes = [0, 1, 2].map((i) => `${pool}-gpu-${i}`);
const cpuNode = `${pool}-cpu`;
const GPU_SELECTOR = `${GPU}=true,${POOL_LABEL}=${pool}`;
const INFERENCE = { app: 'inference' };
const ROUTER = { app: 'router' };
const SAMPLE_MS = 100;

let ns: Awaited<ReturnType<typeof createNamespace>>;
let coordinator: CoordinatorProcess;
const cleanups: (() => Promise<unknown>)[] = [];

interface FleetNode {
  name: string;
  home: string;
  agent: AgentProcess;
  machine: SimulatedMachine;
  /** Pods of the namespace bound to this node when its machine went down, agent's aside. */
  podsAtReboot?: string[];
}
const fleet = new Map<string, FleetNode>();

// ---- setup: nodes, coordinator, agents ------------------------------------------------------

async function startCoordinatorWithLink(agentPort: number, leaseName: string) {
  const tls = await writeLinkTls();
  const proc = await startCoordinator(inject('kubeconfig'), [
    ...['--namespace', ns.name, '--watch-namespace', ns.name],
    ...['--lease-name', leaseName, '--identity', 'fleet-coordinator', '--lease-duration', '2s'],
    ...['--status-interval', '200ms', '--agent-port', String(agentPort)],
    ...['--agent-tls-cert', tls.certFile, '--agent-tls-key', tls.keyFile],
    ...['--agent-service-account', `${ns.name}/${AGENT_SA}`],
    ...['--agent-heartbeat', '1s', '--agent-retry', '500ms'],
  ]);
  return { proc, caFile: tls.caFile };
}

function agentArgs(home: string, caFile: string, agentPort: number): string[] {
  return [
    ...['--state-dir', join(home, 'state'), '--work-dir', join(home, 'work')],
    ...['--coordinator-url', `wss://localhost:${agentPort}`, '--coordinator-ca', caFile],
    ...['--token-file', join(home, 'token'), '--executor', 'local'],
    ...['--boot-id-file', join(home, 'boot_id')],
    ...['--reboot-request-file', join(home, 'reboot-request')],
    ...['--coordinator-unreachable-threshold', '3s'],
  ];
}

/** Pods of the namespace on `node`, by name, leaving out the agent's DaemonSet pod. */
async function workloadPodsOn(node: string): Promise<string[]> {
  const list = await core.listNamespacedPod({
    namespace: ns.name,
    fieldSelector: `spec.nodeName=${node}`,
  });
  return list.items
    .filter((p) => p.metadata?.labels?.['app.kubernetes.io/component'] !== 'agent-under-test')
    .map((p) => p.metadata?.name ?? '');
}

/**
 * A GPU node's machine and agent. The machine (test/support/machine.ts) stops the agent when
 * it asks for a reboot, reports a new bootID and starts it again; just before it goes down it
 * records which workload pods are still on the node: the drain before Reboot must have evicted
 * every one (the simulated reboot itself kills nothing).
 */
async function startFleetNode(name: string, token: string, bootID: string, link: LinkInfo) {
  const home = await mkdtemp(join(tmpdir(), `noma-${name}-`));
  await mkdir(join(home, 'work'), { recursive: true });
  await writeFile(join(home, 'token'), token);
  const start = async (): Promise<AgentProcess> => {
    const agent = await startAgent({
      nodeName: name,
      kubeconfig: inject('kubeconfig'),
      fixture: 'l4.csv',
      args: agentArgs(home, link.caFile, link.agentPort),
    });
    cleanups.push(() => agent.stop());
    return agent;
  };
  const node: FleetNode = {
    name,
    home,
    agent: undefined as unknown as AgentProcess,
    machine: new SimulatedMachine({
      bootIdFile: join(home, 'boot_id'),
      rebootRequestFile: join(home, 'reboot-request'),
      reportBootID: (id) => simulateReboot(name, id),
      stopAgent: async () => {
        node.podsAtReboot = await workloadPodsOn(name);
        await node.agent.stop();
      },
      startAgent: async () => {
        node.agent = await start();
      },
      pollMs: 100,
      downMs: 200,
    }),
  };
  await node.machine.start(bootID);
  cleanups.push(() => node.machine.close());
  node.agent = await start();
  fleet.set(name, node);
}

interface LinkInfo {
  caFile: string;
  agentPort: number;
}

async function createNodes(): Promise<V1Node[]> {
  for (const n of [...gpuNodes, cpuNode]) cleanups.push(() => deleteSimNode(n));
  const gpu = gpuNodes.map((n) =>
    createSimNode(n, {
      labels: { [GPU]: 'true', [POOL_LABEL]: pool },
      capacity: { [GPU]: '8' },
    }),
  );
  const cpu = createSimNode(cpuNode, { labels: { [POOL_LABEL]: pool } });
  const [created] = await Promise.all([Promise.all(gpu), cpu]);
  return created;
}

async function waitAgentsConnected(): Promise<void> {
  await waitFor(
    'agents connected',
    async () => {
      const res = await fetch(`${coordinator.baseUrl}/agents`);
      const body = (await res.json()) as { agents: { node: string }[] };
      const connected = body.agents.map((a) => a.node);
      return gpuNodes.every((n) => connected.includes(n));
    },
    90_000,
  );
}

// ---- setup: workloads ------------------------------------------------------------------------

function inferenceDeployment(): V1Deployment {
  return {
    metadata: { name: 'inference' },
    spec: {
      replicas: 3,
      selector: { matchLabels: INFERENCE },
      template: {
        metadata: { labels: INFERENCE },
        spec: {
          nodeSelector: { [GPU]: 'true', [POOL_LABEL]: pool },
          terminationGracePeriodSeconds: 1,
          // One per GPU node, hard, among the nodes the pod may use now: a cordoned (tainted)
          // node is no domain (nodeTaintsPolicy Honor), so an evicted pod's replacement lands
          // on a schedulable GPU node and the PDB lets the next eviction through.
          topologySpreadConstraints: [
            {
              maxSkew: 1,
              topologyKey: 'kubernetes.io/hostname',
              whenUnsatisfiable: 'DoNotSchedule',
              nodeTaintsPolicy: 'Honor',
              labelSelector: { matchLabels: INFERENCE },
            },
          ],
          containers: [
            {
              name: 'server',
              image: 'registry.invalid/vllm:test',
              resources: { requests: { [GPU]: '1' }, limits: { [GPU]: '1' } },
              volumeMounts: [{ name: 'dshm', mountPath: '/dev/shm' }],
            },
          ],
          volumes: [{ name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: '16Gi' } }],
        },
      },
    },
  };
}

function routerDeployment(): V1Deployment {
  return {
    metadata: { name: 'router' },
    spec: {
      replicas: 2,
      selector: { matchLabels: ROUTER },
      template: {
        metadata: { labels: ROUTER },
        spec: {
          // Any of our nodes, never two on one: with one CPU node, at least one router runs
          // on a GPU node, so the drain before Reboot has a non-GPU pod to evict.
          nodeSelector: { [POOL_LABEL]: pool },
          terminationGracePeriodSeconds: 1,
          affinity: {
            podAntiAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: [
                { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: ROUTER } },
              ],
            },
          },
          containers: [{ name: 'router', image: 'registry.invalid/router:test' }],
        },
      },
    },
  };
}

const isHealthy = (p: V1Pod): boolean =>
  p.metadata?.deletionTimestamp === undefined &&
  p.status?.phase === 'Running' &&
  p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

async function podsOf(labels: Record<string, string>): Promise<V1Pod[]> {
  const labelSelector = Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return (await core.listNamespacedPod({ namespace: ns.name, labelSelector })).items;
}

async function deployWorkloads(): Promise<{ inference: V1Pod[]; routers: V1Pod[] }> {
  await apps.createNamespacedDeployment({ namespace: ns.name, body: inferenceDeployment() });
  await apps.createNamespacedDeployment({ namespace: ns.name, body: routerDeployment() });
  await kc.makeApiClient(PolicyV1Api).createNamespacedPodDisruptionBudget({
    namespace: ns.name,
    body: {
      metadata: { name: 'inference' },
      spec: { minAvailable: 2, selector: { matchLabels: INFERENCE } },
    },
  });
  return waitFor(
    'inference one per GPU node and routers ready',
    async () => {
      const [inference, routers] = await Promise.all([podsOf(INFERENCE), podsOf(ROUTER)]);
      const ready = (ps: V1Pod[], n: number) => ps.length === n && ps.every(isHealthy);
      const onNodes = new Set(inference.map((p) => p.spec?.nodeName));
      return ready(inference, 3) && ready(routers, 2) && gpuNodes.every((n) => onNodes.has(n))
        ? { inference, routers }
        : undefined;
    },
    60_000,
  );
}

// ---- the watch --------------------------------------------------------------------------------

/**
 * Samples the GPU nodes, the inference pods and the maintenance every SAMPLE_MS: the most GPU
 * nodes unschedulable at once, the fewest inference pods the PDB counts (Running, Ready, not
 * terminating, matching its selector), and when the maintenance first reads Completed.
 */
class FleetSampler {
  samples = 0;
  errors = 0;
  maxGapMs = 0;
  maxUnschedulable = 0;
  minHealthy = Number.POSITIVE_INFINITY;
  readonly violations: string[] = [];
  phase: string | undefined;
  completedAt: number | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly maintenance: string) {}

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    let last = performance.now();
    while (!this.stopped) {
      try {
        await this.sample();
        const now = performance.now();
        this.maxGapMs = Math.max(this.maxGapMs, now - last);
        last = now;
      } catch {
        this.errors += 1;
      }
      await sleep(SAMPLE_MS);
    }
  }

  private async sample(): Promise<void> {
    const [nodes, pods, m] = await Promise.all([
      core.listNode({ labelSelector: GPU_SELECTOR }),
      podsOf(INFERENCE),
      maintenances(kc, ns.name).get(this.maintenance),
    ]);
    const at = performance.now();
    this.samples += 1;
    const cordoned = nodes.items.filter((n) => n.spec?.unschedulable === true);
    const names = cordoned.map((n) => n.metadata?.name ?? '');
    this.maxUnschedulable = Math.max(this.maxUnschedulable, cordoned.length);
    if (cordoned.length > 1) this.violations.push(`unschedulable at once: ${names.join(', ')}`);
    const healthy = pods.filter(isHealthy).length;
    this.minHealthy = Math.min(this.minHealthy, healthy);
    if (healthy < 2)
      this.violations.push(`PDB violated: ${healthy} healthy (${describePods(pods)})`);
    this.phase = m?.status?.phase;
    if (this.phase === 'Completed' && this.completedAt === undefined) this.completedAt = at;
  }
}

function describePods(pods: V1Pod[]): string {
  return pods
    .map((p) => {
      const gone = p.metadata?.deletionTimestamp === undefined ? '' : ' terminating';
      return `${p.metadata?.name ?? ''}@${p.spec?.nodeName ?? '-'} ${p.status?.phase ?? ''}${gone}`;
    })
    .join('; ');
}

/**
 * The fewest inference pods the PDB counts at any moment, replaying every version of them the
 * API server reported (a list, then a watch from its resourceVersion): no state between two
 * samples is missed.
 */
function minHealthyOverVersions(seen: readonly Seen<V1Pod>[]): number {
  const healthy = new Map<string, boolean>();
  let min = Number.POSITIVE_INFINITY;
  for (const s of seen) {
    const uid = s.obj.metadata?.uid ?? '';
    if (s.type === 'DELETED') healthy.delete(uid);
    else healthy.set(uid, isHealthy(s.obj));
    // The listed pods arrive one by one: count from the last of them on.
    if (s.type === 'LISTED' && seen[seen.indexOf(s) + 1]?.type === 'LISTED') continue;
    min = Math.min(min, [...healthy.values()].filter(Boolean).length);
  }
  return min;
}

async function recordInference() {
  return recordWatch<V1Pod>(
    kc,
    `/api/v1/namespaces/${ns.name}/pods`,
    () => core.listNamespacedPod({ namespace: ns.name, labelSelector: 'app=inference' }),
    { labelSelector: 'app=inference' },
  );
}

// ---- lifecycle ---------------------------------------------------------------------------------

beforeAll(async () => {
  await installCRD(kc);
  ns = await createNamespace('fleet');
  cleanups.push(() => ns.remove());
  await ensureServiceAccount(kc, ns.name);
  const created = await createNodes();
  const agentPort = await freePort();
  const started = await startCoordinatorWithLink(agentPort, uniqueName('lease-fleet'));
  coordinator = started.proc;
  cleanups.push(() => coordinator.kill('SIGTERM'));
  const tokens = await daemonSetBoundTokens(
    kc,
    ns.name,
    'noma-agent',
    { [GPU]: 'true', [POOL_LABEL]: pool },
    gpuNodes,
  );
  const link = { caFile: started.caFile, agentPort };
  await Promise.all(
    gpuNodes.map((n, i) =>
      startFleetNode(n, tokens.get(n) ?? '', created[i]?.status?.nodeInfo?.bootID ?? '', link),
    ),
  );
  await waitAgentsConnected();
}, 240_000);

afterAll(async () => {
  // Cleanups run last-registered first: the namespace (and the NodeMaintenance's finalizer,
  // handled while the coordinator still runs) goes before the coordinator and the nodes.
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

const bootIDOf = async (node: string): Promise<string> =>
  (await core.readNode({ name: node })).status?.nodeInfo?.bootID ?? '';

/** The manifest `noma init` writes, parsed; the real CLI, as a user runs it. */
async function initManifest(name: string): Promise<Record<string, unknown>> {
  const run = await runNoma([
    ...['init', 'reboot', '--name', name, '--ticket', 'ENG-11', '-n', ns.name],
    ...['-l', GPU_SELECTOR, '--max-unavailable', '1', '--complete'],
  ]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const manifest = parse(run.stdout) as Record<string, unknown> & { spec: unknown };
  expect(manifest.spec).toMatchObject({
    nodeSelector: GPU_SELECTOR,
    options: { maxUnavailable: 1 },
    actions: [{ type: 'Reboot' }, { type: 'Complete' }],
  });
  return manifest;
}

async function apply(manifest: Record<string, unknown>): Promise<void> {
  await kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    plural: PLURAL,
    namespace: ns.name,
    body: manifest,
  });
}

async function waitCompleted(sampler: FleetSampler, name: string): Promise<NodeMaintenance> {
  await waitFor(
    `${name} Completed`,
    () => {
      if (sampler.phase === 'Failed' || sampler.phase === 'Halted') {
        throw new Error(`maintenance ended ${sampler.phase}`);
      }
      return Promise.resolve(sampler.completedAt !== undefined);
    },
    240_000,
    SAMPLE_MS,
  ).catch(async (err: unknown) => {
    const m = await maintenances(kc, ns.name).get(name);
    throw new Error(`${String(err)}; status: ${JSON.stringify(m?.status)}`);
  });
  const m = await maintenances(kc, ns.name).get(name);
  if (m === undefined) throw new Error(`${name} is gone`);
  return m;
}

async function removeMaintenance(name: string): Promise<void> {
  const ms = maintenances(kc, ns.name);
  await ms.remove(name);
  await waitFor(`${name} deleted`, async () => (await ms.get(name)) === undefined);
}

/** Back in service: uncordoned, no noma taint, label, claim or maintenance annotation. */
function expectReturned(node: V1Node): void {
  const name = node.metadata?.name ?? '';
  expect(node.spec?.unschedulable ?? false, `${name} unschedulable`).toBe(false);
  const taints = (node.spec?.taints ?? []).map((t) => t.key);
  expect(
    taints.filter((k) => k.startsWith('noma.dev/')),
    `${name} taints`,
  ).toEqual([]);
  expect(node.metadata?.annotations ?? {}, `${name} annotations`).not.toHaveProperty([
    CLAIM_ANNOTATION,
  ]);
  expect(node.metadata?.labels ?? {}, `${name} labels`).not.toHaveProperty([MAINTENANCE_LABEL]);
}

interface Observed {
  m: NodeMaintenance;
  sampler: FleetSampler;
  /** The same figures over every version the API server reported, between samples too. */
  watched: { maxUnschedulable: number; minHealthy: number; everUnschedulable: string[] };
  toCompletedMs: number;
}

/** Applies the manifest and watches the fleet until the maintenance reads Completed. */
async function applyAndWatch(name: string, manifest: Record<string, unknown>): Promise<Observed> {
  const sampler = new FleetSampler(name);
  const [nodeVersions, podVersions] = await Promise.all([
    recordNodes(kc, GPU_SELECTOR),
    recordInference(),
  ]);
  sampler.start();
  const appliedAt = performance.now();
  let m: NodeMaintenance;
  try {
    await apply(manifest);
    // Runs first in afterAll, while the coordinator can still remove its finalizer.
    cleanups.push(() => removeMaintenance(name));
    m = await waitCompleted(sampler, name);
  } finally {
    await sampler.stop();
    await Promise.all([nodeVersions.stop(), podVersions.stop()]);
  }
  return {
    m,
    sampler,
    watched: {
      maxUnschedulable: nodeVersions.maxUnschedulable(gpuNodes),
      minHealthy: minHealthyOverVersions(podVersions.seen),
      everUnschedulable: nodeVersions.everUnschedulable(gpuNodes),
    },
    toCompletedMs: Math.round((sampler.completedAt ?? Number.NaN) - appliedAt),
  };
}

/** The one line the closing note quotes. */
function printScenario({ sampler, watched, toCompletedMs }: Observed): void {
  console.log(
    `SCENARIO gpu-fleet reboot: gpuNodes=${gpuNodes.length} ` +
      `maxUnschedulableGpuNodes=${sampler.maxUnschedulable} (every Node version: ` +
      `${watched.maxUnschedulable}) minHealthyInference=${sampler.minHealthy} (every pod ` +
      `version: ${watched.minHealthy}; PDB minAvailable 2) applyToCompletedMs=${toCompletedMs} ` +
      `samples=${sampler.samples} sampleEveryMs=${SAMPLE_MS} ` +
      `maxSampleGapMs=${Math.round(sampler.maxGapMs)} sampleErrors=${sampler.errors}`,
  );
}

/** Rebooted once by its machine, drained of every workload pod before, back in service. */
async function expectRebooted(m: NodeMaintenance, n: string, bootIDBefore: string): Promise<void> {
  const s = nodeStatus(m, n);
  expect(s?.phase, `${n} phase`).toBe('Succeeded');
  expect(s?.drain?.scope, `${n} drain scope`).toBe('AllPods');
  expect(s?.drain?.pending, `${n} drain pending`).toBe(0);
  const node = fleet.get(n);
  if (node === undefined) throw new Error(`no fleet node ${n}`);
  expect(node.machine.reboots, `${n} reboots`).toBe(1);
  const after = await bootIDOf(n);
  expect(after, `${n} bootID`).not.toBe(bootIDBefore);
  expect(await readFile(join(node.home, 'boot_id'), 'utf8')).toBe(`${after}\n`);
  // Drained before the reboot: neither an inference pod nor a router was still there.
  expect(node.podsAtReboot, `${n} pods when it went down`).toEqual([]);
  expectReturned(await core.readNode({ name: n }));
}

// ---- the scenario ----------------------------------------------------------------------------

describe('issue 11: reboot a GPU fleet under an inference Deployment with a PDB', () => {
  it('reboots every GPU node one at a time, never breaks the PDB, drains routers before the reboot', async () => {
    onTestFailed(() => {
      console.log(`--- coordinator ---\n${coordinator.logs.slice(-120).join('\n')}`);
      for (const n of fleet.values()) {
        console.log(`--- agent ${n.name} ---\n${n.agent.logs.slice(-40).join('\n')}`);
      }
    });
    const initial = await deployWorkloads();
    const routersOnGpu = initial.routers.filter((p) => gpuNodes.includes(p.spec?.nodeName ?? ''));
    expect(routersOnGpu.length).toBeGreaterThanOrEqual(1);
    const before = await Promise.all(gpuNodes.map(bootIDOf));

    const name = uniqueName('gpu-reboot');
    const observed = await applyAndWatch(name, await initManifest(name));
    printScenario(observed);
    const { m, sampler, watched } = observed;
    expect(sampler.violations).toEqual([]);
    expect(sampler.maxUnschedulable).toBe(1);
    expect(sampler.minHealthy).toBeGreaterThanOrEqual(2);
    expect(sampler.errors).toBe(0);
    expect(watched.maxUnschedulable).toBe(1);
    expect(watched.minHealthy).toBeGreaterThanOrEqual(2);
    expect(watched.everUnschedulable).toEqual([...gpuNodes].sort());

    for (const [i, n] of gpuNodes.entries()) await expectRebooted(m, n, before[i] ?? '');
    // The CPU node was never selected.
    expect(nodeStatus(m, cpuNode)).toBeUndefined();
    // Every pod that ran on a GPU node at the start was evicted (the routers included) and
    // replaced; the Deployments are whole again.
    const gone = [...initial.inference, ...routersOnGpu].map((p) => p.metadata?.uid);
    const now = [...(await podsOf(INFERENCE)), ...(await podsOf(ROUTER))];
    expect(now.filter((p) => gone.includes(p.metadata?.uid))).toEqual([]);
    await waitFor('Deployments whole again', async () => {
      const [inf, r] = await Promise.all([podsOf(INFERENCE), podsOf(ROUTER)]);
      return inf.filter(isHealthy).length === 3 && r.filter(isHealthy).length === 2;
    });
  }, 300_000);
});
