// The pure half of the drain: which pods on a node are evicted, which are left alone and which
// make the whole drain refuse to start, ported from kubectl's drain filters
// (k8s.io/kubectl/pkg/drain/filters.go); plus the retry schedule and progress arithmetic.
// Nothing here talks to the API server, so all of it is table-tested without a cluster.
import type { V1Container, V1Node, V1OwnerReference, V1Pod } from '@kubernetes/client-node';

/** What the drain does with one pod. */
export type PodDecision =
  /** Evict it through the Eviction API and wait until it is gone. */
  | { action: 'evict'; warning?: string }
  /** Already terminating: not evicted again, but the drain waits until it is gone. */
  | { action: 'wait' }
  /** Left on the node (DaemonSet, mirror, not a GPU pod, excluded by the caller). */
  | { action: 'skip'; reason: SkipReason; warning?: string }
  /** Refuses the whole drain before anything is evicted (kubectl's error status). */
  | { action: 'block'; reason: BlockReason; message: string };

export type SkipReason = 'DaemonSet' | 'Mirror' | 'NotGpu' | 'Excluded' | 'DeletedLongAgo';
export type BlockReason = 'LocalStorage' | 'Unmanaged' | 'DaemonSetMissing';

export interface FilterOptions {
  drainNonGpuPods: boolean;
  deleteEmptyDirData: boolean;
  evictUnmanagedPods: boolean;
  skipPod?: ((pod: V1Pod) => boolean) | undefined;
  /**
   * kubectl --skip-wait-for-delete-timeout: pods whose deletion has been pending longer than
   * this are ignored (only on a node that is not Ready, see FilterContext.nodeReady).
   */
  skipWaitForDeleteTimeoutSeconds?: number | undefined;
}

export interface FilterContext {
  now: Date;
  /**
   * Whether the node's kubelet is there to finish deletions. On a Ready node a pod being
   * deleted always goes, so it is waited for; undefined applies the skip like kubectl does.
   */
  nodeReady?: boolean | undefined;
  /** Whether the DaemonSet `namespace/name` exists (looked up by the I/O layer, like kubectl). */
  daemonSetExists: (namespace: string, name: string) => boolean;
}

export const MIRROR_ANNOTATION = 'kubernetes.io/config.mirror';

// nvidia.com/gpu plus its time-slicing/MPS renames (nvidia.com/gpu.shared) and MIG profiles.
const GPU_RESOURCE = /^nvidia\.com\/(gpu(\..+)?|mig-.+)$/;

export function isGpuResourceName(name: string): boolean {
  return GPU_RESOURCE.test(name);
}

function containerRequestsGpu(c: V1Container): boolean {
  const names = [
    ...Object.keys(c.resources?.requests ?? {}),
    ...Object.keys(c.resources?.limits ?? {}),
  ];
  return names.some(isGpuResourceName);
}

/** True when any container, init containers included, requests or limits a GPU resource. */
export function requestsGpu(pod: V1Pod): boolean {
  const containers = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  return containers.some(containerRequestsGpu);
}

export function controllerOf(pod: V1Pod): V1OwnerReference | undefined {
  return pod.metadata?.ownerReferences?.find((r) => r.controller === true);
}

/** Succeeded or Failed: such pods hold nothing and are always deletable, as in kubectl. */
export function isFinished(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  return phase === 'Succeeded' || phase === 'Failed';
}

export function podKey(pod: V1Pod): string {
  return `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`;
}

type Filter = (pod: V1Pod, opts: FilterOptions, ctx: FilterContext) => PodDecision | undefined;

// The selection comes first: like kubectl's --pod-selector it decides which pods the drain is
// about at all, so a non-GPU pod with an emptyDir cannot block a GPU-only drain.
const excludedFilter: Filter = (pod, opts) =>
  opts.skipPod?.(pod) === true ? { action: 'skip', reason: 'Excluded' } : undefined;

const gpuFilter: Filter = (pod, opts) =>
  opts.drainNonGpuPods || requestsGpu(pod) ? undefined : { action: 'skip', reason: 'NotGpu' };

/** Whether the node's Ready condition is True; a missing Node has no kubelet either. */
export function isNodeReady(node: V1Node | undefined): boolean {
  return node?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}

/**
 * When the pod's deletion was asked for: deletionTimestamp less the grace period it was given.
 * Deviation from kubectl, which counts from deletionTimestamp (request + grace): on a node with
 * no kubelet the grace period is never served, so only the time since the request means anything.
 */
export function deletionRequestedAt(pod: V1Pod): Date | undefined {
  const at = pod.metadata?.deletionTimestamp;
  if (at === undefined) return undefined;
  const graceS = pod.metadata?.deletionGracePeriodSeconds ?? 0;
  return new Date(new Date(at).getTime() - Math.max(0, graceS) * 1000);
}

/**
 * A pod that counts as gone: its deletion has been pending longer than the limit, on a node
 * that is not Ready (nothing there will ever confirm it). Never on a Ready node.
 */
export function deletedLongAgo(
  pod: V1Pod,
  limitSeconds: number | undefined,
  now: Date,
  nodeReady?: boolean,
): boolean {
  const requested = deletionRequestedAt(pod);
  if (requested === undefined || (limitSeconds ?? 0) <= 0 || nodeReady === true) return false;
  return now.getTime() - requested.getTime() > (limitSeconds ?? 0) * 1000;
}

const deletedLongAgoFilter: Filter = (pod, opts, ctx) =>
  deletedLongAgo(pod, opts.skipWaitForDeleteTimeoutSeconds, ctx.now, ctx.nodeReady)
    ? { action: 'skip', reason: 'DeletedLongAgo' }
    : undefined;

// Deviation from kubectl, on purpose: a pod someone already deleted is going away whatever we
// decide, so it is waited for, never evicted again and never allowed to block the drain.
const terminatingFilter: Filter = (pod) =>
  pod.metadata?.deletionTimestamp === undefined ? undefined : { action: 'wait' };

const daemonSetFilter: Filter = (pod, opts, ctx) => {
  const ref = controllerOf(pod);
  if (ref?.kind !== 'DaemonSet' || isFinished(pod)) return undefined;
  const ns = pod.metadata?.namespace ?? '';
  if (!ctx.daemonSetExists(ns, ref.name)) {
    // An orphan that no DaemonSet will recreate: kubectl evicts it only with --force.
    return opts.evictUnmanagedPods
      ? { action: 'evict', warning: `DaemonSet ${ns}/${ref.name} not found` }
      : {
          action: 'block',
          reason: 'DaemonSetMissing',
          message: `its DaemonSet ${ref.name} is gone (set evictUnmanagedPods to evict it)`,
        };
  }
  return { action: 'skip', reason: 'DaemonSet', warning: 'DaemonSet-managed pod left in place' };
};

const mirrorFilter: Filter = (pod) =>
  pod.metadata?.annotations?.[MIRROR_ANNOTATION] === undefined
    ? undefined
    : { action: 'skip', reason: 'Mirror' };

// Memory-backed media: tmpfs (`Memory`, the /dev/shm of vLLM, TGI and Triton pods) and
// hugetlbfs (`HugePages`, `HugePages-2Mi`…). Their contents live in RAM and end with the pod
// whatever the drain does, so evicting loses nothing a reschedule would have kept.
const MEMORY_MEDIUM = /^(Memory|HugePages(-.+)?)$/;

/** Names of the pod's emptyDir volumes that are backed by the node's disk (the default medium). */
export function diskEmptyDirs(pod: V1Pod): string[] {
  return (pod.spec?.volumes ?? [])
    .filter((v) => v.emptyDir !== undefined && !MEMORY_MEDIUM.test(v.emptyDir.medium ?? ''))
    .map((v) => v.name);
}

/** At most three volume names, so a pod with many volumes cannot flood status. */
function volumeList(names: readonly string[]): string {
  const shown = names.slice(0, 3).join(', ');
  const more = names.length > 3 ? ` and ${names.length - 3} more` : '';
  return `${names.length === 1 ? 'volume' : 'volumes'} ${shown}${more}`;
}

// Deviation from kubectl, on purpose: kubectl blocks on every emptyDir; only disk-backed ones
// block here (see MEMORY_MEDIUM). A pod with both kinds still blocks.
const localStorageFilter: Filter = (pod, opts) => {
  const onDisk = diskEmptyDirs(pod);
  if (onDisk.length === 0 || isFinished(pod)) return undefined;
  return opts.deleteEmptyDirData
    ? { action: 'evict', warning: 'emptyDir data will be lost' }
    : {
        action: 'block',
        reason: 'LocalStorage',
        message:
          `uses emptyDir local storage on disk (${volumeList(onDisk)}; ` +
          'set deleteEmptyDirData to evict it)',
      };
};

const unmanagedFilter: Filter = (pod, opts) => {
  if (controllerOf(pod) !== undefined || isFinished(pod)) return undefined;
  return opts.evictUnmanagedPods
    ? { action: 'evict', warning: 'no controller will recreate this pod' }
    : {
        action: 'block',
        reason: 'Unmanaged',
        message: 'is not managed by a controller (set evictUnmanagedPods to evict it)',
      };
};

// kubectl's order after the selection; a filter that returns a decision other than a
// warning-carrying evict ends the chain, exactly like kubectl's `Delete=false` short-circuit.
const FILTERS: readonly Filter[] = [
  excludedFilter,
  gpuFilter,
  deletedLongAgoFilter,
  daemonSetFilter,
  mirrorFilter,
  terminatingFilter,
  localStorageFilter,
  unmanagedFilter,
];

export function decide(pod: V1Pod, opts: FilterOptions, ctx: FilterContext): PodDecision {
  const warnings: string[] = [];
  for (const filter of FILTERS) {
    const d = filter(pod, opts, ctx);
    if (d === undefined) continue;
    if (d.action === 'evict') {
      if (d.warning !== undefined) warnings.push(d.warning);
      continue;
    }
    return d;
  }
  return warnings.length > 0
    ? { action: 'evict', warning: warnings.join('; ') }
    : { action: 'evict' };
}

export interface DrainPlan {
  /** Pods to evict now. */
  evict: V1Pod[];
  /** Pods already terminating: only waited for. */
  wait: V1Pod[];
  skipped: { pod: V1Pod; reason: SkipReason }[];
  blocked: { pod: V1Pod; reason: BlockReason; message: string }[];
  warnings: { pod: V1Pod; message: string }[];
}

export function planDrain(
  pods: readonly V1Pod[],
  opts: FilterOptions,
  ctx: FilterContext,
): DrainPlan {
  const plan: DrainPlan = { evict: [], wait: [], skipped: [], blocked: [], warnings: [] };
  for (const pod of pods) {
    const d = decide(pod, opts, ctx);
    switch (d.action) {
      case 'evict':
        plan.evict.push(pod);
        if (d.warning !== undefined) plan.warnings.push({ pod, message: d.warning });
        break;
      case 'wait':
        plan.wait.push(pod);
        break;
      case 'skip':
        plan.skipped.push({ pod, reason: d.reason });
        if (d.warning !== undefined) plan.warnings.push({ pod, message: d.warning });
        break;
      case 'block':
        plan.blocked.push({ pod, reason: d.reason, message: d.message });
        break;
    }
  }
  return plan;
}

/** kubectl's error text, one line per blocking pod, grouped by cause. */
export function blockedReason(blocked: DrainPlan['blocked']): string {
  const lines = blocked.map((b) => `${podKey(b.pod)} ${b.message}`);
  return `cannot drain: ${blocked.length} pod(s) would block it: ${lines.join('; ')}`;
}

/** DaemonSets (namespace/name) that controller-owned pods on the node point at. */
export function daemonSetRefs(pods: readonly V1Pod[]): { namespace: string; name: string }[] {
  const seen = new Map<string, { namespace: string; name: string }>();
  for (const pod of pods) {
    const ref = controllerOf(pod);
    if (ref?.kind !== 'DaemonSet') continue;
    const namespace = pod.metadata?.namespace ?? '';
    seen.set(`${namespace}/${ref.name}`, { namespace, name: ref.name });
  }
  return [...seen.values()];
}

export interface BackoffOptions {
  baseMs: number;
  capMs: number;
  /** In [0, 1): a draw from the random source, so tests can pin it. */
  random: number;
}

export const DEFAULT_BACKOFF = { baseMs: 1000, capMs: 5000 } as const;

/**
 * Delay before retry number `attempt` (1-based) of a refused eviction. kubectl sleeps a flat 5 s;
 * we start at 1 s so a PDB that frees up soon costs little, double up to kubectl's 5 s, and add
 * up to 20 % jitter so many pods behind one PDB don't retry in lockstep. A server's Retry-After
 * wins when it asks for longer.
 */
export function retryDelayMs(
  attempt: number,
  o: BackoffOptions,
  retryAfterSeconds?: number,
): number {
  const exp = Math.min(o.capMs, o.baseMs * 2 ** Math.max(0, attempt - 1));
  const jittered = Math.round(exp * (1 + 0.2 * o.random));
  const server =
    retryAfterSeconds !== undefined && retryAfterSeconds > 0 ? retryAfterSeconds * 1000 : 0;
  return Math.max(jittered, server);
}

export interface Blocker {
  kind: 'PodDisruptionBudget' | 'Pod';
  namespace?: string;
  name: string;
  message?: string;
}

export interface DrainProgress {
  total: number;
  evicted: number;
  pending: number;
  blockedBy?: Blocker;
}

/**
 * Progress for status: `total` pods the drain is about, `evicted` of them gone, the rest
 * pending; `blockedBy` is the oldest blocker still in force (the map keeps insertion order).
 */
export function computeProgress(
  total: number,
  gone: number,
  blockers: ReadonlyMap<string, Blocker>,
): DrainProgress {
  const first = blockers.values().next();
  const base = { total, evicted: gone, pending: Math.max(0, total - gone) };
  return first.done === true ? base : { ...base, blockedBy: first.value };
}

export function sameProgress(a: DrainProgress | undefined, b: DrainProgress): boolean {
  if (a === undefined) return false;
  return (
    a.total === b.total &&
    a.evicted === b.evicted &&
    a.pending === b.pending &&
    a.blockedBy?.kind === b.blockedBy?.kind &&
    a.blockedBy?.namespace === b.blockedBy?.namespace &&
    a.blockedBy?.name === b.blockedBy?.name &&
    a.blockedBy?.message === b.blockedBy?.message
  );
}

const PDB_IN_MESSAGE = /[Tt]he disruption budget (\S+)/;

/**
 * The PDB named in a 429 Status from the eviction subresource. The API server puts it in a cause
 * of type DisruptionBudget: "The disruption budget <name> needs 1 healthy pods and has 1 currently".
 */
export function pdbNameFromStatus(status: EvictionStatus | undefined): string | undefined {
  for (const cause of status?.details?.causes ?? []) {
    const m = PDB_IN_MESSAGE.exec(cause.message ?? '');
    if (m?.[1] !== undefined) return m[1];
  }
  const m = PDB_IN_MESSAGE.exec(status?.message ?? '');
  return m?.[1];
}

/** The parts of a metav1.Status the drain reads. */
export interface EvictionStatus {
  message?: string;
  reason?: string;
  details?: {
    retryAfterSeconds?: number;
    causes?: { type?: string; reason?: string; message?: string }[];
  };
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function rec(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined;
}

/** metav1.Status from an error body (client-node hands it over as JSON text), fields checked. */
export function parseStatus(body: unknown): EvictionStatus | undefined {
  let value: unknown = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body) as unknown;
    } catch {
      return body === '' ? undefined : { message: body };
    }
  }
  const o = rec(value);
  if (o === undefined) return undefined;
  const status: EvictionStatus = {};
  const message = str(o['message']);
  const reason = str(o['reason']);
  if (message !== undefined) status.message = message;
  if (reason !== undefined) status.reason = reason;
  const d = rec(o['details']);
  if (d !== undefined) {
    const details: NonNullable<EvictionStatus['details']> = {};
    const ra = d['retryAfterSeconds'];
    if (typeof ra === 'number') details.retryAfterSeconds = ra;
    const causes = Array.isArray(d['causes']) ? (d['causes'] as unknown[]) : [];
    details.causes = causes.flatMap((c) => {
      const cr = rec(c);
      if (cr === undefined) return [];
      const out: { type?: string; reason?: string; message?: string } = {};
      const t = str(cr['type']);
      const r = str(cr['reason']);
      const m = str(cr['message']);
      if (t !== undefined) out.type = t;
      if (r !== undefined) out.reason = r;
      if (m !== undefined) out.message = m;
      return [out];
    });
    status.details = details;
  }
  return status;
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/**
 * Does a PodDisruptionBudget's selector select these labels? policy/v1 semantics: an empty
 * selector selects every pod of the namespace; a missing one selects none.
 */
export function selectorMatches(
  selector: LabelSelector | undefined,
  labels: Record<string, string>,
): boolean {
  if (selector === undefined) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    const values = e.values ?? [];
    const ok =
      e.operator === 'In'
        ? value !== undefined && values.includes(value)
        : e.operator === 'NotIn'
          ? value === undefined || !values.includes(value)
          : e.operator === 'Exists'
            ? has
            : e.operator === 'DoesNotExist'
              ? !has
              : false;
    if (!ok) return false;
  }
  return true;
}
