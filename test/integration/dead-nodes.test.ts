// Issue 12, dead nodes in a maintenance, against the real API server and coordinator process:
// a Node without a kubelet (no KWOK annotation, Ready=False written by the test) whose evicted
// pods stay Terminating forever is still removed by `noma init delete-node`; a node whose agent
// never connects fails after options.agentTimeout with AgentUnavailable, also across a restart
// of the coordinator, and the maintenance halts.
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CoreV1Api,
  CustomObjectsApi,
  type CoreV1Event,
  type V1Node,
  type V1Pod,
} from '@kubernetes/client-node';
import { parse } from 'yaml';
import {
  afterAll,
  afterEach,
  beforeAll,
  beforeEach,
  describe,
  expect,
  inject,
  it,
  onTestFailed,
} from 'vitest';
import { GROUP, PLURAL, VERSION, type NodeMaintenance } from '../../shared/api/index.js';
import { runNoma } from '../support/cli.js';
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
import { maintenances, nodeStatus } from '../support/maintenance.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);
let ns: Awaited<ReturnType<typeof createNamespace>>;
let coordinator: CoordinatorProcess;
const nodes: string[] = [];
const leaseName = uniqueName('lease');
const coordinatorArgs = () => [
  ...testCoordinatorArgs(ns.name, leaseName, 'dead-nodes-under-test'),
  '--agent-retry',
  '500ms',
];

const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  await installCRD(kc);
  ns = await createNamespace('deadnodes');
  coordinator = await startCoordinator(inject('kubeconfig'), coordinatorArgs());
});

afterAll(async () => {
  await coordinator.kill('SIGTERM');
  // Pods bound to a Node that never had a kubelet: removed for good, grace period 0.
  const pods = await core.listNamespacedPod({ namespace: ns.name });
  await Promise.all(
    pods.items.map((p) =>
      core
        .deleteNamespacedPod({
          name: p.metadata?.name ?? '',
          namespace: ns.name,
          body: { gracePeriodSeconds: 0 },
        })
        .catch(() => undefined),
    ),
  );
  await ns.remove();
  await Promise.all(nodes.map((n) => deleteSimNode(n).catch(() => undefined)));
});

const nm = () => maintenances(kc, ns.name);
const getMaintenance = (name: string) => nm().get(name);

function watchForCleanup(name: string): void {
  cleanups.push(async () => {
    await nm()
      .remove(name)
      .catch(() => undefined);
    await waitFor(`${name} gone`, async () => (await getMaintenance(name)) === undefined);
  });
}

async function eventsFor(maintenance: string): Promise<CoreV1Event[]> {
  const list = await core.listNamespacedEvent({ namespace: ns.name });
  return list.items.filter((e) => e.involvedObject.name === maintenance);
}

/** A bare pod bound to `node`; it tolerates the node lifecycle controller's taints forever. */
function boundPod(name: string, node: string, gpus: number): V1Pod {
  return {
    metadata: { name },
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: 30,
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' },
      ],
      containers: [
        {
          name: 'main',
          image: 'registry.invalid/noma/workload:1',
          ...(gpus > 0
            ? {
                resources: {
                  requests: { 'nvidia.com/gpu': String(gpus) },
                  limits: { 'nvidia.com/gpu': String(gpus) },
                },
              }
            : {}),
        },
      ],
    },
  };
}

const readNode = (name: string): Promise<V1Node> => core.readNode({ name });

describe('dead nodes in a maintenance', () => {
  beforeEach(() => {
    onTestFailed(() => {
      console.log(coordinator.logs.slice(-80).join('\n'));
    });
  });

  afterEach(async () => {
    const errors: unknown[] = [];
    for (const c of cleanups.splice(0).reverse()) await c().catch((e: unknown) => errors.push(e));
    if (errors.length > 0) throw errors[0];
  });

  it('removes a dead node with GPU pods through noma init delete-node', async () => {
    const node = uniqueName('dead');
    nodes.push(node);
    await createNotReadyNode(node, { capacity: { 'nvidia.com/gpu': '8' } });
    await Promise.all([
      core.createNamespacedPod({ namespace: ns.name, body: boundPod('train-0', node, 4) }),
      core.createNamespacedPod({ namespace: ns.name, body: boundPod('train-1', node, 4) }),
      // Not a GPU pod: the drain before DeleteNode evicts it, and it hangs there too.
      core.createNamespacedPod({ namespace: ns.name, body: boundPod('exporter', node, 0) }),
    ]);

    const dir = await mkdtemp(join(tmpdir(), 'noma-dead-'));
    const file = join(dir, 'delete.yaml');
    const run = await runNoma([
      'init',
      'delete-node',
      '--name',
      'remove-dead',
      '--ticket',
      'ENG-12',
      '--nodes',
      node,
      '--drain-timeout',
      '20s',
      '--skip-wait-for-delete-timeout',
      '2s',
      '--evict-unmanaged-pods',
      '-n',
      ns.name,
      '-o',
      file,
    ]);
    expect(run.code, run.stderr).toBe(0);
    const manifest = parse(await readFile(file, 'utf8')) as NodeMaintenance;
    expect(manifest.spec.options).toMatchObject({
      drainTimeout: '20s',
      skipWaitForDeleteTimeout: '2s',
    });

    const started = Date.now();
    await custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      namespace: ns.name,
      body: { ...manifest, metadata: { ...manifest.metadata, namespace: ns.name } },
    });
    watchForCleanup('remove-dead');
    // drainTimeout + skipWaitForDeleteTimeout + a margin.
    const done = await nm().waitPhase(
      'remove-dead',
      ['Completed', 'Failed'],
      20_000 + 2_000 + 10_000,
    );
    const took = Date.now() - started;
    expect(nodeStatus(done, node), nodeStatus(done, node)?.message).toMatchObject({
      phase: 'Succeeded',
      drain: { total: 3, evicted: 3, pending: 0 },
    });
    expect(took).toBeLessThan(32_000);
    await expect(readNode(node)).rejects.toMatchObject({ code: 404 });

    // Nothing on the node ever confirmed a deletion: the pods were counted gone, not gone; the
    // pod garbage collector removes them now that their Node is gone.
    const left = await core.listNamespacedPod({ namespace: ns.name });
    const terminating = left.items.filter((p) => p.metadata?.deletionTimestamp !== undefined);
    expect(terminating.map((p) => p.metadata?.name).sort()).toEqual([
      'exporter',
      'train-0',
      'train-1',
    ]);
  });

  it('forceDrain removes the pods of a dead node at once (grace period 0)', async () => {
    const node = uniqueName('dead-force');
    nodes.push(node);
    await createNotReadyNode(node, { capacity: { 'nvidia.com/gpu': '8' } });
    await Promise.all([
      core.createNamespacedPod({ namespace: ns.name, body: boundPod('force-gpu', node, 8) }),
      core.createNamespacedPod({ namespace: ns.name, body: boundPod('force-cpu', node, 0) }),
    ]);
    const run = await runNoma([
      'init',
      'delete-node',
      '--name',
      'force-dead',
      '--ticket',
      'ENG-12',
      '--nodes',
      node,
      '--drain-timeout',
      '3s',
      '--force-drain',
      // Longer than the test: only the forced delete can end these pods.
      '--skip-wait-for-delete-timeout',
      '10m',
      '--evict-unmanaged-pods',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const manifest = parse(run.stdout) as NodeMaintenance;
    await custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      namespace: ns.name,
      body: { ...manifest, metadata: { ...manifest.metadata, namespace: ns.name } },
    });
    watchForCleanup('force-dead');
    // Two drains (GPU pods, then the rest before DeleteNode), each 3 s, plus a margin.
    const done = await nm().waitPhase('force-dead', ['Completed', 'Failed'], 20_000);
    expect(nodeStatus(done, node), nodeStatus(done, node)?.message).toMatchObject({
      phase: 'Succeeded',
    });
    for (const name of ['force-gpu', 'force-cpu']) {
      await expect(
        core.readNamespacedPod({ name, namespace: ns.name }),
        `${name} removed`,
      ).rejects.toMatchObject({ code: 404 });
    }
    await expect(readNode(node)).rejects.toMatchObject({ code: 404 });
  });

  it('fails a node whose agent never connects after agentTimeout, and halts', async () => {
    const group = uniqueName('noagent');
    const names = [uniqueName('noagent'), uniqueName('noagent')];
    nodes.push(...names);
    await Promise.all(
      names.map((n) =>
        createSimNode(n, {
          capacity: { 'nvidia.com/gpu': '8' },
          labels: { 'noma.dev/test-group': group },
        }),
      ),
    );
    await nm().create('no-agent', {
      nodeSelector: `noma.dev/test-group=${group}`,
      options: { maxUnavailable: 1, agentTimeout: '3s' },
      actions: [{ type: 'Script', name: 'fix', script: { script: 'echo fix' } }],
    });
    watchForCleanup('no-agent');

    const halted = await nm().waitPhase('no-agent', 'Halted', 30_000);
    const failed = (halted.status?.nodes ?? []).filter((n) => n.phase === 'Failed');
    expect(failed).toHaveLength(1);
    const f = failed[0];
    expect(f?.message).toMatch(/^AgentUnavailable: no agent/);
    const waited = Date.parse(f?.lastTransitionTime ?? '') - Date.parse(f?.agentWaitSince ?? '');
    expect(waited).toBeGreaterThanOrEqual(3_000);
    expect(waited).toBeLessThan(3_000 + 2_500);
    // The other node never started: the failure budget (maxFailedNodes 1) is spent.
    const other = (halted.status?.nodes ?? []).find((n) => n.name !== f?.name);
    expect(other?.phase ?? 'Pending').toBe('Pending');
    await waitFor('AgentUnavailable Event', async () =>
      (await eventsFor('no-agent')).some(
        (e) => e.reason === 'AgentUnavailable' && e.type === 'Warning',
      ),
    );
  });

  it('counts the wait for an agent from status across a coordinator restart', async () => {
    const node = uniqueName('noagent-restart');
    nodes.push(node);
    await createSimNode(node, { capacity: { 'nvidia.com/gpu': '8' } });
    await nm().create('no-agent-restart', {
      nodeSelector: `kubernetes.io/hostname=${node}`,
      options: { agentTimeout: '10s' },
      actions: [{ type: 'Script', name: 'fix', script: { script: 'echo fix' } }],
    });
    watchForCleanup('no-agent-restart');
    const since = await waitFor('the wait for the agent in status', async () => {
      const s = nodeStatus(await getMaintenance('no-agent-restart'), node)?.agentWaitSince;
      return s === undefined ? undefined : Date.parse(s);
    });

    // Killed 4 s into the wait: the new leader must fail the node 6 s after, not 10 s.
    await sleep(Math.max(0, since + 4_000 - Date.now()));
    await coordinator.kill('SIGKILL');
    const restarted = Date.now();
    coordinator = await startCoordinator(inject('kubeconfig'), coordinatorArgs());
    const failed = await waitFor(
      'the node failed',
      async () => {
        const n = nodeStatus(await getMaintenance('no-agent-restart'), node);
        return n?.phase === 'Failed' ? n : undefined;
      },
      30_000,
      200,
    );
    const failedAt = Date.parse(failed.lastTransitionTime ?? '');
    expect(failed.message).toMatch(/^AgentUnavailable/);
    expect(failed.agentWaitSince).toBe(new Date(since).toISOString());
    expect(failedAt - since).toBeGreaterThanOrEqual(10_000);
    // A wait restarted with the new coordinator would end 10 s after the restart at the earliest.
    expect(failedAt).toBeLessThan(restarted + 10_000);
  });
});
