// The NodeMaintenances as the API server gives them: a list (or, for a named one, a get) and a
// watch from its resourceVersion. Loaded only by `noma status`, with the Kubernetes client.
import { Watch, type KubeConfig } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../../shared/api/index.js';
import { customObjects } from '../kube/client.js';
import { WatchError, type WatchSource } from './follow.js';

/** Which maintenances: one (`name`), a namespace's, or every namespace's (no namespace). */
export interface Scope {
  readonly namespace: string | undefined;
  readonly name: string | undefined;
}

/** Pure: the watch path and query of a scope. */
export function watchRequest(
  scope: Scope,
  resourceVersion: string,
): { path: string; query: Record<string, string | boolean> } {
  const path =
    scope.namespace === undefined
      ? `/apis/${GROUP}/${VERSION}/${PLURAL}`
      : `/apis/${GROUP}/${VERSION}/namespaces/${scope.namespace}/${PLURAL}`;
  const query: Record<string, string | boolean> = { resourceVersion, allowWatchBookmarks: true };
  if (scope.name !== undefined) query['fieldSelector'] = `metadata.name=${scope.name}`;
  return { path, query };
}

/** The items of a list answer; anything else is none. */
const itemsOf = (list: unknown): unknown[] => {
  const items = (list as { items?: unknown } | null)?.items;
  return Array.isArray(items) ? (items as unknown[]) : [];
};
const rvOf = (obj: unknown): string =>
  (obj as { metadata?: { resourceVersion?: string } } | null)?.metadata?.resourceVersion ?? '';

export function maintenanceSource(kc: KubeConfig, scope: Scope): WatchSource {
  const api = customObjects(kc);
  const base = { group: GROUP, version: VERSION, plural: PLURAL };
  const { namespace, name } = scope;
  return {
    async list() {
      if (name !== undefined) {
        const one: unknown = await api.getNamespacedCustomObject({
          ...base,
          namespace: namespace ?? 'default',
          name,
        });
        return { items: [one], resourceVersion: rvOf(one) };
      }
      const list: unknown =
        namespace === undefined
          ? await api.listClusterCustomObject(base)
          : await api.listNamespacedCustomObject({ ...base, namespace });
      return { items: itemsOf(list), resourceVersion: rvOf(list) };
    },
    watch(resourceVersion, onEvent, signal) {
      const { path, query } = watchRequest(scope, resourceVersion);
      return new Promise<void>((resolve, reject) => {
        const done = (err: unknown): void => {
          if (signal.aborted || err === null || err === undefined) resolve();
          // The watch's own HTTP error carries `statusCode`; the classifier reads `code`.
          else reject(asApiError(err));
        };
        new Watch(kc)
          .watch(
            path,
            query,
            (type: string, obj: unknown) => {
              onEvent(type, obj);
            },
            done,
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
          }, done);
      });
    },
  };
}

function asApiError(err: unknown): Error {
  const code = (err as { statusCode?: unknown } | null)?.statusCode;
  if (typeof code !== 'number') return err instanceof Error ? err : new Error(String(err));
  return new WatchError(code, `watch: HTTP ${code} ${(err as Error).message}`);
}
