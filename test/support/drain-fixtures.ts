// Workloads for drain tests on a simulated node: ReplicaSets, a DaemonSet, a mirror pod, bare
// pods and PodDisruptionBudgets, created through the real API server and its controllers.
import {
  AppsV1Api,
  CoreV1Api,
  PatchStrategy,
  PolicyV1Api,
  setHeaderOptions,
  type KubeConfig,
  type V1Container,
  type V1Pod,
  type V1PodSpec,
} from '@kubernetes/client-node';
import { MIRROR_ANNOTATION } from '../../coordinator/drain/filters.js';
import { waitFor } from './kube.js';

export const GPU = 'nvidia.com/gpu';

export function container(gpus = 0, mounts: V1Container['volumeMounts'] = []): V1Container {
  return {
    ...(mounts.length > 0 ? { volumeMounts: mounts } : {}),
    name: 'main',
    image: 'registry.invalid/noma/workload:1',
    ...(gpus > 0
      ? { resources: { requests: { [GPU]: String(gpus) }, limits: { [GPU]: String(gpus) } } }
      : {}),
  };
}

interface Workload {
  gpus?: number;
  emptyDir?: boolean;
  graceSeconds?: number;
}

function podSpec(node: string, w: Workload, pinned: 'selector' | 'nodeName'): V1PodSpec {
  return {
    ...(pinned === 'nodeName'
      ? { nodeName: node }
      : { nodeSelector: { 'kubernetes.io/hostname': node } }),
    terminationGracePeriodSeconds: w.graceSeconds ?? 0,
    containers: [
      container(
        w.gpus ?? 0,
        w.emptyDir === true ? [{ name: 'scratch', mountPath: '/scratch' }] : [],
      ),
    ],
    ...(w.emptyDir === true ? { volumes: [{ name: 'scratch', emptyDir: {} }] } : {}),
  };
}

export class DrainFixture {
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly policy: PolicyV1Api;

  constructor(
    kc: KubeConfig,
    readonly namespace: string,
    readonly node: string,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.policy = kc.makeApiClient(PolicyV1Api);
  }

  async replicaSet(name: string, replicas: number, w: Workload = {}): Promise<void> {
    const labels = { app: name };
    await this.apps.createNamespacedReplicaSet({
      namespace: this.namespace,
      body: {
        metadata: { name },
        spec: {
          replicas,
          selector: { matchLabels: labels },
          template: { metadata: { labels }, spec: podSpec(this.node, w, 'selector') },
        },
      },
    });
  }

  async daemonSet(name: string, w: Workload = {}): Promise<void> {
    const labels = { app: name };
    await this.apps.createNamespacedDaemonSet({
      namespace: this.namespace,
      body: {
        metadata: { name },
        spec: {
          selector: { matchLabels: labels },
          template: { metadata: { labels }, spec: podSpec(this.node, w, 'selector') },
        },
      },
    });
  }

  /** A pod no controller owns, bound straight to the node. */
  async barePod(name: string, w: Workload = {}): Promise<void> {
    await this.core.createNamespacedPod({
      namespace: this.namespace,
      body: { metadata: { name, labels: { app: name } }, spec: podSpec(this.node, w, 'nodeName') },
    });
  }

  /** What a kubelet creates for a static pod: the mirror annotation and the Node as owner. */
  async mirrorPod(name: string, w: Workload = {}): Promise<void> {
    const node = await this.core.readNode({ name: this.node });
    await this.core.createNamespacedPod({
      namespace: this.namespace,
      body: {
        metadata: {
          name: `${name}-${this.node}`,
          annotations: {
            [MIRROR_ANNOTATION]: 'e3b0c44298fc1c14',
            'kubernetes.io/config.hash': 'e3b0c44298fc1c14',
            'kubernetes.io/config.source': 'file',
          },
          ownerReferences: [
            {
              apiVersion: 'v1',
              kind: 'Node',
              name: this.node,
              uid: node.metadata?.uid ?? '',
              controller: true,
            },
          ],
        },
        spec: podSpec(this.node, w, 'nodeName'),
      },
    });
  }

  /** A PDB over `app=<app>`; waits until the disruption controller has computed its status. */
  async pdb(name: string, app: string, minAvailable: number): Promise<void> {
    await this.policy.createNamespacedPodDisruptionBudget({
      namespace: this.namespace,
      body: { metadata: { name }, spec: { minAvailable, selector: { matchLabels: { app } } } },
    });
    await this.pdbSettled(name, minAvailable);
  }

  async setPdbMinAvailable(name: string, minAvailable: number): Promise<void> {
    await this.policy.patchNamespacedPodDisruptionBudget(
      { name, namespace: this.namespace, body: { spec: { minAvailable } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  async pdbSettled(name: string, minAvailable: number): Promise<void> {
    await waitFor(`PDB ${name} observed`, async () => {
      const pdb = await this.policy.readNamespacedPodDisruptionBudget({
        name,
        namespace: this.namespace,
      });
      const st = pdb.status;
      return (
        st !== undefined &&
        st.observedGeneration === pdb.metadata?.generation &&
        st.currentHealthy >= minAvailable
      );
    });
  }

  async pods(): Promise<V1Pod[]> {
    const list = await this.core.listNamespacedPod({
      namespace: this.namespace,
      fieldSelector: `spec.nodeName=${this.node}`,
    });
    return list.items;
  }

  async waitRunning(count: number): Promise<V1Pod[]> {
    return waitFor(
      `${count} running pods on ${this.node}`,
      async () => {
        const pods = await this.pods();
        const running = pods.filter((p) => p.status?.phase === 'Running');
        return running.length === count && pods.length === count ? pods : undefined;
      },
      60_000,
      200,
    );
  }

  async cordon(): Promise<void> {
    await this.core.patchNode(
      { name: this.node, body: { spec: { unschedulable: true } } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
  }
}

export function podName(p: V1Pod): string {
  return p.metadata?.name ?? '';
}

export function uidsOf(pods: readonly V1Pod[]): Set<string> {
  return new Set(pods.map((p) => p.metadata?.uid ?? ''));
}

/**
 * A bare pod with `gpus` GPUs on `node` that a PodDisruptionBudget (minAvailable 1) keeps from
 * being evicted: a drain blocks on it until the PDB goes or allows it.
 */
export async function createGuardedPod(
  kc: KubeConfig,
  at: { namespace: string; name: string; node: string; image?: string; gpus?: number },
): Promise<void> {
  const { namespace, name } = at;
  await kc.makeApiClient(CoreV1Api).createNamespacedPod({
    namespace,
    body: {
      metadata: { name, labels: { app: name } },
      spec: {
        nodeName: at.node,
        terminationGracePeriodSeconds: 1,
        containers: [
          {
            name: 'main',
            image: at.image ?? 'registry.invalid/app:1',
            resources: { limits: { [GPU]: String(at.gpus ?? 1) } },
          },
        ],
      },
    },
  });
  await kc.makeApiClient(PolicyV1Api).createNamespacedPodDisruptionBudget({
    namespace,
    body: {
      metadata: { name },
      spec: { minAvailable: 1, selector: { matchLabels: { app: name } } },
    },
  });
}
