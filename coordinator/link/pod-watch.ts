// Follows the pods of the agents' namespace for the link: a connection authenticated with a
// token bound to a pod must not outlive that pod. List (paged: only names and UIDs are kept),
// then watch from the list's resourceVersion; a deletion ends the connections bound to the
// pod; after a watch that failed or expired (410), list again, which also catches a deletion
// the gap hid. Runs while the leader serves the link.
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, Watch, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { backoffMs } from '../../shared/duration.js';
import { describeApiError } from '../../shared/kube-errors.js';
import type { Logger } from '../../shared/log.js';
import { retry } from '../../shared/retry.js';
import type { PodSink } from './server.js';

/** The API server ends a watch after this; a watch silent for longer (plus slack) is dead. */
const WATCH_TIMEOUT_S = 290;
const WATCH_SILENCE_MS = (WATCH_TIMEOUT_S + 30) * 1000;
const PAGE = 500;

type WatchEnd = { kind: 'ended'; rv: string } | { kind: 'relist'; why: string };

/** Name → UID of the pods in `namespace`, and the list's resourceVersion. */
async function listPods(
  core: CoreV1Api,
  namespace: string,
): Promise<{ pods: Map<string, string>; rv: string }> {
  const pods = new Map<string, string>();
  let rv = '';
  let cont: string | undefined;
  do {
    const page = await core.listNamespacedPod({
      namespace,
      limit: PAGE,
      ...(cont === undefined ? {} : { _continue: cont }),
    });
    for (const p of page.items) {
      const { name, uid } = p.metadata ?? {};
      if (name !== undefined && uid !== undefined) pods.set(name, uid);
    }
    // Pages of one list share the first page's resourceVersion.
    if (rv === '') rv = page.metadata?.resourceVersion ?? '';
    cont = page.metadata?._continue;
  } while (cont !== undefined && cont !== '');
  return { pods, rv };
}

/** Watches from `rv` until the watch ends; deletions go to the sink. */
function watchFrom(
  kc: KubeConfig,
  namespace: string,
  rv: string,
  sink: PodSink,
  signal: AbortSignal,
): Promise<WatchEnd> {
  return new Promise((resolve) => {
    let last = rv;
    let settled: WatchEnd | undefined;
    let abort: (() => void) | undefined;
    const end = (e: WatchEnd): void => {
      settled ??= e;
      clearTimeout(silence);
      signal.removeEventListener('abort', stop);
      abort?.();
      resolve(settled);
    };
    const stop = (): void => {
      end({ kind: 'ended', rv: last });
    };
    let silence = setTimeout(stop, WATCH_SILENCE_MS).unref();
    signal.addEventListener('abort', stop, { once: true });
    const onEvent = (type: string, obj: V1Pod & { code?: number; message?: string }): void => {
      clearTimeout(silence);
      silence = setTimeout(stop, WATCH_SILENCE_MS).unref();
      if (type === 'ERROR') {
        end({ kind: 'relist', why: `${String(obj.code)} ${obj.message ?? ''}` });
        return;
      }
      last = obj.metadata?.resourceVersion ?? last;
      if (type === 'DELETED' && obj.metadata?.name !== undefined) {
        sink.podGone(namespace, obj.metadata.name, obj.metadata.uid);
      }
    };
    const query = {
      resourceVersion: rv,
      allowWatchBookmarks: true,
      timeoutSeconds: WATCH_TIMEOUT_S,
    };
    new Watch(kc)
      .watch(`/api/v1/namespaces/${namespace}/pods`, query, onEvent, (err: unknown) => {
        if (err === null || err === undefined) end({ kind: 'ended', rv: last });
        else end({ kind: 'relist', why: describeApiError(err) });
      })
      .then(
        (req) => {
          abort = () => {
            req.abort();
          };
          if (settled !== undefined) req.abort();
        },
        (err: unknown) => {
          end({ kind: 'relist', why: describeApiError(err) });
        },
      );
  });
}

/**
 * Follows the pods of `namespace` until `signal` aborts, telling `sink` which are deleted (and,
 * at every list, which exist).
 */
export function watchAgentPods(
  kc: KubeConfig,
  namespace: string,
  sink: PodSink,
  log: Logger,
  signal: AbortSignal,
): void {
  const core = kc.makeApiClient(CoreV1Api);
  const list = () =>
    retry(
      async () => {
        const listedAt = Date.now();
        return { ...(await listPods(core, namespace)), listedAt };
      },
      {
        baseMs: 500,
        maxMs: 30_000,
        signal,
        // Forbidden (RBAC) is not transient, but the watch is what closes connections of
        // deleted pods: keep trying, loudly.
        retryable: () => true,
        onRetry: (err, attempt, delayMs) => {
          const level = attempt >= 3 ? 'error' : 'warn';
          log[level](
            { err: describeApiError(err), namespace, delayMs },
            'listing agent pods failed',
          );
        },
      },
    );
  const run = async (): Promise<void> => {
    let failures = 0;
    let rv: string | undefined;
    while (!signal.aborted) {
      if (rv === undefined) {
        const listed = await list();
        sink.podsListed(namespace, listed.pods, listed.listedAt);
        rv = listed.rv;
      }
      const ended = await watchFrom(kc, namespace, rv, sink, signal);
      if (ended.kind === 'ended') {
        failures = 0;
        rv = ended.rv;
        continue;
      }
      rv = undefined;
      log.warn(
        { namespace, why: ended.why.slice(0, 512) },
        'agent pod watch failed; listing again',
      );
      await sleep(backoffMs(failures++, { baseMs: 500, maxMs: 10_000 }), undefined, {
        signal,
      }).catch(() => undefined);
    }
  };
  void run().catch((err: unknown) => {
    if (!signal.aborted) log.error({ err }, 'agent pod watch stopped');
  });
}
