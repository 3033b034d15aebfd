// The watches of `noma dashboard`, with the user's own kubeconfig: Nodes, the coordinator's and
// the kubelet's Events on Nodes, and the Events on NodeMaintenances (the NodeMaintenances
// themselves are `noma status`'s source). Each is a list, then a watch from its
// resourceVersion (cli/status/follow.ts runs them, re-listing after errors).
import { CoreV1Api, Watch, type KubeConfig } from '@kubernetes/client-node';
// Not in the package's index, and no exports map forbids it: the serializer its typed list
// calls use, the one way to give watched objects the same types (Dates) as listed ones.
import { ObjectSerializer } from '@kubernetes/client-node/dist/gen/models/ObjectSerializer.js';
import { WatchError, type WatchSource } from '../status/follow.js';

interface Listed {
  readonly items: readonly unknown[];
  readonly metadata?: { readonly resourceVersion?: string | undefined } | undefined;
}

interface Spec {
  /** The watch's path, e.g. `/api/v1/nodes`. */
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly list: () => Promise<Listed>;
  /** The model a watched object is read into, as the typed list's items are. */
  readonly model: 'V1Node' | 'CoreV1Event';
}

/** The watch's own HTTP error carries `statusCode`; the classifier reads `code`. */
function asApiError(err: unknown): Error {
  const code = (err as { statusCode?: unknown } | null)?.statusCode;
  if (typeof code !== 'number') return err instanceof Error ? err : new Error(String(err));
  return new WatchError(code, `watch: HTTP ${code} ${(err as Error).message}`);
}

const OBJECT_EVENTS = new Set(['ADDED', 'MODIFIED', 'DELETED']);

function listWatch(kc: KubeConfig, spec: Spec): WatchSource {
  return {
    async list() {
      const listed = await spec.list();
      return { items: listed.items, resourceVersion: listed.metadata?.resourceVersion ?? '' };
    },
    watch(resourceVersion, onEvent, signal) {
      const query = { ...spec.query, resourceVersion, allowWatchBookmarks: true };
      return new Promise<void>((resolve, reject) => {
        const done = (err: unknown): void => {
          if (signal.aborted || err === null || err === undefined) resolve();
          else reject(asApiError(err));
        };
        new Watch(kc)
          .watch(
            spec.path,
            query,
            (type: string, obj: unknown) => {
              // ERROR carries a Status and BOOKMARK only a resourceVersion: passed on as they are.
              const typed: unknown = OBJECT_EVENTS.has(type)
                ? ObjectSerializer.deserialize(obj, spec.model, '')
                : obj;
              onEvent(type, typed);
            },
            done,
          )
          .then((req) => {
            if (signal.aborted) req.abort();
            else
              signal.addEventListener(
                'abort',
                () => {
                  req.abort();
                },
                { once: true },
              );
          }, done);
      });
    },
  };
}

/** Nodes, those matching `labelSelector` when one is given. */
export function nodeSource(kc: KubeConfig, labelSelector: string | undefined): WatchSource {
  const core = kc.makeApiClient(CoreV1Api);
  const query = labelSelector === undefined ? {} : { labelSelector };
  return listWatch(kc, {
    path: '/api/v1/nodes',
    query,
    list: () => core.listNode(query),
    model: 'V1Node',
  });
}

/**
 * Events about objects of one kind: in `namespace`, or in every namespace (undefined). Node
 * Events live in `default`, where the kubelet and the coordinator write them.
 */
export function eventSource(
  kc: KubeConfig,
  kind: 'Node' | 'NodeMaintenance',
  namespace: string | undefined,
): WatchSource {
  const core = kc.makeApiClient(CoreV1Api);
  const fieldSelector = `involvedObject.kind=${kind}`;
  return listWatch(kc, {
    path: namespace === undefined ? '/api/v1/events' : `/api/v1/namespaces/${namespace}/events`,
    query: { fieldSelector },
    list: () =>
      namespace === undefined
        ? core.listEventForAllNamespaces({ fieldSelector })
        : core.listNamespacedEvent({ namespace, fieldSelector }),
    model: 'CoreV1Event',
  });
}
