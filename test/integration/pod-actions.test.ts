// Steps that run as pods on the node (Script/Run with an image, InteractiveShell), with the real
// coordinator process and API server. KWOK makes the pods on simulated nodes Running; the tests
// play the kubelet's part that KWOK does not (a container's exit) by writing the pod's status
// with the admin identity, as simulateReboot does for a Node's bootID.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type CoreV1Event,
  type V1Pod,
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
import { GROUP, PLURAL, VERSION } from '../../shared/api/index.js';
import {
  startCoordinator,
  testCoordinatorArgs,
  type CoordinatorProcess,
} from '../support/coordinator-process.js';
import { installCRD } from '../support/crd.js';
import { maintenances, nodeStatus } from '../support/maintenance.js';
import {
  adminKubeConfig,
  createNamespace,
  createSimNode,
  deleteSimNode,
  uniqueName,
  waitFor,
} from '../support/kube.js';

const run = promisify(execFile);
const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
let ns: Awaited<ReturnType<typeof createNamespace>>;
let coordinator: CoordinatorProcess;
const nodes: string[] = [];
const leaseName = uniqueName('lease');
const IMAGE = 'maintenance-tools:test';

// No agent link flags: these steps need no agent. The coordinator's namespace (--namespace) is
// the test's, so its pods are created there.
const coordinatorArgs = () => [
  ...testCoordinatorArgs(ns.name, leaseName, 'pod-actions-under-test'),
];

beforeAll(async () => {
  await installCRD(kc);
  ns = await createNamespace('podact');
  coordinator = await startCoordinator(inject('kubeconfig'), coordinatorArgs());
});

afterAll(async () => {
  await coordinator.kill('SIGTERM');
  await ns.remove();
  await Promise.all(nodes.map(deleteSimNode));
});

async function simNode(prefix: string): Promise<string> {
  const name = uniqueName(prefix);
  nodes.push(name);
  await createSimNode(name, { capacity: { 'nvidia.com/gpu': '8' } });
  return name;
}

const createMaintenance = (name: string, spec: Record<string, unknown>) =>
  maintenances(kc, ns.name).create(name, spec);
const getMaintenance = (name: string) => maintenances(kc, ns.name).get(name);

const waitPhase = (name: string, phase: string | readonly string[], timeoutMs?: number) =>
  maintenances(kc, ns.name).waitPhase(name, phase, timeoutMs);

const actionPods = async (node?: string): Promise<V1Pod[]> =>
  (
    await core.listNamespacedPod({
      namespace: ns.name,
      labelSelector: 'app.kubernetes.io/name=noma,app.kubernetes.io/component=action',
    })
  ).items.filter((p) => node === undefined || p.spec?.nodeName === node);

/** The step's pod on `node`, once KWOK runs it. */
const runningPod = (node: string): Promise<V1Pod> =>
  waitFor(`action pod Running on ${node}`, async () => {
    const pods = await actionPods(node);
    return pods.find((p) => p.status?.phase === 'Running');
  });

/**
 * Deleted: gone, or Terminating (a running pod's grace period is the kubelet's business; KWOK
 * removes it at some point within it). A finished pod is removed at once.
 */
const podDeleted = (name: string) =>
  waitFor(`pod ${name} deleted`, () =>
    core.readNamespacedPod({ name, namespace: ns.name }).then(
      (p) => p.metadata?.deletionTimestamp !== undefined,
      (err: unknown) => (err as { code?: number }).code === 404,
    ),
  );

/** The kubelet's part: the container exited. */
async function exitContainer(
  pod: V1Pod,
  exitCode: number,
  terminationMessage: string,
): Promise<void> {
  const container = pod.spec?.containers[0];
  await core.patchNamespacedPodStatus(
    {
      name: pod.metadata?.name ?? '',
      namespace: ns.name,
      body: {
        status: {
          phase: exitCode === 0 ? 'Succeeded' : 'Failed',
          containerStatuses: [
            {
              name: container?.name,
              image: container?.image,
              imageID: '',
              ready: false,
              restartCount: 0,
              state: {
                terminated: {
                  exitCode,
                  reason: exitCode === 0 ? 'Completed' : 'Error',
                  message: terminationMessage,
                },
              },
            },
          ],
        },
      },
    },
    MERGE,
  );
}

async function eventsFor(maintenance: string): Promise<CoreV1Event[]> {
  const list = await core.listNamespacedEvent({ namespace: ns.name });
  return list.items.filter((e) => e.involvedObject.name === maintenance);
}

describe('steps that run as pods', () => {
  beforeEach(() => {
    onTestFailed(() => {
      console.log(coordinator.logs.slice(-60).join('\n'));
    });
  });

  it('runs an image-based Script as a pod on a simulated node, across a coordinator restart', async () => {
    const node = await simNode('pod-script');
    await createMaintenance('script', {
      nodeSelector: `kubernetes.io/hostname=${node}`,
      options: { taints: [{ key: 'runai', value: 'drain', effect: 'NoExecute' }] },
      actions: [
        {
          type: 'Script',
          name: 'driver check',
          timeout: '10m',
          script: { script: 'echo "$1 on $NOMA_NODE_NAME" $$', args: ['hello'], image: IMAGE },
        },
        { type: 'Complete' },
      ],
    });
    const pod = await runningPod(node);
    const name = pod.metadata?.name ?? '';
    const spec = pod.spec;
    const c = spec?.containers[0];
    expect(spec?.nodeName).toBe(node);
    expect(spec?.restartPolicy).toBe('Never');
    expect(spec?.hostPID).toBe(true);
    expect(spec?.tolerations).toContainEqual({ operator: 'Exists' });
    expect(c?.image).toBe(IMAGE);
    expect(c?.securityContext?.privileged).toBe(true);
    expect(c?.volumeMounts?.map((m) => m.mountPath)).toContain('/host');
    expect(spec?.volumes?.find((v) => v.hostPath?.path === '/')).toBeDefined();
    // The kubelet turns `$$` into `$`: what bash gets is the script as written.
    expect(c?.command).toEqual([
      'bash',
      '-c',
      'echo "$$1 on $$NOMA_NODE_NAME" $$$$',
      'noma-script',
      'hello',
    ]);

    const recorded = await waitFor('the job in status', async () => {
      const m = await getMaintenance('script');
      return nodeStatus(m, node)?.job?.pod === name ? m : undefined;
    });
    expect(recorded.status?.pendingJobs).toEqual([name]);
    const created = new Date(pod.metadata?.creationTimestamp ?? 0).getTime();
    const timeoutAt = Date.parse(recorded.status?.jobTimeoutAt ?? '');
    expect(Math.abs(timeoutAt - (created + 600_000))).toBeLessThan(60_000);
    expect(nodeStatus(recorded, node)).toMatchObject({
      phase: 'InAction',
      job: { pod: name, namespace: ns.name, timeoutAt: recorded.status?.jobTimeoutAt },
    });

    // A new coordinator attaches to the same pod instead of creating a second one.
    await coordinator.kill('SIGKILL');
    coordinator = await startCoordinator(inject('kubeconfig'), coordinatorArgs());
    await new Promise((r) => setTimeout(r, 2_000));
    expect((await actionPods(node)).map((p) => p.metadata?.uid)).toEqual([pod.metadata?.uid]);

    await exitContainer(pod, 0, `hello on ${node} 42\n`);
    const done = await waitPhase('script', 'Completed');
    expect(nodeStatus(done, node)).toMatchObject({
      phase: 'Succeeded',
      lastExitCode: 0,
      outputTail: `hello on ${node} 42\n`,
    });
    expect(nodeStatus(done, node)?.job).toBeUndefined();
    expect(done.status?.pendingJobs).toBeUndefined();
    expect(done.status?.jobTimeoutAt).toBeUndefined();
    await podDeleted(name);
    expect((await core.readNode({ name: node })).spec?.unschedulable).toBeFalsy();
    // KWOK nodes have no kubelet to serve logs: the status says where the tail came from.
    await waitFor('ActionSucceeded event naming the termination message', async () =>
      (await eventsFor('script')).some(
        (e) => e.reason === 'ActionSucceeded' && e.message?.includes('termination message'),
      ),
    );
  });

  it('fails only the node whose image-based Run exits non-zero, with the exit code in status', async () => {
    const bad = await simNode('pod-run-bad');
    const good = await simNode('pod-run-good');
    await createMaintenance('run', {
      nodeSelector: `kubernetes.io/hostname in (${bad},${good})`,
      actions: [
        {
          type: 'Run',
          run: { command: ['nvidia-smi', '-r'], args: ['-i', '0'], image: IMAGE },
        },
      ],
    });
    const [badPod, goodPod] = await Promise.all([runningPod(bad), runningPod(good)]);
    expect(badPod.spec?.containers[0]?.command).toEqual(['nvidia-smi', '-r']);
    expect(badPod.spec?.containers[0]?.args).toEqual(['-i', '0']);
    const names = [badPod.metadata?.name ?? '', goodPod.metadata?.name ?? ''];
    await waitFor('both jobs pending', async () => {
      const m = await getMaintenance('run');
      const pending = m?.status?.pendingJobs ?? [];
      return pending.length === 2 && names.every((n) => pending.includes(n));
    });

    await exitContainer(badPod, 3, 'GPU 0: reset failed\n');
    await exitContainer(goodPod, 0, 'GPU 0: reset\n');
    const failed = await waitPhase('run', 'Failed');
    const b = nodeStatus(failed, bad);
    expect(b).toMatchObject({
      phase: 'Failed',
      lastExitCode: 3,
      outputTail: 'GPU 0: reset failed\n',
    });
    expect(b?.message).toContain(`pod ${badPod.metadata?.name ?? ''} exited with code 3`);
    expect(b?.message).toContain('termination message (pod logs unreadable: ');
    expect(nodeStatus(failed, good)).toMatchObject({ phase: 'Succeeded', lastExitCode: 0 });
    expect(failed.status?.pendingJobs).toBeUndefined();
    await Promise.all(names.map(podDeleted));
    // A failed node stays cordoned; the good one has no Complete step, so it does too.
    expect((await core.readNode({ name: bad })).spec?.unschedulable).toBe(true);
  });

  it('fails a step whose pod does not finish in time, and deletes the pod', async () => {
    const node = await simNode('pod-timeout');
    await createMaintenance('slow', {
      nodeSelector: `kubernetes.io/hostname=${node}`,
      actions: [{ type: 'Run', timeout: '3s', run: { command: ['sleep', '1d'], image: IMAGE } }],
    });
    const pod = await runningPod(node);
    const failed = await waitPhase('slow', 'Failed', 30_000);
    expect(nodeStatus(failed, node)?.message).toMatch(
      /^TimedOut: pod \S+ did not finish within 3s/,
    );
    await podDeleted(pod.metadata?.name ?? '');
  });

  it('keeps an InteractiveShell open until a human releases it with the annotation', async () => {
    const node = await simNode('pod-shell');
    await createMaintenance('shell', {
      nodeSelector: `kubernetes.io/hostname=${node}`,
      actions: [
        { type: 'InteractiveShell', interactiveShell: { image: 'debug:1', tty: true } },
        { type: 'Complete' },
      ],
    });
    const pod = await runningPod(node);
    const name = pod.metadata?.name ?? '';
    const c = pod.spec?.containers[0];
    expect(c).toMatchObject({ name: 'shell', stdin: true, tty: true, command: ['/bin/sh'] });
    const waiting = await waitFor('the exec command in status', async () => {
      const s = nodeStatus(await getMaintenance('shell'), node);
      return s?.job?.execCommand === undefined || s.message === undefined ? undefined : s;
    });
    expect(waiting.job?.execCommand).toBe(
      `kubectl -n ${ns.name} exec -it ${name} -c shell -- /bin/sh`,
    );
    const release = waiting.job?.releaseCommand ?? '';
    expect(release).toBe(
      `kubectl -n ${ns.name} annotate nodemaintenances.noma.dev shell noma.dev/release=${node}/0 --overwrite`,
    );
    expect(waiting.message).toContain(waiting.job?.execCommand ?? '?');

    // Nothing ends it but a human.
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await getMaintenance('shell'))?.status?.phase).toBe('Running');
    expect((await actionPods(node)).map((p) => p.metadata?.name)).toEqual([name]);

    // The command from status, as a human would run it.
    const [cmd, ...args] = release.split(' ');
    expect(cmd).toBe('kubectl');
    await run('kubectl', ['--kubeconfig', inject('kubeconfig'), ...args]);
    const done = await waitPhase('shell', 'Completed');
    expect(nodeStatus(done, node)?.phase).toBe('Succeeded');
    await podDeleted(name);
    expect((await core.readNode({ name: node })).spec?.unschedulable).toBeFalsy();
  });

  it('completes an InteractiveShell whose pod is deleted', async () => {
    const node = await simNode('pod-shell-del');
    await createMaintenance('shell-deleted', {
      nodeSelector: `kubernetes.io/hostname=${node}`,
      actions: [{ type: 'InteractiveShell', interactiveShell: { image: 'debug:1' } }],
    });
    const pod = await runningPod(node);
    await core.deleteNamespacedPod({ name: pod.metadata?.name ?? '', namespace: ns.name });
    const done = await waitPhase('shell-deleted', 'Completed');
    expect(nodeStatus(done, node)?.phase).toBe('Succeeded');
  });

  it('deletes the pod when the NodeMaintenance is deleted mid-step, and restores the node', async () => {
    const node = await simNode('pod-cancel');
    await createMaintenance('cancel', {
      nodeSelector: `kubernetes.io/hostname=${node}`,
      actions: [{ type: 'Script', script: { script: 'sleep 3600', image: IMAGE } }],
    });
    const pod = await runningPod(node);
    await waitFor('the job in status', async () =>
      nodeStatus(await getMaintenance('cancel'), node)?.job !== undefined ? true : undefined,
    );
    await kc.makeApiClient(CustomObjectsApi).deleteNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      namespace: ns.name,
      name: 'cancel',
    });
    await podDeleted(pod.metadata?.name ?? '');
    await waitFor('the maintenance gone', async () =>
      (await getMaintenance('cancel')) === undefined ? true : undefined,
    );
    expect((await core.readNode({ name: node })).spec?.unschedulable).toBeFalsy();
  });
});
