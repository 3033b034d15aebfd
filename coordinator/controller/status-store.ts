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
} from '../../shared/api/index.js';
import type { Logger } from '../../shared/log.js';
import { summarize } from './model.js';

export interface StatusStore {
  readonly current: NodeMaintenanceStatus;
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
  let current = opts.initial;
  let written: Record<string, unknown> = { ...opts.initial };
  let timer: NodeJS.Timeout | undefined;
  let writes = 0;

  const apply = (mutate: (s: NodeMaintenanceStatus) => NodeMaintenanceStatus) => {
    const cr = opts.cr();
    current = summarize(mutate(current), cr.spec, opts.now(), cr.metadata.generation);
  };

  /** A merge patch: what changed, and null for what was removed since the last write. */
  const diff = (): Record<string, unknown> | undefined => {
    const next = current as Record<string, unknown>;
    const patch: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(next)) {
      if (JSON.stringify(v) !== JSON.stringify(written[k])) patch[k] = v;
    }
    for (const k of Object.keys(written)) if (!(k in next)) patch[k] = null;
    return Object.keys(patch).length === 0 ? undefined : patch;
  };

  const writeDiff = async (): Promise<void> => {
    const patch = diff();
    if (patch === undefined) return;
    const snapshot = { ...current } as Record<string, unknown>;
    for (let attempt = 0; ; attempt++) {
      try {
        await opts.write(patch);
        writes++;
        written = snapshot;
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

  return {
    get current() {
      return current;
    },
    get writes() {
      return writes;
    },
    commit(mutate) {
      apply(mutate);
      if (timer !== undefined) {
        clearTimeout(timer);
        timer = undefined;
      }
      return enqueueWrite();
    },
    coalesce(mutate) {
      apply(mutate);
      timer ??= setTimeout(() => {
        timer = undefined;
        void enqueueWrite();
      }, opts.intervalMs);
    },
    flush() {
      if (timer !== undefined) {
        clearTimeout(timer);
        timer = undefined;
      }
      return enqueueWrite();
    },
  };
}
