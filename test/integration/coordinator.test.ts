// The coordinator process against the real API server: selection, blast radius, cordon and
// taints, drain, Complete, Notify, deletion, and SIGKILL at several points of a maintenance.
import {
  CoreV1Api,
  PatchStrategy,
  PolicyV1Api,
  setHeaderOptions,
  type CoreV1Event,
  type V1Node,
} from '@kubernetes/client-node';
import {
  afterAll,
  beforeAll,
  beforeEach,
  describe,
  expect,
  inject,
  it,
  onTestFailed,
} from 'vitest';
import type { NodeStatus } from '../../shared/api/index.js';
import { installCRD } from '../support/crd.js';
import { startWebhookRecorder, type WebhookRecorder } from '../support/webhook.js';
import { maintenances, nodeStatus } from '../support/maintenance.js';
import {
  startCoordinator,
  testCoordinatorArgs,
  type CoordinatorProcess,
} from '../support/coordinator-process.js';
import {
  adminKubeConfig,
  createNamespace,
  createSimNode,
  deleteSimNode,
  uniqueName,
  waitFor,
} from '../support/kube.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
let ns: Awaited<ReturnType<typeof createNamespace>>;
let coordinator: CoordinatorProcess;
const nodes: string[] = [];
let webhook: WebhookRecorder;
const leaseName = uniqueName('lease');
const coordinatorArgs = () => [
  ...testCoordinatorArgs(ns.name, leaseName, 'coordinator-under-test'),
  '--notify-webhook-url',
  webhook.url,
];

beforeAll(async () => {
  await installCRD(kc);
  ns = await createNamespace('coord');
  webhook = await startWebhookRecorder();
  coordinator = await startCoordinator(inject('kubeconfig'), coordinatorArgs());
});

afterAll(async () => {
  await coordinator.kill('SIGTERM');
  await webhook.close();
  await ns.remove();
  await Promise.all(nodes.map(deleteSimNode));
});

async function simNode(prefix: string, opts: Parameters<typeof createSimNode>[1] = {}) {
  const name = uniqueName(prefix);
  nodes.push(name);
  await createSimNode(name, { capacity: { 'nvidia.com/gpu': '8' }, ...opts });
  return name;
}

function gpuPod(name: string, node: string, gpu = true) {
  return {
    metadata: { name },
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: 'main',
          image: 'registry.invalid/app:1',
          resources: gpu ? { limits: { 'nvidia.com/gpu': '1' } } : {},
        },
      ],
    },
  };
}

const createMaintenance = (name: string, spec: Record<string, unknown>) =>
  maintenances(kc, ns.name).create(name, spec);
const getMaintenance = (name: string) => maintenances(kc, ns.name).get(name);

const waitPhase = (name: string, phase: string | readonly string[], timeoutMs?: number) =>
  maintenances(kc, ns.name).waitPhase(name, phase, timeoutMs);

const deleteMaintenance = (name: string) => maintenances(kc, ns.name).remove(name);

const readNode = (name: string): Promise<V1Node> => core.readNode({ name });

/**
 * The node's taints other than the node lifecycle controller's (node.kubernetes.io/*, e.g.
 * unschedulable while cordoned), which follow the node's state a moment later on their own.
 */
const taintKeys = (node: V1Node): string[] =>
  (node.spec?.taints ?? []).map((t) => t.key).filter((k) => !k.startsWith('node.kubernetes.io/'));

async function eventsFor(maintenance: string): Promise<CoreV1Event[]> {
  const list = await core.listNamespacedEvent({ namespace: ns.name });
  return list.items.filter((e) => e.involvedObject.name === maintenance);
}

describe('coordinator', () => {
  beforeEach(() => {
    onTestFailed(() => {
      console.log(coordinator.logs.slice(-60).join('\n'));
    });
  });

  it('cordons, taints, drains GPU pods, notifies and returns nodes to service', async () => {
    const plain = await simNode('plain', {
      taints: [{ key: 'example.com/foreign', value: 'x', effect: 'NoSchedule' }],
    });
    const precordoned = await simNode('cordoned', { unschedulable: true });
    for (const [i, node] of [plain, precordoned].entries()) {
      await core.createNamespacedPod({ namespace: ns.name, body: gpuPod(`gpu-${i}`, node) });
      await core.createNamespacedPod({ namespace: ns.name, body: gpuPod(`cpu-${i}`, node, false) });
    }
    await createMaintenance('full', {
      nodeSelector: `kubernetes.io/hostname in (${plain},${precordoned})`,
      options: {
        evictUnmanagedPods: true,
        // NoSchedule: a NoExecute taint would make the taint manager evict the CPU pods too.
        taints: [{ key: 'runai', value: 'drain', effect: 'NoSchedule' }],
      },
      actions: [
        { type: 'Notify', notify: { channel: '#gpu-ops', message: 'drained' } },
        { type: 'Complete' },
      ],
    });
    const done = await waitPhase('full', 'Completed');
    expect(done.status?.observedNodes).toEqual([plain, precordoned].sort());
    expect(done.status?.progress).toBe('2/2');
    expect(done.metadata.finalizers).toContain('noma.dev/finalizer');
    for (const n of [plain, precordoned]) {
      const s = nodeStatus(done, n);
      expect(s?.phase).toBe('Succeeded');
      expect(s?.drain).toMatchObject({ total: 1, evicted: 1, pending: 0 });
    }
    expect(nodeStatus(done, precordoned)?.initialState?.unschedulable).toBe(true);

    const a = await readNode(plain);
    expect(a.spec?.unschedulable).toBeFalsy();
    expect(taintKeys(a)).toEqual(['example.com/foreign']);
    expect(a.metadata?.labels?.['noma.dev/maintenance']).toBeUndefined();
    const b = await readNode(precordoned);
    expect(b.spec?.unschedulable).toBe(true); // noma never uncordons what it did not cordon
    expect(taintKeys(b)).toEqual([]);

    // GPU pods were evicted, non-GPU pods stayed.
    const pods = await core.listNamespacedPod({ namespace: ns.name });
    expect(pods.items.map((p) => p.metadata?.name).sort()).toEqual(['cpu-0', 'cpu-1']);
    expect(webhook.posts.filter((p) => p.channel === '#gpu-ops')).toHaveLength(2);
    // Events are recorded after the status they describe, so the last one may trail a moment.
    await waitFor('Cordoned, Drained and Completed events', async () => {
      const reasons = new Set((await eventsFor('full')).map((e) => e.reason));
      return ['Cordoned', 'Drained', 'Completed'].every((r) => reasons.has(r));
    });

    const metrics = await (await fetch(`${coordinator.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/noma_drain_events_total\{event="evicted"\} [2-9]/);
    expect(metrics).toMatch(/noma_maintenances\{phase="Completed"\} [1-9]/);
    expect(metrics).toMatch(/noma_drain_duration_seconds_count\{result="drained"\} [2-9]/);
    const ready = await fetch(`${coordinator.baseUrl}/readyz`);
    expect(await ready.json()).toMatchObject({ ready: true, role: 'leader' });
  });

  it('fails a maintenance whose selector matches nothing, saying so', async () => {
    await createMaintenance('nomatch', { nodeSelector: 'noma.dev/test=does-not-exist' });
    const failed = await waitPhase('nomatch', 'Failed');
    const ready = failed.status?.conditions?.find((c) => c.type === 'Ready');
    expect(ready).toMatchObject({ status: 'False', reason: 'NoNodesSelected' });
    expect(ready?.message).toContain('matched no nodes');
  });

  it('refuses control-plane nodes unless allowed', async () => {
    const cp = await simNode('cp', { labels: { 'node-role.kubernetes.io/control-plane': '' } });
    await createMaintenance('cp', { nodeSelector: `kubernetes.io/hostname=${cp}` });
    const failed = await waitPhase('cp', 'Failed');
    expect(failed.status?.conditions?.find((c) => c.type === 'Ready')?.reason).toBe(
      'ControlPlaneRefused',
    );
    expect((await readNode(cp)).spec?.unschedulable).toBeFalsy();
  });

  it('honours maxUnavailable and returns unfinished nodes when the maintenance is deleted', async () => {
    const group = uniqueName('grp');
    const names = await Promise.all(
      [1, 2, 3].map(() => simNode('mu', { labels: { 'noma.dev/test-group': group } })),
    );
    // Reboot waits for an agent that is not there: the first node stays in its action.
    await createMaintenance('mu', {
      nodeSelector: `noma.dev/test-group=${group}`,
      options: { maxUnavailable: 1 },
      actions: [{ type: 'Reboot' }, { type: 'Complete' }],
    });
    const m = await waitFor('one node waiting for its agent, two for capacity', async () => {
      const got = await getMaintenance('mu');
      const ns_ = got?.status?.nodes ?? [];
      const inAction = ns_.filter((n) => n.phase === 'InAction' && n.message?.includes('agent'));
      const waiting = ns_.filter(
        (n) => n.phase === 'Pending' && n.message?.includes('maxUnavailable'),
      );
      return inAction.length === 1 && waiting.length === 2 ? got : undefined;
    });
    const busy = m.status?.nodes?.find((n) => n.phase === 'InAction')?.name ?? '';
    expect(nodeStatus(m, busy)?.message).toContain('agent');
    expect((await readNode(busy)).spec?.unschedulable).toBe(true);
    expect(names).toContain(busy);

    await deleteMaintenance('mu');
    await waitFor('maintenance gone', async () => (await getMaintenance('mu')) === undefined);
    const restored = await readNode(busy);
    expect(restored.spec?.unschedulable).toBeFalsy();
    expect(taintKeys(restored)).toEqual([]);
    expect(restored.metadata?.labels?.['noma.dev/maintenance']).toBeUndefined();
  });

  it('deletes the Node with DeleteNode after draining it', async () => {
    const node = await simNode('delete');
    await core.createNamespacedPod({ namespace: ns.name, body: gpuPod('to-delete', node) });
    await createMaintenance('delete', {
      nodeSelector: `kubernetes.io/hostname=${node}`,
      options: { evictUnmanagedPods: true },
      actions: [{ type: 'DeleteNode' }],
    });
    const done = await waitPhase('delete', 'Completed');
    expect(nodeStatus(done, node)).toMatchObject({ phase: 'Succeeded', drain: { evicted: 1 } });
    await expect(readNode(node)).rejects.toMatchObject({ code: 404 });
  });

  it('stops a drain blocked by a PodDisruptionBudget when deleted, and restores the node', async () => {
    const node = await simNode('blocked', {
      taints: [{ key: 'example.com/foreign', value: 'x', effect: 'NoSchedule' }],
    });
    const guarded = {
      ...gpuPod('guarded', node),
      metadata: { name: 'guarded', labels: { app: 'guarded' } },
    };
    await core.createNamespacedPod({ namespace: ns.name, body: guarded });
    await kc.makeApiClient(PolicyV1Api).createNamespacedPodDisruptionBudget({
      namespace: ns.name,
      body: {
        metadata: { name: 'guarded' },
        spec: { minAvailable: 1, selector: { matchLabels: { app: 'guarded' } } },
      },
    });
    await createMaintenance('blocked', {
      nodeSelector: `kubernetes.io/hostname=${node}`,
      options: { evictUnmanagedPods: true },
      actions: [{ type: 'Complete' }],
    });
    const blocked = await waitFor('drain blocked by the PDB', async () => {
      const m = await getMaintenance('blocked');
      const n = m === undefined ? undefined : nodeStatus(m, node);
      return n?.phase === 'Draining' && n.drain?.blockedBy?.name === 'guarded' ? n : undefined;
    });
    expect(blocked.drain?.blockedBy?.kind).toBe('PodDisruptionBudget');
    expect((await readNode(node)).spec?.unschedulable).toBe(true);

    await deleteMaintenance('blocked');
    await waitFor('maintenance gone', async () => (await getMaintenance('blocked')) === undefined);
    const restored = await readNode(node);
    expect(restored.spec?.unschedulable).toBeFalsy();
    expect(taintKeys(restored)).toEqual(['example.com/foreign']);
    // The guarded pod was never evicted.
    const pod = await core.readNamespacedPod({ name: 'guarded', namespace: ns.name });
    expect(pod.metadata?.deletionTimestamp).toBeUndefined();
  });

  it('drains a PDB-protected non-GPU pod through the Eviction API before a Reboot, waiting for it', async () => {
    const node = await simNode('pre-reboot');
    await core.createNamespacedPod({ namespace: ns.name, body: gpuPod('infer', node) });
    const router = {
      ...gpuPod('router', node, false),
      metadata: { name: 'router', labels: { app: 'router' } },
    };
    await core.createNamespacedPod({ namespace: ns.name, body: router });
    const policy = kc.makeApiClient(PolicyV1Api);
    await policy.createNamespacedPodDisruptionBudget({
      namespace: ns.name,
      body: {
        metadata: { name: 'router' },
        spec: { minAvailable: 1, selector: { matchLabels: { app: 'router' } } },
      },
    });
    await createMaintenance('pre-reboot', {
      nodeSelector: `kubernetes.io/hostname=${node}`,
      options: { evictUnmanagedPods: true },
      actions: [{ type: 'Reboot' }],
    });
    // The GPU pod went in the first drain; the router's PDB holds the Reboot back.
    const held = await waitFor('the drain before Reboot blocked by the PDB', async () => {
      const n = nodeStatus(await getMaintenance('pre-reboot'), node);
      return n?.drain?.scope === 'AllPods' && n.drain.blockedBy?.name === 'router' ? n : undefined;
    });
    expect(held.actionID).toBeUndefined();
    expect(held.phase).toBe('Drained');
    await expect(
      core.readNamespacedPod({ name: 'infer', namespace: ns.name }),
    ).rejects.toMatchObject({ code: 404 });
    await new Promise((r) => setTimeout(r, 1_000));
    const still = await core.readNamespacedPod({ name: 'router', namespace: ns.name });
    expect(still.metadata?.deletionTimestamp).toBeUndefined();
    expect(nodeStatus(await getMaintenance('pre-reboot'), node)?.actionID).toBeUndefined();

    // The PDB allows it now: the router is evicted, then the Reboot is sent (and waits for an
    // agent, which this coordinator has none of).
    await policy.patchNamespacedPodDisruptionBudget(
      { name: 'router', namespace: ns.name, body: { spec: { minAvailable: 0 } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const sent = await waitFor('the Reboot step started', async () => {
      const n = nodeStatus(await getMaintenance('pre-reboot'), node);
      return n?.phase === 'InAction' && n.actionID !== undefined ? n : undefined;
    });
    expect(sent.currentActionType).toBe('Reboot');
    expect(sent.drain).toMatchObject({ scope: 'AllPods', evicted: 2, pending: 0 });
    await waitFor('router gone', () =>
      core.readNamespacedPod({ name: 'router', namespace: ns.name }).then(
        () => false,
        (err: unknown) => (err as { code?: number }).code === 404,
      ),
    );
    await deleteMaintenance('pre-reboot');
    await waitFor(
      'maintenance gone',
      async () => (await getMaintenance('pre-reboot')) === undefined,
    );
    expect((await readNode(node)).spec?.unschedulable).toBeFalsy();
  });

  it('lets a Memory emptyDir go and fails a node whose GPU pod keeps emptyDir data on disk', async () => {
    const memory = await simNode('shm');
    const disk = await simNode('disk');
    const withVolume = (name: string, node: string, emptyDir: Record<string, string>) => {
      const pod = gpuPod(name, node);
      return {
        ...pod,
        spec: {
          ...pod.spec,
          volumes: [{ name: 'data', emptyDir }],
          containers: pod.spec.containers.map((c) => ({
            ...c,
            volumeMounts: [{ name: 'data', mountPath: '/dev/shm' }],
          })),
        },
      };
    };
    await core.createNamespacedPod({
      namespace: ns.name,
      body: withVolume('vllm', memory, { medium: 'Memory' }),
    });
    await core.createNamespacedPod({ namespace: ns.name, body: withVolume('cache', disk, {}) });
    await createMaintenance('emptydir', {
      nodeSelector: `kubernetes.io/hostname in (${memory},${disk})`,
      options: { evictUnmanagedPods: true, maxFailedNodes: 2 },
    });
    const m = await waitPhase('emptydir', ['Completed', 'Failed']);
    expect(nodeStatus(m, memory)?.phase).toBe('Succeeded');
    const failed = nodeStatus(m, disk);
    expect(failed?.phase).toBe('Failed');
    expect(failed?.message).toMatch(/cache uses emptyDir local storage on disk/);
    // Nothing was evicted from the refused node.
    const cache = await core.readNamespacedPod({ name: 'cache', namespace: ns.name });
    expect(cache.metadata?.deletionTimestamp).toBeUndefined();
  });

  it('makes a second maintenance of the same node wait for the first', async () => {
    const node = await simNode('shared');
    await createMaintenance('first', {
      nodeSelector: `kubernetes.io/hostname=${node}`,
      actions: [{ type: 'Reboot' }],
    });
    await waitFor('first in action', async () => {
      const m = await getMaintenance('first');
      return m !== undefined && nodeStatus(m, node)?.phase === 'InAction';
    });
    await createMaintenance('second', {
      nodeSelector: `kubernetes.io/hostname=${node}`,
      actions: [{ type: 'Complete' }],
    });
    await waitFor('second waits', async () => {
      const m = await getMaintenance('second');
      return m !== undefined && nodeStatus(m, node)?.message?.includes(`${ns.name}/first`);
    });
    await deleteMaintenance('first');
    await waitPhase('second', 'Completed');
    expect((await readNode(node)).spec?.unschedulable).toBeFalsy();
  });

  it('goes on when the Notify webhook is down, recording the failure', async () => {
    const node = await simNode('notify');
    const down = await startCoordinator(inject('kubeconfig'), [
      ...coordinatorArgs().slice(0, -2),
      '--notify-webhook-url',
      'http://127.0.0.1:9/unreachable',
      '--lease-name',
      uniqueName('lease'),
    ]);
    // The main coordinator must not pick this one up: stop it for the duration.
    await coordinator.kill('SIGTERM');
    try {
      await createMaintenance('notify', {
        nodeSelector: `kubernetes.io/hostname=${node}`,
        actions: [
          { type: 'Notify', notify: { channel: '#ops', message: 'hi' } },
          { type: 'Complete' },
        ],
      });
      const done = await waitPhase('notify', 'Completed');
      const cond = done.status?.conditions?.find((c) => c.type === 'NotificationsDelivered');
      expect(cond).toMatchObject({ status: 'False', reason: 'WebhookFailed' });
      expect(cond?.message).toContain('#ops');
      expect(nodeStatus(done, node)?.phase).toBe('Succeeded');
      await waitFor('a NotifyFailed event', async () =>
        (await eventsFor('notify')).some((e) => e.reason === 'NotifyFailed'),
      );
    } finally {
      await down.kill('SIGTERM');
      coordinator = await startCoordinator(inject('kubeconfig'), coordinatorArgs());
    }
  });

  it('survives SIGKILL at several points and never repeats a finished step', async () => {
    const group = uniqueName('kill');
    const names = await Promise.all(
      [1, 2].map(() => simNode('kill', { labels: { 'noma.dev/test-group': group } })),
    );
    for (const [i, node] of names.entries()) {
      for (let j = 0; j < 3; j++) {
        const pod = gpuPod(`k${i}-${j}`, node);
        pod.spec.terminationGracePeriodSeconds = 3;
        await core.createNamespacedPod({ namespace: ns.name, body: pod });
      }
    }
    const posts = () => webhook.posts.filter((p) => p.channel === `#${group}`).length;
    await createMaintenance('kill', {
      nodeSelector: `noma.dev/test-group=${group}`,
      options: { evictUnmanagedPods: true, maxUnavailable: 1 },
      actions: [
        { type: 'Notify', notify: { channel: `#${group}`, message: 'step' } },
        { type: 'Complete' },
      ],
    });
    const killWhen = async (what: string, pred: (ns: NodeStatus[]) => boolean) => {
      await waitFor(
        what,
        async () => pred((await getMaintenance('kill'))?.status?.nodes ?? []),
        45_000,
        50,
      );
      await coordinator.kill('SIGKILL');
      coordinator = await startCoordinator(inject('kubeconfig'), coordinatorArgs());
    };
    await killWhen('a node cordoned', (s) => s.some((n) => n.phase !== 'Pending'));
    await killWhen('a node draining', (s) => s.some((n) => n.phase === 'Draining'));
    await killWhen('a node done', (s) => s.some((n) => n.phase === 'Succeeded'));
    const done = await waitPhase('kill', 'Completed', 60_000);
    expect(done.status?.nodes?.map((n) => n.phase)).toEqual(['Succeeded', 'Succeeded']);
    for (const n of names) {
      const node = await readNode(n);
      expect(node.spec?.unschedulable, JSON.stringify(done.status?.nodes)).toBeFalsy();
      expect(taintKeys(node)).toEqual([]);
    }
    // Each node was notified exactly once although the coordinator died three times.
    expect(posts()).toBe(2);
    const events = await eventsFor('kill');
    // Cordoned and Drained are written with the next group of changes (docs/state-machine.md,
    // "status first"): a kill in between redoes that idempotent step, and says so again once.
    // A finished node is written at once, and never finishes twice.
    const most = { Cordoned: 2, Drained: 2, NodeSucceeded: 1 };
    for (const [reason, max] of Object.entries(most)) {
      for (const n of names) {
        const count = events.filter((e) => e.reason === reason && e.message?.startsWith(n)).length;
        expect(count, `${reason} ${n}`).toBeLessThanOrEqual(max);
      }
    }
  });
});
