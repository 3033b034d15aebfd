// The local control plane is real: these tests pin down the behaviour the rest of noma relies on.
import {
  AppsV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  PolicyV1Api,
  VersionApi,
  type V1Pod,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiGet } from '../cluster/cluster.js';
import {
  adminKubeConfig,
  createNamespace,
  createSimNode,
  deleteSimNode,
  kubeConfigWithToken,
  mintServiceAccountToken,
  reviewToken,
  simulateReboot,
  uniqueName,
  waitFor,
} from '../support/kube.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
let ns: Awaited<ReturnType<typeof createNamespace>>;
const node = uniqueName('sim');

beforeAll(async () => {
  ns = await createNamespace('cluster');
  await createSimNode(node, { capacity: { 'nvidia.com/gpu': '8' } });
});
afterAll(async () => {
  await ns.remove();
  await deleteSimNode(node);
});

function pod(name: string, extra: Partial<V1Pod['spec']> = {}): V1Pod {
  return {
    metadata: { name, labels: { app: 'web' } },
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: 3,
      containers: [{ name: 'main', image: 'registry.invalid/app:1' }],
      ...extra,
    },
  };
}

async function podPhase(name: string): Promise<string | undefined> {
  const p = await core.readNamespacedPod({ name, namespace: ns.name });
  return p.status?.phase;
}

async function gone(name: string): Promise<boolean> {
  try {
    await core.readNamespacedPod({ name, namespace: ns.name });
    return false;
  } catch (err) {
    if ((err as { code?: number }).code === 404) return true;
    throw err;
  }
}

describe('local control plane', () => {
  it('is a real kube-apiserver of the pinned version that answers /readyz', async () => {
    expect(await apiGet('/readyz')).toMatchObject({ status: 200, body: 'ok' });
    const version = await kc.makeApiClient(VersionApi).getCode();
    expect(version.gitVersion).toBe('v1.36.3');
  });

  it('enforces RBAC: a ServiceAccount without roles may not list nodes', async () => {
    const token = await mintServiceAccountToken(ns.name, 'nobody');
    const asNobody = kubeConfigWithToken(token).makeApiClient(CoreV1Api);
    await expect(asNobody.listNode()).rejects.toMatchObject({ code: 403 });
    const review = await kc.makeApiClient(AuthorizationV1Api).createSubjectAccessReview({
      body: {
        spec: {
          user: `system:serviceaccount:${ns.name}:nobody`,
          resourceAttributes: { verb: 'list', resource: 'nodes' },
        },
      },
    });
    expect(review.status?.allowed).toBe(false);
  });

  it('issues ServiceAccount tokens with an audience and reviews them (TokenReview)', async () => {
    const token = await mintServiceAccountToken(ns.name, 'agent', { audiences: ['noma.dev'] });
    const ok = await reviewToken(token, ['noma.dev']);
    expect(ok?.authenticated).toBe(true);
    expect(ok?.user?.username).toBe(`system:serviceaccount:${ns.name}:agent`);
    expect(ok?.audiences).toEqual(['noma.dev']);
    const wrongAudience = await reviewToken(token, ['someone-else']);
    expect(wrongAudience?.authenticated).toBeFalsy();
  });

  it('simulated node: Ready, a bootID a test can change', async () => {
    const before = await core.readNode({ name: node });
    expect(before.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(before.status?.capacity?.['nvidia.com/gpu']).toBe('8');
    const bootID = await simulateReboot(node);
    const after = await core.readNode({ name: node });
    expect(after.status?.nodeInfo?.bootID).toBe(bootID);
    expect(bootID).not.toBe(before.status?.nodeInfo?.bootID);
  });

  it('simulated kubelet: a bound pod runs; a deleted pod is Terminating, then gone', async () => {
    await core.createNamespacedPod({ namespace: ns.name, body: pod('runner') });
    await waitFor('pod Running', async () => (await podPhase('runner')) === 'Running');
    await core.deleteNamespacedPod({ name: 'runner', namespace: ns.name });
    const terminating = await core.readNamespacedPod({ name: 'runner', namespace: ns.name });
    expect(terminating.metadata?.deletionTimestamp).toBeDefined();
    await waitFor('pod gone', () => gone('runner'), 20_000);
  });

  it('Eviction API honours a PodDisruptionBudget kept by the disruption controller', async () => {
    const policy = kc.makeApiClient(PolicyV1Api);
    await policy.createNamespacedPodDisruptionBudget({
      namespace: ns.name,
      body: {
        metadata: { name: 'web' },
        spec: { minAvailable: 1, selector: { matchLabels: { app: 'web' } } },
      },
    });
    for (const name of ['web-1', 'web-2']) {
      await core.createNamespacedPod({ namespace: ns.name, body: pod(name) });
    }
    await waitFor('both pods Running', async () =>
      (await Promise.all(['web-1', 'web-2'].map(podPhase))).every((p) => p === 'Running'),
    );
    await waitFor('PDB status computed', async () => {
      const pdb = await policy.readNamespacedPodDisruptionBudget({
        name: 'web',
        namespace: ns.name,
      });
      return pdb.status?.observedGeneration === pdb.metadata?.generation &&
        pdb.status?.disruptionsAllowed === 1
        ? pdb
        : undefined;
    });
    const evict = (name: string) =>
      core.createNamespacedPodEviction({
        name,
        namespace: ns.name,
        body: { metadata: { name, namespace: ns.name } },
      });
    await evict('web-1');
    await waitFor('evicted pod gone', () => gone('web-1'), 20_000);
    await expect(evict('web-2')).rejects.toMatchObject({ code: 429 });
  });

  it('runs the workload controllers: a DaemonSet gets a pod on the simulated node', async () => {
    const apps = kc.makeApiClient(AppsV1Api);
    await apps.createNamespacedDaemonSet({
      namespace: ns.name,
      body: {
        metadata: { name: 'ds' },
        spec: {
          selector: { matchLabels: { app: 'ds' } },
          template: {
            metadata: { labels: { app: 'ds' } },
            spec: {
              nodeSelector: { 'kubernetes.io/hostname': node },
              containers: [{ name: 'main', image: 'registry.invalid/ds:1' }],
            },
          },
        },
      },
    });
    const running = await waitFor('DaemonSet pod Running', async () => {
      const pods = await core.listNamespacedPod({ namespace: ns.name, labelSelector: 'app=ds' });
      const p = pods.items[0];
      return p?.status?.phase === 'Running' ? p : undefined;
    });
    expect(running.spec?.nodeName).toBe(node);
    expect(running.metadata?.ownerReferences?.[0]?.kind).toBe('DaemonSet');
  });
});
