// A status write the API server refuses (422, from a ValidatingAdmissionPolicy that denies
// UPDATE of this one NodeMaintenance's status) must not wedge its deletion: the coordinator
// gives the refused writes up instead of retrying them forever, removes its finalizer, and
// returns the node to service.
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
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
import { GROUP, PLURAL, VERSION } from '../../shared/api/index.js';
import { installCRD } from '../support/crd.js';
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
import { maintenances, nodeStatus } from '../support/maintenance.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const admission = kc.makeApiClient(AdmissionregistrationV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);
const policyName = uniqueName('noma-test-refuse-status');
let ns: Awaited<ReturnType<typeof createNamespace>>;
let coordinator: CoordinatorProcess;
let node = '';

beforeAll(async () => {
  await installCRD(kc);
  ns = await createNamespace('refused');
  node = uniqueName('refused');
  await createSimNode(node, { capacity: { 'nvidia.com/gpu': '8' } });
  coordinator = await startCoordinator(inject('kubeconfig'), [
    ...testCoordinatorArgs(ns.name, uniqueName('lease'), 'coordinator-under-test'),
  ]);
});

afterAll(async () => {
  await removePolicy();
  await coordinator.kill('SIGTERM');
  await ns.remove();
  await deleteSimNode(node);
});

/** Denies every UPDATE of nodemaintenances/status of `namespace/name`, and nothing else. */
async function refuseStatusOf(namespace: string, name: string): Promise<void> {
  await admission.createValidatingAdmissionPolicy({
    body: {
      metadata: { name: policyName },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: {
          resourceRules: [
            {
              apiGroups: [GROUP],
              apiVersions: ['*'],
              operations: ['UPDATE'],
              resources: [`${PLURAL}/status`],
            },
          ],
        },
        // Only this object: other tests share the cluster.
        matchConditions: [
          {
            name: 'this-maintenance',
            expression: `object.metadata.namespace == '${namespace}' && object.metadata.name == '${name}'`,
          },
        ],
        validations: [
          {
            expression: 'false',
            message: 'noma test: status writes of this NodeMaintenance are refused',
            reason: 'Invalid',
          },
        ],
      },
    },
  });
  await admission.createValidatingAdmissionPolicyBinding({
    body: {
      metadata: { name: policyName },
      spec: { policyName, validationActions: ['Deny'] },
    },
  });
}

async function removePolicy(): Promise<void> {
  await admission
    .deleteValidatingAdmissionPolicyBinding({ name: policyName })
    .catch(() => undefined);
  await admission.deleteValidatingAdmissionPolicy({ name: policyName }).catch(() => undefined);
}

/** The code of an admin's status write that changes nothing the coordinator reads. */
async function probeStatusWrite(name: string): Promise<number> {
  try {
    await custom.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace: ns.name,
        name,
        body: { status: {} },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    return 200;
  } catch (err) {
    return (err as { code?: number }).code ?? 0;
  }
}

const taintKeys = (n: V1Node): string[] =>
  (n.spec?.taints ?? []).map((t) => t.key).filter((k) => !k.startsWith('node.kubernetes.io/'));

describe('status writes refused by the API server', () => {
  beforeEach(() => {
    onTestFailed(() => {
      console.log(coordinator.logs.slice(-80).join('\n'));
    });
  });

  it('do not wedge the deletion of the NodeMaintenance', async () => {
    const m = maintenances(kc, ns.name);
    const name = 'refused';
    // Reboot waits for an agent that is not there: the node stays cordoned, in its step.
    await m.create(name, {
      nodeSelector: `kubernetes.io/hostname=${node}`,
      actions: [{ type: 'Reboot' }, { type: 'Complete' }],
    });
    await waitFor('the node in its step', async () => {
      const got = await m.get(name);
      return nodeStatus(got, node)?.phase === 'InAction' ? got : undefined;
    });
    expect((await core.readNode({ name: node })).spec?.unschedulable).toBe(true);

    await refuseStatusOf(ns.name, name);
    // The API server loads policies asynchronously: wait until it answers 422.
    await waitFor('the policy in force', async () => (await probeStatusWrite(name)) === 422);

    const deletedAt = Date.now();
    await m.remove(name);
    await waitFor('maintenance gone', async () => (await m.get(name)) === undefined, 30_000, 200);
    const took = Date.now() - deletedAt;

    const restored = await core.readNode({ name: node });
    expect(restored.spec?.unschedulable).toBeFalsy();
    expect(taintKeys(restored)).toEqual([]);
    expect(restored.metadata?.labels?.['noma.dev/maintenance']).toBeUndefined();
    // The coordinator met the refusal (the status writes of the deletion), and gave up on it.
    const logs = coordinator.logs.join('\n');
    expect(logs).toContain('status write refused');
    expect(logs).toContain('noma test: status writes of this NodeMaintenance are refused');
    expect(took).toBeLessThan(30_000);
  });
});
