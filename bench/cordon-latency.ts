// The coordinator's reaction time: from a NodeMaintenance being created to its node being
// cordoned, observed through a watch on the Node (no polling). A real coordinator process
// against the given control plane; each sample uses a fresh node and deletes its maintenance
// afterwards (which uncordons it again).
import {
  CoreV1Api,
  CustomObjectsApi,
  Watch,
  type KubeConfig,
  type V1Node,
} from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../shared/api/index.js';
import { startCoordinator } from '../test/support/coordinator-process.js';
import { installCRD } from '../test/support/crd.js';

/** Resolves with the time at which `node` is first seen cordoned. */
function whenCordoned(kc: KubeConfig, node: string): { seen: Promise<number>; stop: () => void } {
  const watch = new Watch(kc);
  let abort: AbortController | undefined;
  const seen = new Promise<number>((resolve, reject) => {
    watch
      .watch(
        '/api/v1/nodes',
        { fieldSelector: `metadata.name=${node}` },
        (_type, obj: V1Node) => {
          if (obj.spec?.unschedulable === true) resolve(performance.now());
        },
        (err: unknown) => {
          if (err !== null && err !== undefined)
            reject(err instanceof Error ? err : new Error('node watch ended'));
        },
      )
      .then((req) => (abort = req), reject);
  });
  return {
    seen,
    stop: () => {
      abort?.abort();
    },
  };
}

export async function measureCordonLatency(opts: {
  kc: KubeConfig;
  kubeconfig: string;
  namespace: string;
  createNode: (name: string) => Promise<void>;
  samples: number;
}): Promise<number[]> {
  const { kc, namespace } = opts;
  await installCRD(kc);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const coordinator = await startCoordinator(opts.kubeconfig, [
    '--namespace',
    namespace,
    '--watch-namespace',
    namespace,
    '--lease-name',
    `${namespace}-bench`,
  ]);
  const latencies: number[] = [];
  try {
    for (let i = 0; i < opts.samples; i++) {
      const node = `${namespace}-cordon-${i}`;
      await opts.createNode(node);
      const watcher = whenCordoned(kc, node);
      // Let the watch establish before the clock starts.
      await new Promise((r) => setTimeout(r, 200));
      const name = `cordon-${i}`;
      const start = performance.now();
      await custom.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace,
        body: {
          apiVersion: `${GROUP}/${VERSION}`,
          kind: 'NodeMaintenance',
          metadata: { name },
          spec: {
            operationName: 'bench',
            linearTicket: 'BENCH-1',
            nodeSelector: `kubernetes.io/hostname=${node}`,
            actions: [],
          },
        },
      });
      const at = await Promise.race([
        watcher.seen,
        new Promise<number>((_, reject) => {
          setTimeout(() => {
            reject(new Error(`${node} not cordoned within 30 s`));
          }, 30_000).unref();
        }),
      ]);
      watcher.stop();
      latencies.push(at - start);
      await custom.deleteNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace,
        name,
      });
      await core.deleteNode({ name: node }).catch(() => undefined);
    }
  } finally {
    await coordinator.kill('SIGTERM');
  }
  return latencies;
}
