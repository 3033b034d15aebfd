// The status of one NodeMaintenance, held in memory (the leader is its only writer) and written
// to the status subresource. Transitions are written at once and awaited; progress (drain
// counters, waiting messages) is coalesced into at most one write per interval.
import {
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import {
  GROUP,
  PLURAL,
  VERSION,
  type NodeMaintenance,
  type NodeMaintenanceStatus,
  type NodeStatus,
} from '../../shared/api/index.js';
import type { Logger } from '../../shared/log.js';
import { STATUS_TAIL_BYTES, tailBytes } from '../../shared/protocol.js';
import { summarize } from './model.js';

/**
 * What all output tails of one NodeMaintenance may take together. etcd refuses objects over
 * 1.5 MiB, and the API server's cost of each status write grows with its size: 2000 nodes
 * with 4 KiB each would be 8 MiB. With many nodes each keeps a shorter tail (the agent keeps
 * the last 64 KiB on the node).
 */
export const STATUS_TAILS_BUDGET_BYTES = 256 * 1024;
const MIN_TAIL_BYTES = 64;

/** Pure: the output tail each node may keep in a status of `nodes` nodes. */
export function tailLimit(nodes: number): number {
  const share = Math.floor(STATUS_TAILS_BUDGET_BYTES / Math.max(1, nodes));
  return Math.max(MIN_TAIL_BYTES, Math.min(STATUS_TAIL_BYTES, share));
}

/**
 * Pure: a node's entry as kept and written. Detail that says nothing (a drain of no pods, no
 * initial taints) is left out and the tail is cut to its share, so that a status of thousands
 * of nodes stays small; readers treat a missing drain as no pods and missing taints as none.
 */
export function compactNode(n: NodeStatus, tailMax: number): NodeStatus {
  let out = n;
  const d = n.drain;
  if (d?.total === 0 && d.pending === 0 && d.blockedBy === undefined) {
    const { drain: _drain, ...rest } = out;
    out = rest;
  }
  if (n.initialState?.taints?.length === 0) {
    out = { ...out, initialState: { unschedulable: n.initialState.unschedulable } };
  }
  if (n.outputTail !== undefined && Buffer.byteLength(n.outputTail) > tailMax) {
    out = { ...out, outputTail: tailBytes(n.outputTail, tailMax) };
  }
  return out;
}

/** Pure: compactNode over every node of a status. */
export function compactStatus(status: NodeMaintenanceStatus): NodeMaintenanceStatus {
  if (status.nodes === undefined) return status;
  const limit = tailLimit(status.nodes.length);
  return { ...status, nodes: status.nodes.map((n) => compactNode(n, limit)) };
}

export interface StatusStore {
  /** The whole status, derived fields (phase, progress, conditions…) included. */
  readonly current: NodeMaintenanceStatus;
  /** One node's entry, without summarizing the whole status. */
  node(name: string): NodeStatus | undefined;
  /** Every node's entry, without summarizing the whole status. */
  nodes(): readonly NodeStatus[];
  /**
   * Replaces the entry of `next.name` and writes status (resolves once stored), or with
   * `progressOnly` within the coalescing interval. Costs O(1) however many nodes there are.
   */
  setNode(next: NodeStatus, progressOnly: boolean): Promise<void>;
  /** Applies `mutate` and writes status; resolves once it is stored. */
  commit(mutate: (s: NodeMaintenanceStatus) => NodeMaintenanceStatus): Promise<void>;
  /** Applies `mutate` now; the write happens within the coalescing interval. */
  coalesce(mutate: (s: NodeMaintenanceStatus) => NodeMaintenanceStatus): void;
  /** Resolves when every change so far is written. */
  flush(): Promise<void>;
  /** Number of status writes made (for metrics and benchmarks). */
  readonly writes: number;
}

export type StatusWriter = (status: Record<string, unknown>) => Promise<void>;

export function kubeStatusWriter(kc: KubeConfig, cr: NodeMaintenance): StatusWriter {
  const api = kc.makeApiClient(CustomObjectsApi);
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  return async (status) => {
    await api.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace: cr.metadata.namespace ?? '',
        name: cr.metadata.name ?? '',
        body: { status },
      },
      merge,
    );
  };
}

export function createStatusStore(opts: {
  initial: NodeMaintenanceStatus;
  cr: () => NodeMaintenance;
  write: StatusWriter;
  log: Logger;
  now: () => Date;
  intervalMs: number;
}): StatusStore {
  // `state.nodes` is this store's own array, changed in place one entry at a time: a 2000-node
  // maintenance makes ~12 000 node transitions, and copying the list and summarizing all of it
  // at each would be quadratic. The derived fields are brought up to date when next read (or
  // written), and kept in `state` so that the next summary sees the conditions it builds on.
  let state: NodeMaintenanceStatus = {};
  let index = new Map<string, number>();
  let stale = true;
  /** What was last written, per top-level key, as JSON. */
  let written = new Map<string, string>(
    Object.entries(opts.initial).map(([k, v]) => [k, JSON.stringify(v)]),
  );
  let timer: NodeJS.Timeout | undefined;
  let writes = 0;

  const reset = (next: NodeMaintenanceStatus) => {
    state = compactStatus(next); // a fresh nodes array
    index = new Map((state.nodes ?? []).map((n, i) => [n.name, i]));
    stale = true;
  };
  reset(opts.initial);

  const current = (): NodeMaintenanceStatus => {
    if (stale) {
      const cr = opts.cr();
      state = summarize(state, cr.spec, opts.now(), cr.metadata.generation);
      stale = false;
    }
    return state;
  };

  const apply = (mutate: (s: NodeMaintenanceStatus) => NodeMaintenanceStatus) => {
    reset(mutate(current()));
  };

  /** A merge patch: what changed, and null for what was removed since the last write. */
  const diff = (): { patch: Record<string, unknown>; json: Map<string, string> } | undefined => {
    const next = current() as Record<string, unknown>;
    const json = new Map<string, string>();
    const patch: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(next)) {
      const j = JSON.stringify(v);
      json.set(k, j);
      if (j !== written.get(k)) patch[k] = v;
    }
    for (const k of written.keys()) if (!(k in next)) patch[k] = null;
    return Object.keys(patch).length === 0 ? undefined : { patch, json };
  };

  const writeDiff = async (): Promise<void> => {
    const d = diff();
    if (d === undefined) return;
    for (let attempt = 0; ; attempt++) {
      try {
        await opts.write(d.patch);
        writes++;
        written = d.json;
        return;
      } catch (err) {
        if ((err as { code?: unknown }).code === 404) return; // the object is gone
        // The status is the only record of progress: keep trying while the API server is
        // away rather than lose a transition.
        opts.log.warn({ err, attempt }, 'status write failed; retrying');
        await new Promise((r) => setTimeout(r, Math.min(5_000, 200 * 2 ** attempt)));
      }
    }
  };

  // Group commit: one write in flight at a time, and every change made while it is in flight
  // goes out together in the one write after it. (A queue of one write per commit would let
  // each node's next change trail the others' and serialize a 100-node maintenance.)
  let inFlight = false;
  let waiting: { promise: Promise<void>; resolve: () => void } | undefined;
  const runWrites = async (): Promise<void> => {
    inFlight = true;
    while (waiting !== undefined) {
      const batch = waiting;
      waiting = undefined;
      await writeDiff();
      batch.resolve();
    }
    inFlight = false;
  };
  const enqueueWrite = (): Promise<void> => {
    if (waiting === undefined) {
      let resolve: () => void = () => undefined;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      waiting = { promise, resolve };
    }
    const { promise } = waiting;
    if (!inFlight) void runWrites();
    return promise;
  };

  const writeNow = (): Promise<void> => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    return enqueueWrite();
  };
  const writeSoon = (): void => {
    timer ??= setTimeout(() => {
      timer = undefined;
      void enqueueWrite();
    }, opts.intervalMs);
  };

  return {
    get current() {
      return current();
    },
    get writes() {
      return writes;
    },
    node(name) {
      const i = index.get(name);
      return i === undefined ? undefined : state.nodes?.[i];
    },
    nodes() {
      return state.nodes ?? [];
    },
    setNode(next, progressOnly) {
      const i = index.get(next.name);
      if (i === undefined || state.nodes === undefined) {
        return Promise.reject(new Error(`node ${next.name} is not in status`));
      }
      state.nodes[i] = compactNode(next, tailLimit(state.nodes.length));
      if (next.currentActionType !== undefined && state.lastAction !== next.currentActionType) {
        state = { ...state, lastAction: next.currentActionType };
      }
      stale = true;
      if (progressOnly) {
        writeSoon();
        return Promise.resolve();
      }
      return writeNow();
    },
    commit(mutate) {
      apply(mutate);
      return writeNow();
    },
    coalesce(mutate) {
      apply(mutate);
      writeSoon();
    },
    flush() {
      return writeNow();
    },
  };
}
