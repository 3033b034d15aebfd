// The status of one NodeMaintenance, held in memory (the leader is its only writer) and written
// to the status subresource. Transitions are written at once and awaited; progress (drain
// counters, waiting messages) is coalesced into at most one write per interval. A write the API
// server cannot take (unreachable, busy, a conflict) is retried until it lands; one it refuses
// (422, 413, 403…) is sent once more trimmed and then given up, with a StatusWritable condition
// saying so, so that nothing waiting on the status (a deletion, say) waits forever.
import {
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import {
  GROUP,
  NODE_MESSAGE_MAX_BYTES,
  PLURAL,
  VERSION,
  type Condition,
  type NodeMaintenance,
  type NodeMaintenanceStatus,
  type NodeStatus,
} from '../../shared/api/index.js';
import { describeApiError, isTransient, statusCode } from '../../shared/kube-errors.js';
import { retry } from '../../shared/retry.js';
import type { Logger } from '../../shared/log.js';
import { STATUS_TAIL_BYTES, tailBytes } from '../../shared/protocol.js';
import { setCondition, summarize } from './model.js';
import { compactPhaseTimes, PHASE_TIMES_HISTORY_MAX_NODES } from './node-states.js';

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
 * Pure: the first `maxBytes` bytes of `text` in UTF-8, never cutting a character, with "…" at
 * the end when anything was cut (the start of a message says what happened; the CRD's
 * maxLength counts characters, which are never more than bytes).
 */
export function headBytes(text: string, maxBytes: number): string {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= maxBytes) return text;
  const ELLIPSIS = '…'; // 3 bytes
  let end = Math.max(0, maxBytes - 3);
  // Back up over UTF-8 continuation bytes so the cut falls between characters.
  while (end > 0 && ((buf[end] ?? 0) & 0xc0) === 0x80) end--;
  return `${buf.subarray(0, end).toString('utf8')}${ELLIPSIS}`;
}

/**
 * Pure: a node's entry as kept and written. Detail that says nothing (a drain of no pods, no
 * initial taints) is left out, the tail is cut to its share and the message to
 * NODE_MESSAGE_MAX_BYTES, so that a status of thousands of nodes stays small and valid;
 * readers treat a missing drain as no pods and missing taints as none.
 */
export function compactNode(n: NodeStatus, tailMax: number): NodeStatus {
  let out = n;
  const d = n.drain;
  if (d?.total === 0 && d.pending === 0 && d.blockedBy === undefined) {
    const { drain: _drain, ...rest } = out;
    out = rest;
  }
  if (n.initialState?.taints?.length === 0) {
    const { taints: _none, ...initialState } = n.initialState;
    out = { ...out, initialState };
  }
  if (n.outputTail !== undefined && Buffer.byteLength(n.outputTail) > tailMax) {
    out = { ...out, outputTail: tailBytes(n.outputTail, tailMax) };
  }
  if (n.message !== undefined && Buffer.byteLength(n.message) > NODE_MESSAGE_MAX_BYTES) {
    out = { ...out, message: headBytes(n.message, NODE_MESSAGE_MAX_BYTES) };
  }
  // The tail's share says how many nodes there are: finished ones keep only their end time.
  return compactPhaseTimes(out, tailMax <= tailLimit(PHASE_TIMES_HISTORY_MAX_NODES));
}

/** Pure: compactNode over every node of a status. */
export function compactStatus(status: NodeMaintenanceStatus): NodeMaintenanceStatus {
  if (status.nodes === undefined) return status;
  const limit = tailLimit(status.nodes.length);
  return { ...status, nodes: status.nodes.map((n) => compactNode(n, limit)) };
}

/** What a trimmed status keeps of each free text (messages, a blocker's reason). */
export const TRIMMED_TEXT_BYTES = 256;
const TRIMMED_PENDING_JOBS = 20;
/** The condition a refused status write raises, and how much of the refusal it quotes. */
export const WRITABLE_CONDITION = 'StatusWritable';
const REFUSAL_TEXT_BYTES = 512;

/**
 * Pure: the status with what the API server may have refused it for taken out: output tails
 * dropped, messages (nodes, blockers, conditions) cut to TRIMMED_TEXT_BYTES, pendingJobs
 * shortened. Phases, steps, IDs and times stay: they are what a restart resumes from.
 */
export function trimStatus(status: NodeMaintenanceStatus): NodeMaintenanceStatus {
  const cut = (t: string | undefined) => (t === undefined ? t : headBytes(t, TRIMMED_TEXT_BYTES));
  const nodes = status.nodes?.map((n): NodeStatus => {
    const { outputTail: _tail, ...rest } = n;
    const out: NodeStatus = { ...rest };
    if (n.message !== undefined) out.message = headBytes(n.message, TRIMMED_TEXT_BYTES);
    const b = n.drain?.blockedBy;
    if (n.drain !== undefined && b?.message !== undefined) {
      out.drain = {
        ...n.drain,
        blockedBy: { ...b, message: headBytes(b.message, TRIMMED_TEXT_BYTES) },
      };
    }
    return out;
  });
  // StatusWritable is kept whole: it is bounded already, and it is what says why.
  const conditions = status.conditions?.map((c): Condition => {
    const message = c.type === WRITABLE_CONDITION ? c.message : cut(c.message);
    return message === undefined ? c : { ...c, message };
  });
  return {
    ...status,
    ...(nodes === undefined ? {} : { nodes }),
    ...(conditions === undefined ? {} : { conditions }),
    ...(status.pendingJobs === undefined
      ? {}
      : { pendingJobs: status.pendingJobs.slice(0, TRIMMED_PENDING_JOBS) }),
  };
}

/** The API server's words for a refusal: "422 Invalid: <its message>", bounded. */
export function describeRefusal(err: unknown): string {
  return headBytes(describeApiError(err), REFUSAL_TEXT_BYTES);
}

export interface StatusStore {
  /** The whole status, derived fields (phase, progress, conditions…) included. */
  readonly current: NodeMaintenanceStatus;
  /** One node's entry, without summarizing the whole status. */
  node(name: string): NodeStatus | undefined;
  /** Every node's entry, without summarizing the whole status. */
  nodes(): readonly NodeStatus[];
  /**
   * Replaces the entry of `next.name` and writes status (resolves once stored, or once the API
   * server refused it: see `refused`), or with `progressOnly` within the coalescing interval.
   * Costs O(1) however many nodes there are. Never rejects: a refused status must not keep a
   * run (or the deletion of its NodeMaintenance) from going on.
   */
  setNode(next: NodeStatus, progressOnly: boolean): Promise<void>;
  /** Applies `mutate` and writes status; resolves once it is stored or refused. */
  commit(mutate: (s: NodeMaintenanceStatus) => NodeMaintenanceStatus): Promise<void>;
  /** Applies `mutate` now; the write happens within the coalescing interval. */
  coalesce(mutate: (s: NodeMaintenanceStatus) => NodeMaintenanceStatus): void;
  /** Resolves when every change so far is written (or refused). */
  flush(): Promise<void>;
  /** Number of status writes made (for metrics and benchmarks). */
  readonly writes: number;
  /**
   * Number of writes given up because the API server refused them (a 4xx other than
   * 404/409/429) even trimmed; what they carried is in `current` and goes out with the next
   * write that is accepted.
   */
  readonly refused: number;
  /** The API server's reason for the last refused write (bounded), if any was refused. */
  readonly lastRefusal: string | undefined;
}

/**
 * Writes a merge patch of status. With `resourceVersion` the API server applies it only to that
 * version of the object (409 otherwise); resolves with the version the write made (a string), if
 * it knows it.
 */
export type StatusWriter = (
  status: Record<string, unknown>,
  resourceVersion?: string,
) => Promise<unknown>;

/** Reads the object as stored: its version and status (after a conflict). */
export type StatusReader = () => Promise<{ resourceVersion?: string; status?: unknown }>;

/**
 * The leader's fence: its epoch (the Lease's transitions when it was acquired), written into
 * status.leaderEpoch, which the CRD's transition rule never lets go back; and a signal aborted
 * the moment leadership is lost, from which on nothing more is written.
 */
export interface StatusFence {
  readonly epoch: number;
  readonly signal: AbortSignal;
}

/**
 * Pure: the epoch a new leader writes with. Its Lease's transitions are higher than any epoch
 * written before, unless the Lease was deleted and made anew (transitions from 0): then one
 * above the highest epoch seen in any status, so that its writes are not refused forever.
 */
export function fenceEpoch(leaseEpoch: number, objects: readonly { status?: unknown }[]): number {
  let seen = -1;
  for (const o of objects) {
    const e = (o.status as { leaderEpoch?: unknown } | undefined)?.leaderEpoch;
    if (typeof e === 'number' && e > seen) seen = e;
  }
  return seen > leaseEpoch ? seen + 1 : leaseEpoch;
}

export function kubeStatusWriter(kc: KubeConfig, cr: NodeMaintenance): StatusWriter {
  const api = kc.makeApiClient(CustomObjectsApi);
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  return async (status, resourceVersion) => {
    const stored = (await api.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace: cr.metadata.namespace ?? '',
        name: cr.metadata.name ?? '',
        // A resourceVersion in a patch is a precondition: the write applies to the version
        // this status was computed against, or fails with 409.
        body:
          resourceVersion === undefined ? { status } : { metadata: { resourceVersion }, status },
      },
      merge,
    )) as { metadata?: { resourceVersion?: string } } | undefined;
    return stored?.metadata?.resourceVersion;
  };
}

export function kubeStatusReader(kc: KubeConfig, cr: NodeMaintenance): StatusReader {
  const api = kc.makeApiClient(CustomObjectsApi);
  return async () => {
    const stored = (await api.getNamespacedCustomObjectStatus({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      namespace: cr.metadata.namespace ?? '',
      name: cr.metadata.name ?? '',
    })) as { metadata?: { resourceVersion?: string }; status?: unknown } | undefined;
    return {
      ...(stored?.metadata?.resourceVersion === undefined
        ? {}
        : { resourceVersion: stored.metadata.resourceVersion }),
      status: stored?.status,
    };
  };
}

/**
 * Pure: the later of two resourceVersions. They are opaque, but the API server's are etcd
 * revisions; when both are numbers the larger is the later one. Otherwise the one we hold
 * (from our own last write) wins: a wrong guess costs one 409 and a re-read, never a lost write.
 */
export function laterVersion(
  held: string | undefined,
  seen: string | undefined,
): string | undefined {
  if (held === undefined) return seen;
  if (seen === undefined || !/^\d+$/.test(held) || !/^\d+$/.test(seen)) return held;
  return BigInt(seen) > BigInt(held) ? seen : held;
}

/** Pure: whether a refusal is the CRD's leaderEpoch rule, i.e. a newer leader has written. */
export const refusedForEpoch = (err: unknown): boolean =>
  statusCode(err) === 422 && describeRefusal(err).includes('leaderEpoch');

export function createStatusStore(opts: {
  initial: NodeMaintenanceStatus;
  cr: () => NodeMaintenance;
  write: StatusWriter;
  log: Logger;
  now: () => Date;
  intervalMs: number;
  /** Re-reads the stored object after a conflict; without it a conflict is retried blind. */
  read?: StatusReader;
  /** The leader's epoch and loss signal; without it writes are not fenced (tests, tools). */
  fence?: StatusFence;
  /** A newer leader has written this status: this process is deposed. */
  onDeposed?: (why: string) => void;
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
  /** Set for good once the API server refused a write: from then on the status goes trimmed. */
  let trimmed = false;
  let refused = 0;
  let lastRefusal: string | undefined;
  /** The version of the object our next write applies to (see laterVersion). */
  let version = opts.read === undefined ? undefined : opts.cr().metadata.resourceVersion;
  /** Set once a newer leader wrote: nothing more is written. */
  let deposed = false;
  const fenced = (): boolean => deposed || opts.fence?.signal.aborted === true;

  const reset = (next: NodeMaintenanceStatus) => {
    state = compactStatus(next); // a fresh nodes array
    index = new Map((state.nodes ?? []).map((n, i) => [n.name, i]));
    stale = true;
  };
  const setWritable = (c: Omit<Condition, 'type' | 'lastTransitionTime'>) => {
    // Kept in `state`, whose conditions summarize() carries over, so it goes out with the
    // next write and keeps its lastTransitionTime.
    state = {
      ...state,
      conditions: setCondition(state.conditions, { type: WRITABLE_CONDITION, ...c }, opts.now()),
    };
  };
  reset(opts.initial);
  // A coordinator before this one had writes refused; this one has not, so far.
  if (state.conditions?.some((c) => c.type === WRITABLE_CONDITION && c.status !== 'True')) {
    setWritable({ status: 'True', reason: 'StatusWritten', message: 'status writes are accepted' });
  }

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
    const shown = trimmed ? trimStatus(current()) : current();
    const next: Record<string, unknown> =
      opts.fence === undefined ? shown : { ...shown, leaderEpoch: opts.fence.epoch };
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

  /**
   * A refusal that retrying unchanged would only repeat (422 Invalid, 413, 400, 403…): the
   * first one switches to trimmed writes and says so in a condition; a trimmed write refused
   * too is given up (its content goes out with the next write that is accepted). Returns
   * whether to try again.
   */
  const onRefused = (err: unknown): boolean => {
    const why = describeRefusal(err);
    lastRefusal = why;
    const retry = !trimmed;
    if (trimmed) refused++;
    trimmed = true;
    setWritable({
      status: 'False',
      reason: 'StatusWriteRefused',
      message:
        `the API server refused a status write; writing a trimmed status from now on (no ` +
        `output tails, messages cut)` +
        (refused > 0 ? `; ${refused} write(s) refused even trimmed` : '') +
        `; last refusal: ${why}`,
    });
    if (retry) opts.log.warn({ err: why }, 'status write refused; writing it trimmed');
    else opts.log.error({ err: why, refused }, 'status write refused even trimmed; giving it up');
    return retry;
  };

  const depose = (why: string): void => {
    if (deposed) return;
    deposed = true;
    opts.log.error({ why }, 'a newer leader writes this status; this coordinator stops writing it');
    opts.onDeposed?.(why);
  };

  /**
   * After a 409 the object changed since the version we wrote against: someone edited the
   * spec or annotations (our status stands, re-applied on the stored one) or a newer leader
   * wrote status (we are deposed, and write nothing more). Returns whether to write again.
   */
  const onConflict = async (): Promise<boolean> => {
    if (opts.read === undefined) return true;
    const stored = await opts.read();
    const status = (stored.status ?? {}) as Record<string, unknown>;
    const theirs = status['leaderEpoch'];
    if (typeof theirs === 'number' && opts.fence !== undefined && theirs > opts.fence.epoch) {
      depose(
        `status.leaderEpoch ${String(theirs)} is newer than ours (${String(opts.fence.epoch)})`,
      );
      return false;
    }
    if (fenced()) return false;
    version = stored.resourceVersion;
    written = new Map(Object.entries(status).map(([k, v]) => [k, JSON.stringify(v)]));
    return true;
  };

  const writeOnce = async (d: NonNullable<ReturnType<typeof diff>>): Promise<void> => {
    if (opts.read !== undefined)
      version = laterVersion(version, opts.cr().metadata.resourceVersion);
    const made = await opts.write(d.patch, version);
    writes++;
    written = d.json;
    if (typeof made === 'string') version = made;
  };

  /** What to do after a failed write: 'retry' at once, 'wait' and retry, or 'stop'. */
  const afterFailure = async (err: unknown): Promise<'retry' | 'wait' | 'stop'> => {
    const code = statusCode(err);
    if (code === 404) return 'stop'; // the object is gone
    if (refusedForEpoch(err)) {
      depose(describeRefusal(err));
      return 'stop';
    }
    if (code === 409 && opts.read !== undefined) {
      return (await onConflict().catch(() => true)) ? 'retry' : 'stop';
    }
    if (!isTransient(err)) return onRefused(err) ? 'retry' : 'stop';
    return 'wait';
  };

  /** Writes what changed; a conflict or a refusal is handled at once, the rest is awaited. */
  const writeDiffOnce = async (): Promise<void> => {
    while (!fenced()) {
      const d = diff();
      if (d === undefined) return;
      try {
        await writeOnce(d);
        return;
      } catch (err) {
        const next = await afterFailure(err);
        if (next === 'stop') return;
        if (next === 'wait') throw err;
      }
    }
  };

  // The status is the only record of progress: keep trying while the API server is away or
  // busy rather than lose a transition — but not once deposed.
  const writeDiff = (): Promise<void> =>
    retry(writeDiffOnce, {
      baseMs: 200,
      maxMs: 5_000,
      retryable: () => !fenced(),
      ...(opts.fence === undefined ? {} : { signal: opts.fence.signal }),
      onRetry: (err, attempt) => {
        opts.log.warn({ err, attempt }, 'status write failed; retrying');
      },
    }).catch(() => undefined);

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
    get refused() {
      return refused;
    },
    get lastRefusal() {
      return lastRefusal;
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
