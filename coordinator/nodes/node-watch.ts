// Follows one Node with a watch, for waits that last minutes (a Reboot landing): one event per
// change instead of a read every second for every rebooting node.
import { Watch, type KubeConfig, type V1Node } from '@kubernetes/client-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffMs } from '../../shared/duration.js';
import type { Logger } from '../../shared/log.js';

/**
 * Calls `onNode` with the node as it is (undefined once deleted) and at every change, until
 * `signal` aborts.
 */
export type NodeWatcher = (
  name: string,
  onNode: (node: V1Node | undefined) => void,
  signal: AbortSignal,
) => void;

export function kubeNodeWatcher(kc: KubeConfig, log: Logger): NodeWatcher {
  return (name, onNode, signal) => {
    let failures = 0;
    // A call, not the property: the loop awaits, and the signal may abort meanwhile.
    const stopped = (): boolean => signal.aborted;
    const start = async (): Promise<void> => {
      while (!stopped()) {
        // A watch without a resourceVersion begins with the node as it is now, so a restart
        // after a dropped connection misses nothing.
        const ended = new Promise<unknown>((resolve) => {
          new Watch(kc)
            .watch(
              '/api/v1/nodes',
              { fieldSelector: `metadata.name=${name}` },
              (type: string, obj: V1Node) => {
                failures = 0;
                onNode(type === 'DELETED' ? undefined : obj);
              },
              resolve,
            )
            .then((req) => {
              if (signal.aborted) req.abort();
              else {
                signal.addEventListener(
                  'abort',
                  () => {
                    req.abort();
                  },
                  { once: true },
                );
              }
            }, resolve);
        });
        const err = await ended;
        if (stopped()) return;
        if (err !== null && err !== undefined) {
          log.warn({ err, node: name, failures }, 'node watch failed; restarting');
          await sleep(backoffMs(failures++, { baseMs: 500, maxMs: 10_000 }), undefined, {
            signal,
          }).catch(() => undefined);
        }
      }
    };
    void start();
  };
}
