// Helpers for integration tests on the local control plane: clients, per-test namespaces and
// simulated nodes (managed by KWOK), tokens for other identities, simulated reboots.
import { randomBytes, randomUUID } from 'node:crypto';
import {
  AuthenticationV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Node,
  type V1Taint,
} from '@kubernetes/client-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { inject } from 'vitest';
import { mintToken } from './identity.js';

/** Admin KubeConfig of the local control plane started by the global setup. */
export function adminKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(inject('kubeconfig'));
  return kc;
}

/** A KubeConfig for the same cluster that authenticates with `token` (no admin rights). */
export function kubeConfigWithToken(token: string, user = 'test-user'): KubeConfig {
  const admin = adminKubeConfig();
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no cluster');
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: user, token }],
    contexts: [{ name: user, cluster: cluster.name, user }],
    currentContext: user,
  });
  return kc;
}

/** `prefix-xxxxxx`: unique across tests and runs, valid as a namespace or node name. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
}

/**
 * Creates a namespace for one test file and waits for its `default` ServiceAccount (pods are
 * refused until the serviceaccount controller made it). Returns the name and a cleanup.
 */
export async function createNamespace(
  prefix: string,
): Promise<{ name: string; remove: () => Promise<void> }> {
  const core = adminKubeConfig().makeApiClient(CoreV1Api);
  const name = uniqueName(prefix);
  await core.createNamespace({ body: { metadata: { name, labels: { 'noma.dev/test': 'true' } } } });
  await waitFor(`ServiceAccount default in ${name}`, () =>
    core.readNamespacedServiceAccount({ name: 'default', namespace: name }).then(() => true),
  );
  return {
    name,
    remove: async () => {
      await core.deleteNamespace({ name }).catch(() => undefined);
    },
  };
}

export interface SimNodeOptions {
  labels?: Record<string, string>;
  /** Extra capacity, e.g. `{ 'nvidia.com/gpu': '8' }`; KWOK fills in cpu, memory and pods. */
  capacity?: Record<string, string>;
  bootID?: string;
  unschedulable?: boolean;
  taints?: V1Taint[];
}

const KWOK_ANNOTATION = 'kwok.x-k8s.io/node';

/** Creates a Node that KWOK plays the kubelet for, and waits until it is Ready. */
export async function createSimNode(name: string, opts: SimNodeOptions = {}): Promise<V1Node> {
  const core = adminKubeConfig().makeApiClient(CoreV1Api);
  const capacity = { cpu: '64', memory: '512Gi', pods: '110', ...opts.capacity };
  await core.createNode({
    body: {
      metadata: {
        name,
        annotations: { [KWOK_ANNOTATION]: 'fake' },
        labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', ...opts.labels },
      },
      spec: {
        ...(opts.unschedulable === undefined ? {} : { unschedulable: opts.unschedulable }),
        ...(opts.taints === undefined ? {} : { taints: opts.taints }),
      },
      status: {
        capacity,
        allocatable: capacity,
        nodeInfo: {
          bootID: opts.bootID ?? randomUUID(),
          machineID: randomUUID().replace(/-/g, ''),
          systemUUID: randomUUID(),
          architecture: 'amd64',
          operatingSystem: 'linux',
          osImage: 'noma simulated node',
          kernelVersion: '',
          kubeletVersion: '',
          kubeProxyVersion: '',
          containerRuntimeVersion: '',
        },
      },
    },
  });
  return waitFor(`node ${name} Ready`, async () => {
    const node = await core.readNode({ name });
    const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
    return ready?.status === 'True' ? node : undefined;
  });
}

export async function deleteSimNode(name: string): Promise<void> {
  const core = adminKubeConfig().makeApiClient(CoreV1Api);
  await core.deleteNode({ name }).catch(() => undefined);
}

/** Simulates a reboot: the node reports a new bootID. Returns it. */
export async function simulateReboot(name: string, bootID: string = randomUUID()): Promise<string> {
  const core = adminKubeConfig().makeApiClient(CoreV1Api);
  await core.patchNodeStatus(
    { name, body: { status: { nodeInfo: { bootID } } } },
    setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
  );
  return bootID;
}

/**
 * Mints a token for a ServiceAccount through the TokenRequest API (creating the account if
 * needed). `audiences` defaults to the API server's own.
 */
export async function mintServiceAccountToken(
  namespace: string,
  serviceAccount: string,
  opts: { audiences?: string[]; expirationSeconds?: number } = {},
): Promise<string> {
  const kc = adminKubeConfig();
  await kc
    .makeApiClient(CoreV1Api)
    .createNamespacedServiceAccount({ namespace, body: { metadata: { name: serviceAccount } } })
    .catch((err: unknown) => {
      if ((err as { code?: number }).code !== 409) throw err;
    });
  return mintToken(kc, namespace, serviceAccount, opts);
}

/** Asks the API server who a token belongs to (TokenReview), as the coordinator will. */
export async function reviewToken(token: string, audiences?: string[]) {
  const auth = adminKubeConfig().makeApiClient(AuthenticationV1Api);
  const review = await auth.createTokenReview({
    body: { spec: { token, ...(audiences ? { audiences } : {}) } },
  });
  return review.status;
}

/**
 * Creates a Node that no kubelet (and no KWOK) serves, reporting Ready False: a NotReady node.
 * KWOK would make a node it manages Ready again at once, so this one lacks its annotation; pods
 * bound to it stay Pending. The node lifecycle controller adds its not-ready taints.
 */
export async function createNotReadyNode(name: string, opts: SimNodeOptions = {}): Promise<V1Node> {
  const core = adminKubeConfig().makeApiClient(CoreV1Api);
  const capacity = { cpu: '64', memory: '512Gi', pods: '110', ...opts.capacity };
  await core.createNode({
    body: {
      metadata: {
        name,
        labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', ...opts.labels },
      },
      spec: {
        ...(opts.unschedulable === undefined ? {} : { unschedulable: opts.unschedulable }),
        ...(opts.taints === undefined ? {} : { taints: opts.taints }),
      },
    },
  });
  const now = new Date().toISOString();
  await core.patchNodeStatus(
    {
      name,
      body: {
        status: {
          capacity,
          allocatable: capacity,
          nodeInfo: { bootID: opts.bootID ?? randomUUID() },
          conditions: [
            {
              type: 'Ready',
              status: 'False',
              reason: 'KubeletNotReady',
              message: 'container runtime is down (simulated)',
              lastHeartbeatTime: now,
              lastTransitionTime: now,
            },
          ],
        },
      },
    },
    setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
  );
  return core.readNode({ name });
}
