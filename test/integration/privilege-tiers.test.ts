// Who may run what on nodes, on the real API server: deploy/'s ClusterRoles noma-operator and
// noma-admin bound to ServiceAccounts in a test namespace, deploy/'s ValidatingAdmissionPolicies
// (nodemaintenance-policy.yaml) deciding. Also the coordinator's identity creating step pods in
// noma-system, and a coordinator narrowed by --watch-namespaces.
import {
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  type KubeConfig,
  type V1Pod,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { podManifest, podName } from '../../coordinator/actions/pod-job.js';
import { GROUP, PLURAL, VERSION, type Action } from '../../shared/api/index.js';
import { startCoordinator } from '../support/coordinator-process.js';
import {
  COORDINATOR_SERVICE_ACCOUNT,
  NOMA_NAMESPACE,
  applyObjects,
  deployObjects,
  isWorkload,
} from '../support/deploy.js';
import { mintToken } from '../support/identity.js';
import { maintenances } from '../support/maintenance.js';
import {
  adminKubeConfig,
  createNamespace,
  kubeConfigWithToken,
  uniqueName,
  waitFor,
} from '../support/kube.js';

const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const JSON_PATCH = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
const admin = adminKubeConfig();
const core = admin.makeApiClient(CoreV1Api);
type Namespace = Awaited<ReturnType<typeof createNamespace>>;
let ns: Namespace;
let imagesNs: Namespace;
const as: { operator?: KubeConfig; admin?: KubeConfig; coordinator?: KubeConfig } = {};
/** A test binding of deploy/'s noma-step-images, to imagesNs only, with its own allow-list. */
const imagesBinding = uniqueName('noma-step-images-test');
const ALLOW_LIST = 'allow-list';

/** The HTTP status and body of a refused call (client-node's ApiException). */
async function refusal(call: Promise<unknown>): Promise<{ code: number; body: string }> {
  try {
    await call;
  } catch (err) {
    const e = err as { code?: number; body?: unknown };
    return {
      code: e.code ?? 0,
      body: typeof e.body === 'string' ? e.body : JSON.stringify(e.body),
    };
  }
  throw new Error('the call was allowed');
}

const reboot: Action[] = [{ type: 'Reboot' }, { type: 'Complete' }];
const hostScript: Action[] = [{ type: 'Script', script: { script: 'nvidia-smi -r' } }];
const hostRun: Action[] = [{ type: 'Run', run: { command: ['systemctl', 'restart', 'x'] } }];
const imageScript = (image: string): Action[] => [
  { type: 'Script', script: { script: 'echo hi', image } },
];
const imageRun = (image: string): Action[] => [{ type: 'Run', run: { command: ['ls'], image } }];
const shell: Action[] = [{ type: 'InteractiveShell', interactiveShell: { image: 'busybox:1.36' } }];
/** Selects no node: nothing here is carried out (no coordinator watches these namespaces). */
const nowhere = () => `noma.dev/test-none=${uniqueName('x')}`;

function spec(actions: Action[], options: Record<string, unknown> = {}) {
  return { nodeSelector: nowhere(), actions, ...(Object.keys(options).length ? { options } : {}) };
}

/** A ServiceAccount in `namespace` bound there to a ClusterRole, and a client with its token. */
async function boundTo(clusterRole: string, namespace: string): Promise<KubeConfig> {
  const name = uniqueName(clusterRole);
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  await admin.makeApiClient(RbacAuthorizationV1Api).createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: clusterRole },
      subjects: [{ kind: 'ServiceAccount', name, namespace }],
    },
  });
  return kubeConfigWithToken(await mintToken(admin, namespace, name), name);
}

async function setAllowList(images: string): Promise<void> {
  await core.patchNamespacedConfigMap(
    { name: ALLOW_LIST, namespace: imagesNs.name, body: { data: { images } } },
    MERGE,
  );
}

beforeAll(async () => {
  await applyObjects(
    admin,
    // Not the agent's label-key params: agent-policy.test.ts changes them for a while.
    deployObjects().filter(
      (o) =>
        !isWorkload(o) && !(o.kind === 'ConfigMap' && o.metadata.name === 'noma-agent-label-keys'),
    ),
    'noma-privilege-tiers-test',
  );
  ns = await createNamespace('tiers');
  imagesNs = await createNamespace('tiers-images');
  as.operator = await boundTo('noma-operator', ns.name);
  as.admin = await boundTo('noma-admin', ns.name);
  as.coordinator = kubeConfigWithToken(
    await mintToken(admin, NOMA_NAMESPACE, COORDINATOR_SERVICE_ACCOUNT),
    'noma-coordinator',
  );
  await core.createNamespacedConfigMap({
    namespace: imagesNs.name,
    body: { metadata: { name: ALLOW_LIST }, data: { images: '' } },
  });
  await KubernetesObjectApi.makeApiClient(admin).create({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicyBinding',
    metadata: { name: imagesBinding },
    spec: {
      policyName: 'noma-step-images',
      paramRef: { name: ALLOW_LIST, namespace: imagesNs.name, parameterNotFoundAction: 'Allow' },
      matchResources: {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': imagesNs.name } },
      },
      validationActions: ['Deny'],
    },
  });
  // The aggregation controller fills noma-admin; the policies take effect once the API server
  // has loaded them. A refused operator is the sign (nothing is stored: a dry run).
  await waitFor(
    'noma-admin aggregated',
    async () =>
      (
        await admin.makeApiClient(RbacAuthorizationV1Api).readClusterRole({ name: 'noma-admin' })
      ).rules?.some((r) => r.verbs.includes('exec-on-nodes')) === true,
  );
  const custom = as.operator.makeApiClient(CustomObjectsApi);
  await waitFor('the tiers policy in effect', () =>
    custom
      .createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace: ns.name,
        dryRun: 'All',
        body: {
          apiVersion: `${GROUP}/${VERSION}`,
          kind: 'NodeMaintenance',
          metadata: { name: 'probe' },
          spec: { operationName: 'probe', linearTicket: 'ENG-1', ...spec(hostScript) },
        },
      })
      .then(
        () => false,
        (err: unknown) => (err as { code?: number }).code === 403,
      ),
  );
}, 120_000);

afterAll(async () => {
  await KubernetesObjectApi.makeApiClient(admin)
    .delete({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name: imagesBinding },
    })
    .catch(() => undefined);
  await ns.remove();
  await imagesNs.remove();
});

describe('noma-operator', () => {
  const ops = () => maintenances(as.operator as KubeConfig, ns.name);

  it('creates a Reboot + Complete maintenance, and reads and deletes it', async () => {
    const name = uniqueName('reboot');
    await ops().create(name, spec(reboot));
    expect((await ops().get(name))?.spec.actions.map((a) => a.type)).toEqual([
      'Reboot',
      'Complete',
    ]);
    await ops().remove(name);
  });

  it.each([
    ['a host Script', hostScript, 'Script'],
    ['a host Run', hostRun, 'Run'],
    ['a Script with an image', imageScript('busybox:1.36'), 'Script'],
    ['a Run with an image', imageRun('busybox:1.36'), 'Run'],
    ['an InteractiveShell', shell, 'InteractiveShell'],
  ])('is refused %s, by a message naming the verb exec-on-nodes', async (_, actions, type) => {
    const name = uniqueName('exec');
    const { code, body } = await refusal(ops().create(name, spec(actions)));
    expect(code).toBe(403);
    expect(body).toContain('noma-nodemaintenance-tiers');
    expect(body).toContain('needs verb exec-on-nodes');
    expect(body).toContain(`${type} steps run commands as root`);
    expect(await maintenances(admin, ns.name).get(name)).toBeUndefined();
  });

  it('is refused allowControlPlane, by a message naming the verb maintain-control-plane', async () => {
    const { code, body } = await refusal(
      ops().create(uniqueName('cp'), spec(reboot, { allowControlPlane: true })),
    );
    expect(code).toBe(403);
    expect(body).toContain('needs verb maintain-control-plane');
    // allowControlPlane: false asks for nothing.
    await ops().create(uniqueName('cp-off'), spec(reboot, { allowControlPlane: false }));
  });
});

describe('noma-admin', () => {
  const adm = () => maintenances(as.admin as KubeConfig, ns.name);

  it.each([
    ['a host Script', hostScript],
    ['a host Run', hostRun],
    ['a Script with an image', imageScript('busybox:1.36')],
    ['an InteractiveShell', shell],
  ])('may create %s', async (_, actions) => {
    const name = uniqueName('admin');
    await adm().create(name, spec(actions));
    expect(await adm().get(name)).toBeDefined();
  });

  it('may create a maintenance that allows control-plane nodes', async () => {
    await adm().create(uniqueName('admin-cp'), spec(reboot, { allowControlPlane: true }));
  });
});

describe("an operator on an admin's maintenance", () => {
  const custom = () => (as.operator as KubeConfig).makeApiClient(CustomObjectsApi);
  const ref = (name: string) => ({
    group: GROUP,
    version: VERSION,
    plural: PLURAL,
    namespace: ns.name,
    name,
  });
  const opPatch = (name: string, body: object, how = MERGE) =>
    custom().patchNamespacedCustomObject({ ...ref(name), body }, how);

  it('may pause it, resume it and annotate it, but not change its steps or its nodes', async () => {
    const name = uniqueName('admin-script');
    await maintenances(as.admin as KubeConfig, ns.name).create(name, spec(hostScript));
    await opPatch(name, { spec: { paused: true } });
    await opPatch(name, { metadata: { annotations: { 'noma.dev/retry': 'x' } } });
    await opPatch(name, { spec: { paused: false } });
    const selector = await refusal(opPatch(name, { spec: { nodeSelector: 'gpu=true' } }));
    expect(selector.code).toBe(403);
    expect(selector.body).toContain('needs verb exec-on-nodes');
    expect(selector.body).toContain(
      `to change NodeMaintenance ${ns.name}/${name} (its steps or nodeSelector)`,
    );
    const script = await refusal(
      opPatch(
        name,
        [{ op: 'replace', path: '/spec/actions/0/script/script', value: 'curl x | sh' }],
        JSON_PATCH,
      ),
    );
    expect(script.code).toBe(403);
    const stored = await maintenances(admin, ns.name).get(name);
    expect(stored?.spec.actions[0]?.script?.script).toBe('nvidia-smi -r');
    expect(stored?.spec.paused).toBe(false);
    // Taking the privileged step out asks for nothing.
    await opPatch(name, [{ op: 'replace', path: '/spec/actions', value: reboot }], JSON_PATCH);
  });

  it('may pause a control-plane maintenance, but not point it at other nodes', async () => {
    const name = uniqueName('admin-cp');
    await maintenances(as.admin as KubeConfig, ns.name).create(
      name,
      spec(reboot, { allowControlPlane: true }),
    );
    await opPatch(name, { spec: { paused: true } });
    const moved = await refusal(opPatch(name, { spec: { nodeSelector: 'node-role=x' } }));
    expect(moved.code).toBe(403);
    expect(moved.body).toContain('needs verb maintain-control-plane');
  });
});

describe('the image allow-list (deploy/ noma-step-images, params from a ConfigMap)', () => {
  const adm = () => maintenances(admin, imagesNs.name);

  it('refuses an image outside a non-empty list, naming the image and the rule; allows those in it', async () => {
    await setAllowList('# tools\nregistry.example.com/tools/*\nbusybox:1.36, alpine:3.20\n');
    // A fresh API server takes a while to bring a new binding and its params into effect.
    await waitFor(
      'the allow-list in effect',
      () =>
        refusal(adm().create(uniqueName('probe'), spec(imageRun('busybox:latest')))).then(
          (r) => r.code === 403,
          () => false,
        ),
      120_000,
      500,
    );
    for (const image of ['busybox:latest', 'registry.example.com/tools-evil/x:1', 'alpine']) {
      const { code, body } = await refusal(adm().create(uniqueName('img'), spec(imageRun(image))));
      expect(code, image).toBe(403);
      expect(body).toContain('noma-step-images');
      expect(body).toContain(`rule image-allow-list: image ${image} is not in the allow-list`);
      expect(body).toContain(`ConfigMap ${imagesNs.name}/${ALLOW_LIST}`);
    }
    for (const actions of [
      imageRun('registry.example.com/tools/debug:1.4'),
      imageScript('busybox:1.36'),
      [{ type: 'InteractiveShell', interactiveShell: { image: 'alpine:3.20' } }] as Action[],
      hostScript,
    ]) {
      await adm().create(uniqueName('img-ok'), spec(actions));
    }
  }, 180_000);

  it('allows any image while the list is empty', async () => {
    await setAllowList('');
    await waitFor('the empty allow-list in effect', () =>
      adm()
        .create(uniqueName('img-any'), spec(imageRun('quay.io/anything/at-all:v9')))
        .then(
          () => true,
          () => false,
        ),
    );
    await adm().create(uniqueName('img-any'), spec(imageScript('busybox:latest')));
  });

  it('ships an empty list in noma-system, bound to every namespace', async () => {
    const cm = await core.readNamespacedConfigMap({
      name: 'noma-image-allow-list',
      namespace: NOMA_NAMESPACE,
    });
    expect(cm.data?.['images']).toBe('');
    await maintenances(admin, ns.name).create(uniqueName('img'), spec(imageRun('x.io/y:z')));
  });
});

describe("the coordinator's identity creating step pods in noma-system (noma-coordinator-step-pods)", () => {
  const stepPod = (): V1Pod => {
    const actionId = `${uniqueName('uid')}/no-such-node/0/1`;
    const made = podManifest({
      name: podName(actionId, 'no-such-node', 0),
      namespace: NOMA_NAMESPACE,
      node: 'no-such-node',
      index: 0,
      actionId,
      action: imageScript('busybox:1.36')[0] as Action,
      maintenance: { namespace: ns.name, name: 'm', uid: 'uid' },
      timeoutMs: 60_000,
    });
    if (!made.ok) throw new Error(made.why);
    return made.pod;
  };
  const create = (pod: V1Pod, kc = as.coordinator as KubeConfig) =>
    kc
      .makeApiClient(CoreV1Api)
      .createNamespacedPod({ namespace: NOMA_NAMESPACE, body: pod, dryRun: 'All' });
  const withSpec = (patch: (pod: V1Pod) => void): V1Pod => {
    const pod = stepPod();
    patch(pod);
    return pod;
  };
  const container = (pod: V1Pod) => pod.spec?.containers[0];

  it('may create the pod pod-job.ts makes (the host root as hostPath, no token)', async () => {
    const created = await create(stepPod());
    expect(created.spec?.automountServiceAccountToken).toBe(false);
    expect(created.spec?.volumes?.map((v) => [v.name, v.hostPath?.path])).toEqual([['host', '/']]);
  });

  it.each([
    [
      'its own TLS Secret as a volume',
      (p: V1Pod) => {
        p.spec?.volumes?.push({ name: 'tls', secret: { secretName: 'noma-coordinator-tls' } });
      },
      'may mount only hostPath and emptyDir volumes; refused: tls',
    ],
    [
      'a projected ServiceAccount token',
      (p: V1Pod) => {
        p.spec?.volumes?.push({
          name: 'token',
          projected: { sources: [{ serviceAccountToken: { path: 'token' } }] },
        });
      },
      'refused: token',
    ],
    [
      'a ConfigMap volume',
      (p: V1Pod) => {
        p.spec?.volumes?.push({ name: 'rules', configMap: { name: 'noma-label-rules' } });
      },
      'refused: rules',
    ],
    [
      'a Secret through env',
      (p: V1Pod) => {
        container(p)?.env?.push({
          name: 'KEY',
          valueFrom: { secretKeyRef: { name: 'noma-coordinator-tls', key: 'tls.key' } },
        });
      },
      'may take no environment from Secrets or ConfigMaps',
    ],
    [
      'a Secret through envFrom',
      (p: V1Pod) => {
        const c = container(p);
        if (c) c.envFrom = [{ secretRef: { name: 'noma-coordinator-tls' } }];
      },
      'may take no environment from Secrets or ConfigMaps',
    ],
    [
      'the default ServiceAccount token',
      (p: V1Pod) => {
        if (p.spec) delete p.spec.automountServiceAccountToken;
      },
      'must set automountServiceAccountToken: false',
    ],
    [
      'imagePullSecrets',
      (p: V1Pod) => {
        if (p.spec) p.spec.imagePullSecrets = [{ name: 'noma-coordinator-tls' }];
      },
      'may use no imagePullSecrets',
    ],
  ])('is refused a pod with %s', async (_, patch, message) => {
    const { code, body } = await refusal(create(withSpec(patch)));
    expect(code).toBe(403);
    expect(body).toContain('noma-coordinator-step-pods');
    expect(body).toContain(message);
  });

  it('leaves other identities alone (the policy matches the coordinator only)', async () => {
    const pod = withSpec((p) => {
      p.spec?.volumes?.push({ name: 'tls', secret: { secretName: 'noma-coordinator-tls' } });
    });
    await create(pod, admin);
  });
});

describe('a coordinator narrowed by --watch-namespaces', () => {
  it('acts on NodeMaintenances in the namespaces given, and not elsewhere', async () => {
    const [a, b, c] = await Promise.all(['watch-a', 'watch-b', 'watch-c'].map(createNamespace));
    if (a === undefined || b === undefined || c === undefined) throw new Error('namespaces');
    const coordinator = await startCoordinator(inject('kubeconfig'), [
      ...['--namespace', a.name, '--watch-namespaces', `${a.name},${b.name}`],
      ...['--lease-name', uniqueName('lease'), '--identity', 'watch-namespaces'],
      ...['--lease-duration', '3s', '--status-interval', '200ms'],
    ]);
    try {
      // No node matches: a coordinator that sees one fails it at once (NoNodesSelected). The
      // unwatched one is created first, so a coordinator watching everything would have failed
      // it before the others.
      await maintenances(admin, c.name).create('unwatched', spec(reboot));
      for (const n of [a, b]) await maintenances(admin, n.name).create('watched', spec(reboot));
      for (const n of [a, b]) await maintenances(admin, n.name).waitPhase('watched', 'Failed');
      const unwatched = await maintenances(admin, c.name).get('unwatched');
      expect(unwatched?.status).toBeUndefined();
      expect(unwatched?.metadata.finalizers ?? []).toEqual([]);
    } finally {
      await coordinator.kill('SIGTERM');
      await Promise.all([a, b, c].map((n) => n.remove()));
    }
  });
});
