// The sandbox's simulated nodes: four GPU inventories, each with the nvidia-smi output the
// agent on that node sees (agent/discovery/fixtures/). KWOK plays their kubelets.
import { randomUUID } from 'node:crypto';
import {
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Node,
} from '@kubernetes/client-node';
import { setTimeout as sleep } from 'node:timers/promises';

export interface SimNode {
  readonly name: string;
  /** Fixture in agent/discovery/fixtures/; undefined: no NVIDIA driver on the node. */
  readonly fixture: string | undefined;
  readonly gpus: number;
  readonly description: string;
}

export const SIM_NODES: readonly SimNode[] = [
  { name: 'gpu-h100-01', fixture: 'h100-sxm-x8.csv', gpus: 8, description: '8x H100 80GB' },
  {
    name: 'gpu-rtx-01',
    fixture: 'rtx5070-rtx3050.csv',
    gpus: 2,
    description: 'RTX 5070 + RTX 3050',
  },
  { name: 'gpu-a100-01', fixture: 'a100-sxm4-40gb-x4.csv', gpus: 4, description: '4x A100 40GB' },
  { name: 'cpu-01', fixture: undefined, gpus: 0, description: 'no GPU' },
];

const KWOK_ANNOTATION = 'kwok.x-k8s.io/node';

/** Creates the Node (KWOK runs it) and waits until it is Ready. */
export async function createSimNode(kc: KubeConfig, node: SimNode): Promise<V1Node> {
  const core = kc.makeApiClient(CoreV1Api);
  const capacity: Record<string, string> = {
    cpu: '64',
    memory: '512Gi',
    pods: '110',
    ...(node.gpus > 0 ? { 'nvidia.com/gpu': String(node.gpus) } : {}),
  };
  await core.createNode({
    body: {
      metadata: {
        name: node.name,
        annotations: { [KWOK_ANNOTATION]: 'fake' },
        labels: { 'kubernetes.io/hostname': node.name, 'kubernetes.io/os': 'linux' },
      },
      status: {
        capacity,
        allocatable: capacity,
        nodeInfo: {
          bootID: randomUUID(),
          machineID: randomUUID().replace(/-/g, ''),
          systemUUID: randomUUID(),
          architecture: 'amd64',
          operatingSystem: 'linux',
          osImage: `noma sandbox (${node.description})`,
          kernelVersion: '',
          kubeletVersion: '',
          kubeProxyVersion: '',
          containerRuntimeVersion: '',
        },
      },
    },
  });
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const got = await core.readNode({ name: node.name });
    if (got.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) return got;
    await sleep(100);
  }
  throw new Error(`node ${node.name} not Ready after 60 s`);
}

/** The simulated host came back from a reboot: its kubelet reports a new bootID. */
export async function setBootID(kc: KubeConfig, name: string, bootID: string): Promise<void> {
  await kc
    .makeApiClient(CoreV1Api)
    .patchNodeStatus(
      { name, body: { status: { nodeInfo: { bootID } } } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
}
