// Issue 13 item 7: the drain's Events reach the API server in production. The real coordinator
// process runs a forceDrain maintenance over a simulated node whose one pod, unmanaged and kept
// by a PodDisruptionBudget, outlasts drainTimeout: the forced delete must leave a Warning
// ForceDrain Event on the Node (and the refused eviction a DrainBlocked Event on the pod).
import { CoreV1Api, type CoreV1Event } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFailed } from 'vitest';
import {
  startCoordinator,
  testCoordinatorArgs,
  type CoordinatorProcess,
} from '../support/coordinator-process.js';
import { installCRD } from '../support/crd.js';
import { DrainFixture } from '../support/drain-fixtures.js';
import {
  adminKubeConfig,
  createNamespace,
  createSimNode,
  deleteSimNode,
  uniqueName,
  waitFor,
} from '../support/kube.js';
import { maintenances, nodeStatus } from '../support/maintenance.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
let ns: Awaited<ReturnType<typeof createNamespace>>;
let coordinator: CoordinatorProcess | undefined;
const node = uniqueName('force-event');

beforeAll(async () => {
  await installCRD(kc);
  ns = await createNamespace('forceevent');
  await createSimNode(node, { capacity: { 'nvidia.com/gpu': '8' } });
});

afterAll(async () => {
  await coordinator?.kill('SIGTERM');
  await ns.remove();
  await deleteSimNode(node);
});

/** Events about `name` of `kind` in `namespace` (Node Events live in "default"). */
async function eventsAbout(namespace: string, kind: string, name: string): Promise<CoreV1Event[]> {
  const list = await core.listNamespacedEvent({
    namespace,
    fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name}`,
  });
  return list.items;
}

describe('forced drain in the coordinator process', () => {
  it('records a Warning ForceDrain Event on the Node', async () => {
    const f = new DrainFixture(kc, ns.name, node);
    await f.barePod('lonely', { gpus: 1 });
    const [pod] = await f.waitRunning(1);
    // minAvailable 1 over the only pod: every eviction is refused (429) until the timeout.
    await f.pdb('lonely-pdb', 'lonely', 1);
    coordinator = await startCoordinator(
      inject('kubeconfig'),
      testCoordinatorArgs(ns.name, uniqueName('lease'), 'force-event-under-test'),
    );
    onTestFailed(() => {
      console.log(coordinator?.logs.slice(-60).join('\n'));
    });

    const nm = maintenances(kc, ns.name);
    await nm.create('forced', {
      nodeSelector: `kubernetes.io/hostname=${node}`,
      options: { evictUnmanagedPods: true, forceDrain: true, drainTimeout: '2s' },
      actions: [{ type: 'Complete' }],
    });
    const done = await nm.waitPhase('forced', ['Completed', 'Failed', 'Halted'], 45_000);
    expect(done.status?.phase).toBe('Completed');
    expect(nodeStatus(done, node)?.phase).toBe('Succeeded');
    await expect(
      core.readNamespacedPod({ name: 'lonely', namespace: ns.name }),
    ).rejects.toMatchObject({ code: 404 });

    // Events are written in the background: wait for them rather than race the recorder.
    const forced = await waitFor('ForceDrain Event on the Node', async () => {
      const evs = await eventsAbout('default', 'Node', node);
      return evs.find((e) => e.reason === 'ForceDrain');
    });
    expect(forced).toMatchObject({
      type: 'Warning',
      source: { component: 'noma-coordinator' },
      // The kubelet's convention, which `kubectl describe node` searches by.
      involvedObject: { apiVersion: 'v1', kind: 'Node', name: node, uid: node },
    });
    expect(forced.message).toMatch(/drain timed out; deleting 1 pod\(s\)/);
    expect(forced.message).toContain('lonely');

    const blocked = await waitFor('DrainBlocked Event on the pod', async () => {
      const evs = await eventsAbout(ns.name, 'Pod', 'lonely');
      return evs.find((e) => e.reason === 'DrainBlocked');
    });
    expect(blocked).toMatchObject({
      type: 'Warning',
      involvedObject: { kind: 'Pod', namespace: ns.name, uid: pod?.metadata?.uid },
    });
    expect(blocked.message).toContain('lonely-pdb');
  });
});
