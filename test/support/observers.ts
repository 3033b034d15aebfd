// Observers for integration tests that count side effects from outside the coordinator: every
// version of the Nodes (a list, then a watch from its resourceVersion, so no change is missed
// between samples), and every action pod the coordinator creates, played to its end as the
// kubelet would (KWOK starts pods but never ends them).
import {
  CoreV1Api,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
  type V1Node,
  type V1Pod,
  type V1Taint,
} from '@kubernetes/client-node';
import { waitFor } from './kube.js';

const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** One version of an object as the API server reported it. */
export interface Seen<T> {
  readonly type: 'LISTED' | 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly obj: T;
  /** The object's resourceVersion as a number (etcd's revision: ordered across resources). */
  readonly rv: number;
  /** When this process received it (performance.now()). */
  readonly at: number;
}

export interface Recorder<T> {
  /** Every version, in the order received. */
  readonly seen: readonly Seen<T>[];
  /** Stops the watch; throws if it had ended before with an error (versions may be missing). */
  stop(): Promise<void>;
}

/** Lists `path` and watches it from the list's resourceVersion, recording every version. */
export async function recordWatch<T extends KubernetesObject>(
  kc: KubeConfig,
  path: string,
  list: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>,
  query: Record<string, string>,
  onVersion: (s: Seen<T>) => void = () => undefined,
): Promise<Recorder<T>> {
  const seen: Seen<T>[] = [];
  const push = (type: Seen<T>['type'], obj: T) => {
    const s = { type, obj, rv: Number(obj.metadata?.resourceVersion ?? 0), at: performance.now() };
    seen.push(s);
    onVersion(s);
  };
  const first = await list();
  for (const item of first.items) push('LISTED', item);
  const state: { stopped: boolean; error?: unknown } = { stopped: false };
  const req = await new Watch(kc).watch(
    path,
    { ...query, resourceVersion: first.metadata?.resourceVersion ?? '' },
    (type: string, obj: T) => {
      if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') push(type, obj);
    },
    (err: unknown) => {
      if (!state.stopped) state.error = err ?? new Error(`watch of ${path} ended early`);
    },
  );
  return {
    seen,
    stop() {
      state.stopped = true;
      req.abort();
      if (state.error !== undefined) {
        return Promise.reject(new Error(`watch of ${path} ended early`, { cause: state.error }));
      }
      return Promise.resolve();
    },
  };
}

/** A Node's state that a maintenance changes, in one version. */
export interface NodeVersion {
  readonly name: string;
  readonly rv: number;
  readonly at: number;
  readonly deleted: boolean;
  readonly unschedulable: boolean;
  /** Taints other than the node lifecycle controller's (node.kubernetes.io/*). */
  readonly taints: readonly V1Taint[];
  readonly annotations: Readonly<Record<string, string>>;
  readonly labels: Readonly<Record<string, string>>;
}

export interface NodeRecorder {
  readonly versions: readonly NodeVersion[];
  /** The latest version of each node seen. */
  latest(name: string): NodeVersion | undefined;
  /** Nodes seen unschedulable at least once (among `among`, default all). */
  everUnschedulable(among?: readonly string[]): string[];
  /** The most nodes of `among` (default all) unschedulable at once, replaying versions in order. */
  maxUnschedulable(among?: readonly string[]): number;
  stop(): Promise<void>;
}

/** Records every version of the Nodes matching `labelSelector` from now on. */
export async function recordNodes(kc: KubeConfig, labelSelector: string): Promise<NodeRecorder> {
  const core = kc.makeApiClient(CoreV1Api);
  const rec = await recordWatch<V1Node>(
    kc,
    '/api/v1/nodes',
    () => core.listNode({ labelSelector }),
    { labelSelector },
  );
  const versions = (): NodeVersion[] =>
    rec.seen.map((s) => ({
      name: s.obj.metadata?.name ?? '',
      rv: s.rv,
      at: s.at,
      deleted: s.type === 'DELETED',
      unschedulable: s.type !== 'DELETED' && s.obj.spec?.unschedulable === true,
      taints: (s.obj.spec?.taints ?? []).filter((t) => !t.key.startsWith('node.kubernetes.io/')),
      annotations: s.obj.metadata?.annotations ?? {},
      labels: s.obj.metadata?.labels ?? {},
    }));
  const within = (among: readonly string[] | undefined) => (name: string) =>
    among === undefined || among.includes(name);
  return {
    get versions() {
      return versions();
    },
    latest: (name) => versions().findLast((v) => v.name === name),
    everUnschedulable(among) {
      const names = versions()
        .filter((v) => v.unschedulable && within(among)(v.name))
        .map((v) => v.name);
      return [...new Set(names)].sort();
    },
    maxUnschedulable(among) {
      const now = new Set<string>();
      let max = 0;
      for (const v of versions()) {
        if (!within(among)(v.name)) continue;
        if (v.unschedulable) now.add(v.name);
        else now.delete(v.name);
        max = Math.max(max, now.size);
      }
      return max;
    },
    stop: () => rec.stop(),
  };
}

/** An action pod the coordinator created (labels and action ID annotation of pod-job.ts). */
export interface ActionPod {
  readonly name: string;
  readonly uid: string;
  readonly node: string;
  readonly index: number;
  readonly attempt: number;
  readonly actionId: string;
  readonly maintenanceUid: string;
  readonly rv: number;
}

/** What the executor does with a pod once it runs: end it with an exit code, or leave it. */
export type Verdict = { readonly exit: number; readonly message?: string } | 'hold';

export interface PodExecutor {
  /** Every action pod created since the executor started, in the order created. */
  readonly created: readonly ActionPod[];
  /** Waits for a created pod matching `pred`. */
  waitPod(what: string, pred: (p: ActionPod) => boolean, timeoutMs?: number): Promise<ActionPod>;
  /** Ends a pod (one held, or any) as its container exiting with `exit` would. */
  end(pod: ActionPod, exit: number, message?: string): Promise<void>;
  stop(): Promise<void>;
}

function actionPod(pod: V1Pod, rv: number): ActionPod {
  const labels = pod.metadata?.labels ?? {};
  const actionId = pod.metadata?.annotations?.['noma.dev/action-id'] ?? '';
  return {
    name: pod.metadata?.name ?? '',
    uid: pod.metadata?.uid ?? '',
    node: pod.spec?.nodeName ?? '',
    index: Number(labels['noma.dev/action-index'] ?? -1),
    // <maintenance uid>/<node>/<index>/<attempt>
    attempt: Number(actionId.split('/').at(-1) ?? 0),
    actionId,
    maintenanceUid: labels['noma.dev/maintenance-uid'] ?? '',
    rv,
  };
}

/**
 * Plays the kubelet's last part for the coordinator's action pods in `namespace`: once a pod
 * runs (KWOK made it Running, or `startsAnyway(pod)` for a node KWOK does not manage), `decide`
 * says whether its container exits now and with which code, or is held for the test to end.
 */
export async function podExecutor(
  kc: KubeConfig,
  namespace: string,
  decide: (pod: ActionPod) => Verdict,
  startsAnyway: (pod: ActionPod) => boolean = () => false,
): Promise<PodExecutor> {
  const core = kc.makeApiClient(CoreV1Api);
  const labelSelector = 'app.kubernetes.io/name=noma,app.kubernetes.io/component=action';
  const created: ActionPod[] = [];
  const decided = new Set<string>();
  const failures: unknown[] = [];
  const end = async (pod: ActionPod, exit: number, message = '') => {
    await core.patchNamespacedPodStatus(
      {
        name: pod.name,
        namespace,
        body: {
          status: {
            phase: exit === 0 ? 'Succeeded' : 'Failed',
            containerStatuses: [
              {
                name: 'action',
                image: '',
                imageID: '',
                ready: false,
                restartCount: 0,
                state: {
                  terminated: {
                    exitCode: exit,
                    reason: exit === 0 ? 'Completed' : 'Error',
                    message,
                  },
                },
              },
            ],
          },
        },
      },
      MERGE,
    );
  };
  const onVersion = (s: Seen<V1Pod>) => {
    const p = actionPod(s.obj, s.rv);
    if (p.uid === '' || s.type === 'DELETED') return;
    if (!created.some((c) => c.uid === p.uid)) created.push(p);
    const runs = s.obj.status?.phase === 'Running' || startsAnyway(p);
    if (!runs || decided.has(p.uid) || s.obj.metadata?.deletionTimestamp !== undefined) return;
    decided.add(p.uid);
    const verdict = decide(p);
    if (verdict === 'hold') return;
    end(p, verdict.exit, verdict.message).catch((err: unknown) => failures.push(err));
  };
  const rec = await recordWatch<V1Pod>(
    kc,
    `/api/v1/namespaces/${namespace}/pods`,
    () => core.listNamespacedPod({ namespace, labelSelector }),
    { labelSelector },
    onVersion,
  );
  return {
    created,
    waitPod: (what, pred, timeoutMs = 30_000) =>
      waitFor(what, () => Promise.resolve(created.find(pred)), timeoutMs, 50),
    end,
    async stop() {
      await rec.stop();
      if (failures.length > 0) {
        throw new Error(`ending ${failures.length} pod(s) failed`, { cause: failures[0] });
      }
    },
  };
}
