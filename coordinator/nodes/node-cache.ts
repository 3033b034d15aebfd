// The leader's view of every Node, from one informer (list + watch): readiness and cordon of the
// nodes a maintenance has selected but not started count against its budget, and are read at
// every admission, so they come from memory rather than a request each.
import { CoreV1Api, makeInformer, type KubeConfig, type V1Node } from '@kubernetes/client-node';
import type { Logger } from '../../shared/log.js';

export interface NodeCache {
  get(name: string): V1Node | undefined;
  /** Every node (none before the first list is in). */
  list(): readonly V1Node[];
  /** Resolves once the first list is in (or after `timeoutMs`, so a failing list blocks nothing). */
  synced(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

export function kubeNodeCache(kc: KubeConfig, log: Logger): NodeCache {
  const core = kc.makeApiClient(CoreV1Api);
  const informer = makeInformer<V1Node>(kc, '/api/v1/nodes', () => core.listNode());
  let stopped = false;
  let listed = false;
  let resolveListed: () => void = () => undefined;
  const first = new Promise<void>((r) => {
    resolveListed = r;
  });
  const onList = () => {
    listed = true;
    resolveListed();
  };
  informer.on('add', onList);
  informer.on('connect', onList);
  informer.on('error', (err: unknown) => {
    if (stopped) return;
    log.warn({ err }, 'node watch failed; restarting');
    setTimeout(() => {
      if (!stopped) void informer.start().catch(() => undefined);
    }, 1_000).unref();
  });
  void informer.start().then(onList, (err: unknown) => {
    log.warn({ err }, 'first node list failed; retrying');
  });
  return {
    get: (name) => (listed ? informer.get(name) : undefined),
    list: () => (listed ? informer.list() : []),
    synced: (timeoutMs) =>
      Promise.race([first, new Promise<void>((r) => setTimeout(r, timeoutMs).unref())]),
    async stop() {
      stopped = true;
      await informer.stop();
    },
  };
}
