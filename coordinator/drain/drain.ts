// The I/O half of the drain: list the node's pods, decide with the pure filters, evict with
// bounded concurrency (429 → backoff, the blocking PDB named in progress), and learn that pods
// are gone from ONE watch on the node's pods, never by polling each pod as kubectl does.
import { isConflict, isNotFound, statusCode } from '../../shared/kube-errors.js';
import {
  AppsV1Api,
  CoreV1Api,
  PolicyV1Api,
  Watch,
  type KubeConfig,
  type V1Pod,
  type V1PodDisruptionBudget,
} from '@kubernetes/client-node';
import pLimit, { type LimitFunction } from 'p-limit';
import type { Logger } from '../../shared/log.js';
// Every wait here may be as long as a user made it (drainTimeout, a pod's grace period, a
// Retry-After): past Node's 24.8-day timer limit, so only the chaining timers of shared/timers.
import { setLongTimeout, sleepLong as sleep, type LongTimeout } from '../../shared/timers.js';
import type { NodeStatus } from '../../shared/api/index.js';
import type { EventRecorder, EventTarget } from '../events.js';
import {
  DEFAULT_BACKOFF,
  blockedReason,
  computeProgress,
  daemonSetRefs,
  deletedLongAgo,
  deletionRequestedAt,
  isNodeReady,
  parseStatus,
  pdbNameFromStatus,
  planDrain,
  podKey,
  retryDelayMs,
  sameProgress,
  selectorMatches,
  type Blocker,
  type DrainProgress,
  type EvictionStatus,
} from './filters.js';

export type { Blocker, DrainProgress } from './filters.js';

export interface DrainOptions {
  /** Default false: evict only pods requesting nvidia.com/gpu, nvidia.com/gpu.* or nvidia.com/mig-*. */
  drainNonGpuPods: boolean;
  /** kubectl --delete-emptydir-data. */
  deleteEmptyDirData: boolean;
  /** kubectl --force: pods without a controller (and orphaned DaemonSet pods). */
  evictUnmanagedPods: boolean;
  /** drainTimeout; 0 or less waits forever, like kubectl's --timeout=0. */
  timeoutMs: number;
  /** After the timeout, DELETE what is left (bypassing PDBs) instead of failing. */
  forceDrain: boolean;
  /** Pods never evicted, e.g. the coordinator's own. */
  skipPod?: (pod: V1Pod) => boolean;
  /** Eviction (and forced delete) requests in flight at once. Default 10. */
  concurrency?: number;
  /**
   * kubectl --skip-wait-for-delete-timeout, on a node that is not Ready only: a pod whose
   * deletion has been pending longer than this many seconds counts as gone. The drain reads the
   * Node at its start and on every relist; forced deletes there use grace period 0.
   */
  skipWaitForDeleteTimeoutSeconds?: number;
  /** Retry schedule for refused evictions. Default 1 s doubling to 5 s. */
  backoff?: { baseMs: number; capMs: number };
  /** Relist the node's pods this often while waiting, in case the watch missed something. Default 30 s. */
  resyncMs?: number;
  /** After a forced delete, how long to wait for the pods to go. Default: longest grace period + 30 s. */
  forceDeleteWaitMs?: number;
}

export type DrainResult =
  { ok: true; progress: DrainProgress } | { ok: false; reason: string; progress: DrainProgress };

export type EventType = 'Normal' | 'Warning';

export interface DrainDeps {
  kc: KubeConfig;
  log: Logger;
  /** Records a Kubernetes Event (the caller picks the involved object); failures are only logged. */
  events?: (type: EventType, reason: string, message: string, pod?: V1Pod) => Promise<void>;
  /** Injectable for tests; defaults to Math.random. */
  random?: () => number;
  /** Told about each accepted eviction, each refusal by a PDB (429) and each forced delete. */
  observe?: (event: 'evicted' | 'pdb-refused' | 'force-deleted') => void;
  /** Bounds the pod lists in flight across drains (many nodes start draining at once). */
  listLimit?: <T>(fn: () => Promise<T>) => Promise<T>;
}

/**
 * The drain's `events` hook for the coordinator's Event recorder. An Event about one pod goes on
 * that pod, where its owner looks (the controller already records DrainBlocked on the
 * maintenance and the Node from the drain's progress); one about the whole drain (ForceDrain)
 * goes on the Node, the only object the drain knows. Node Events carry the node's name as UID,
 * as the kubelet's do: `kubectl describe node` searches by that UID too, so no read of the Node.
 */
export function drainEventsTo(
  recorder: EventRecorder,
  node: string,
): NonNullable<DrainDeps['events']> {
  return (type, reason, message, pod) => {
    const name = pod?.metadata?.name;
    const target: EventTarget =
      pod !== undefined && name !== undefined
        ? {
            apiVersion: 'v1',
            kind: 'Pod',
            name,
            namespace: pod.metadata?.namespace,
            uid: pod.metadata?.uid,
          }
        : { apiVersion: 'v1', kind: 'Node', name: node, uid: node };
    // The recorder queues and bounds its writes; a failed one is counted there, not here.
    recorder.record(target, type, reason, message);
    return Promise.resolve();
  };
}

export const DEFAULT_CONCURRENCY = 10;
const DEFAULT_RESYNC_MS = 30_000;
const LIST_CHUNK = 500;
const DEFAULT_GRACE_S = 30;

/**
 * Drains `nodeName` (which the caller has cordoned) with kubectl drain semantics and resolves
 * with the outcome: `ok: true` once every selected pod is gone; `ok: false` when pods would block
 * the drain (nothing evicted then), on drainTimeout without forceDrain, on an eviction error
 * that retrying cannot fix, or with reason 'cancelled' when `signal` aborts. It rejects only if
 * the node's pods cannot be listed at the start (the API server is unreachable): nothing was
 * evicted then and the caller may simply try again. Calling it again after a coordinator restart
 * is safe: it starts from the pods still on the node.
 */
export async function drainNode(
  deps: DrainDeps,
  nodeName: string,
  opts: DrainOptions,
  onProgress: (p: DrainProgress) => void,
  signal: AbortSignal,
): Promise<DrainResult> {
  return new NodeDrain(deps, nodeName, opts, onProgress, signal).run();
}

interface Tracked {
  pod: V1Pod;
  uid: string;
  key: string;
  gone: boolean;
}

type EvictOutcome =
  | { kind: 'accepted' }
  | { kind: 'gone' }
  /** Not sent: the pod went or the drain stopped while the request waited for a slot. */
  | { kind: 'skipped' }
  | { kind: 'retry'; blocker?: Blocker; retryAfterSeconds?: number; note: string }
  | { kind: 'fatal'; reason: string };

interface HttpError {
  code: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** The eviction answer's code, body and headers (Retry-After); the code as kube-errors reads it. */
function httpError(err: unknown): HttpError | undefined {
  const code = statusCode(err);
  if (code === undefined) return undefined;
  const headers = (err as { headers?: unknown }).headers;
  return {
    code,
    body: (err as { body?: unknown }).body,
    ...(typeof headers === 'object' && headers !== null
      ? { headers: headers as Record<string, string> }
      : {}),
  };
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isPod(obj: unknown): obj is V1Pod {
  return typeof obj === 'object' && obj !== null && 'metadata' in obj;
}

class NodeDrain {
  readonly #deps: DrainDeps;
  readonly #node: string;
  readonly #opts: DrainOptions;
  readonly #onProgress: (p: DrainProgress) => void;
  readonly #signal: AbortSignal;
  readonly #core: CoreV1Api;
  readonly #log: Logger;
  readonly #limit: LimitFunction;
  readonly #random: () => number;
  /** Aborted when eviction must stop: caller's signal, timeout, fatal error or completion. */
  readonly #stop = new AbortController();
  /** Aborted when drainNode returns: ends the watch, resyncs and their retries. */
  readonly #end = new AbortController();
  readonly #tracked = new Map<string, Tracked>();
  readonly #byKey = new Map<string, Tracked>();
  /** Pod UID → what keeps it from being evicted, in the order they were first blocked. */
  readonly #blockers = new Map<string, Blocker>();
  readonly #announced = new Set<string>();
  #total = 0;
  #gone = 0;
  #fatal: string | undefined;
  #lastProgress: DrainProgress | undefined;
  #watch: AbortController | undefined;
  #watchFailures = 0;
  #resyncTimer: NodeJS.Timeout | undefined;
  /** Last known readiness of the node; Ready until read otherwise (nothing skipped). */
  #nodeReady = true;
  /** One timer for the next pending deletion that becomes "deleted long ago". */
  #deadTimer: NodeJS.Timeout | undefined;
  #deadCheckAt: number | undefined;
  #allGone: () => void = () => undefined;
  readonly #allGonePromise: Promise<void>;

  constructor(
    deps: DrainDeps,
    node: string,
    opts: DrainOptions,
    onProgress: (p: DrainProgress) => void,
    signal: AbortSignal,
  ) {
    this.#deps = deps;
    this.#node = node;
    this.#opts = opts;
    this.#onProgress = onProgress;
    this.#signal = signal;
    this.#core = deps.kc.makeApiClient(CoreV1Api);
    this.#log = deps.log.child({ component: 'drain', node });
    this.#limit = pLimit(Math.max(1, opts.concurrency ?? DEFAULT_CONCURRENCY));
    this.#random = deps.random ?? Math.random;
    this.#allGonePromise = new Promise((resolve) => {
      this.#allGone = resolve;
    });
  }

  async run(): Promise<DrainResult> {
    const onAbort = (): void => {
      this.#stop.abort();
    };
    this.#signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await this.#run();
    } finally {
      this.#signal.removeEventListener('abort', onAbort);
      this.#end.abort();
      this.#stop.abort();
      this.#watch?.abort();
      clearInterval(this.#resyncTimer);
      clearTimeout(this.#deadTimer);
    }
  }

  async #run(): Promise<DrainResult> {
    if (this.#signal.aborted) return this.#fail('cancelled');
    await this.#readNodeReady();
    const { pods, resourceVersion } = await this.#listPods();
    const plan = planDrain(pods, this.#opts, {
      now: new Date(),
      nodeReady: this.#nodeReady,
      daemonSetExists: await this.#daemonSetLookup(pods),
    });
    // One line per kind of warning, listing the pods, as kubectl prints them.
    const warnings = new Map<string, string[]>();
    for (const w of plan.warnings)
      warnings.set(w.message, [...(warnings.get(w.message) ?? []), podKey(w.pod)]);
    for (const [message, pods] of warnings) this.#log.warn({ pods }, message);

    if (plan.blocked.length > 0) {
      // kubectl refuses the whole drain before evicting anything; so do we.
      const reason = blockedReason(plan.blocked);
      const first = plan.blocked[0];
      if (first !== undefined) {
        this.#blockers.set(first.pod.metadata?.uid ?? '', podBlocker(first.pod, first.message));
        this.#event('Warning', 'DrainBlocked', reason, first.pod);
      }
      this.#total = plan.evict.length + plan.wait.length + plan.blocked.length;
      this.#emit();
      return this.#fail(reason);
    }

    for (const pod of [...plan.evict, ...plan.wait]) {
      const uid = pod.metadata?.uid ?? '';
      const t: Tracked = { pod, uid, key: podKey(pod), gone: false };
      this.#tracked.set(uid, t);
      this.#byKey.set(t.key, t);
    }
    this.#total = this.#tracked.size;
    this.#log.info(
      {
        evict: plan.evict.length,
        terminating: plan.wait.length,
        skipped: plan.skipped.length,
      },
      'draining',
    );
    this.#emit();
    if (this.#total === 0) return { ok: true, progress: this.#progress() };

    // The watch starts from the list's resourceVersion before the first eviction, so no
    // deletion can slip between the two.
    await this.#startWatch(resourceVersion);
    this.#resyncTimer = setInterval(() => {
      void this.#relist('resync');
    }, this.#opts.resyncMs ?? DEFAULT_RESYNC_MS);
    this.#resyncTimer.unref();
    this.#planDeadCheck();

    const evictions = Promise.all(plan.evict.map((pod) => this.#evictLoop(pod)));
    const outcome = await this.#waitUntilDone();
    this.#stop.abort();
    await evictions;

    if (outcome === 'done') return { ok: true, progress: this.#progress() };
    if (outcome === 'cancelled') return this.#fail('cancelled');
    if (outcome === 'fatal') return this.#fail(this.#fatal ?? 'eviction failed');
    return this.#opts.forceDrain ? this.#forceDelete() : this.#fail(this.#timeoutReason());
  }

  async #waitUntilDone(): Promise<'done' | 'timeout' | 'cancelled' | 'fatal'> {
    const stopped = new Promise<'stopped'>((resolve) => {
      if (this.#stop.signal.aborted) resolve('stopped');
      this.#stop.signal.addEventListener('abort', () => {
        resolve('stopped');
      });
    });
    let timer: LongTimeout | undefined;
    // drainTimeout may be up to 720h: longer than Node's setTimeout can wait.
    const timeout =
      this.#opts.timeoutMs > 0
        ? new Promise<'timeout'>((resolve) => {
            timer = setLongTimeout(() => {
              resolve('timeout');
            }, this.#opts.timeoutMs);
          })
        : new Promise<never>(() => undefined);
    const r = await Promise.race([
      this.#allGonePromise.then(() => 'done' as const),
      stopped,
      timeout,
    ]);
    timer?.clear();
    if (r === 'stopped') return this.#signal.aborted ? 'cancelled' : 'fatal';
    return r;
  }

  // ---- eviction ----------------------------------------------------------------------------

  async #evictLoop(pod: V1Pod): Promise<void> {
    const t = this.#tracked.get(pod.metadata?.uid ?? '');
    if (t === undefined) return;
    const backoff = { ...DEFAULT_BACKOFF, ...this.#opts.backoff };
    for (let attempt = 1; !t.gone && !this.#stop.signal.aborted; attempt++) {
      const outcome = await this.#limit((): Promise<EvictOutcome> =>
        t.gone || this.#stop.signal.aborted
          ? Promise.resolve({ kind: 'skipped' as const })
          : this.#evictOnce(t),
      );
      switch (outcome.kind) {
        case 'accepted':
          this.#unblock(t);
          return;
        case 'skipped':
          return;
        case 'gone':
          this.#markGone(t);
          return;
        case 'fatal':
          this.#fatal = outcome.reason;
          this.#log.error({ pod: t.key }, outcome.reason);
          this.#stop.abort();
          return;
        case 'retry': {
          if (outcome.blocker === undefined) this.#unblock(t);
          else this.#block(t, outcome.blocker);
          const delay = retryDelayMs(
            attempt,
            { ...backoff, random: this.#random() },
            outcome.retryAfterSeconds,
          );
          this.#log.info(
            { pod: t.key, attempt, delayMs: delay },
            `eviction refused: ${outcome.note}`,
          );
          await sleep(delay, this.#stop.signal);
        }
      }
    }
  }

  async #evictOnce(t: Tracked): Promise<EvictOutcome> {
    const name = t.pod.metadata?.name ?? '';
    const namespace = t.pod.metadata?.namespace ?? '';
    try {
      await this.#core.createNamespacedPodEviction({
        name,
        namespace,
        body: {
          apiVersion: 'policy/v1',
          kind: 'Eviction',
          metadata: { name, namespace },
          // Only this incarnation of the pod: a replacement with the same name is not ours.
          deleteOptions: { preconditions: { uid: t.uid } },
        },
      });
      this.#deps.observe?.('evicted');
      return { kind: 'accepted' };
    } catch (err) {
      return this.#classify(t, err);
    }
  }

  async #classify(t: Tracked, err: unknown): Promise<EvictOutcome> {
    const http = httpError(err);
    if (http === undefined) {
      // Network trouble: the API server may be restarting. Keep trying until the timeout.
      return { kind: 'retry', note: `request failed: ${errMessage(err)}` };
    }
    const status = parseStatus(http.body);
    const message = status?.message ?? `HTTP ${http.code}`;
    const retryAfter = retryAfterSeconds(http, status);
    switch (http.code) {
      case 404:
        return { kind: 'gone' };
      case 409:
        // UID precondition failed: the pod we listed was replaced, so it is gone; the watch
        // confirms it, and a retry (which would 409 again) is stopped by that.
        return { kind: 'retry', note: message };
      case 429: {
        if (!/disruption budget/i.test(message) && pdbNameFromStatus(status) === undefined) {
          // API Priority and Fairness throttling, not a PDB.
          return { kind: 'retry', note: message, ...retryAfterField(retryAfter) };
        }
        this.#deps.observe?.('pdb-refused');
        const blocker = await this.#pdbBlocker(t.pod, status);
        return { kind: 'retry', blocker, note: message, ...retryAfterField(retryAfter) };
      }
      case 500:
        if (/more than one PodDisruptionBudget/i.test(message)) {
          // kubectl gives up here; a drain that runs for hours keeps retrying, so that fixing
          // the overlapping PDBs lets it continue. Named in progress so someone can.
          return { kind: 'retry', blocker: podBlocker(t.pod, message), note: message };
        }
        return { kind: 'retry', note: message, ...retryAfterField(retryAfter) };
      case 403:
        if (/NamespaceTerminating|is being terminated/i.test(JSON.stringify(status ?? {}))) {
          // The namespace controller deletes the pod; we only wait for it.
          return { kind: 'retry', note: message };
        }
        return { kind: 'fatal', reason: `eviction of ${t.key} refused: ${message}` };
      default:
        if (http.code >= 500)
          return { kind: 'retry', note: message, ...retryAfterField(retryAfter) };
        return {
          kind: 'fatal',
          reason: `eviction of ${t.key} failed (HTTP ${http.code}): ${message}`,
        };
    }
  }

  async #pdbBlocker(pod: V1Pod, status: EvictionStatus | undefined): Promise<Blocker> {
    const namespace = pod.metadata?.namespace ?? '';
    const message =
      status?.details?.causes?.find((c) => c.message !== undefined)?.message ?? status?.message;
    let name = pdbNameFromStatus(status);
    if (name === undefined) {
      // Older API servers say only "would violate the pod's disruption budget": find it.
      name = await this.#findPdb(pod).catch(() => undefined);
    }
    return {
      kind: 'PodDisruptionBudget',
      namespace,
      name: name ?? '(unknown)',
      ...(message === undefined ? {} : { message }),
    };
  }

  async #findPdb(pod: V1Pod): Promise<string | undefined> {
    const policy = this.#deps.kc.makeApiClient(PolicyV1Api);
    const list = await policy.listNamespacedPodDisruptionBudget({
      namespace: pod.metadata?.namespace ?? '',
    });
    const labels = pod.metadata?.labels ?? {};
    const match = list.items.find((pdb: V1PodDisruptionBudget) =>
      selectorMatches(pdb.spec?.selector, labels),
    );
    return match?.metadata?.name;
  }

  // ---- forced delete after the timeout -------------------------------------------------------

  async #forceDelete(): Promise<DrainResult> {
    const left = [...this.#tracked.values()].filter((t) => !t.gone);
    this.#log.warn({ pods: left.map((t) => t.key) }, 'drain timed out: deleting remaining pods');
    this.#event(
      'Warning',
      'ForceDrain',
      `drain timed out; deleting ${left.length} pod(s), bypassing PodDisruptionBudgets: ${summarize(left)}`,
    );
    const errors: string[] = [];
    await Promise.all(
      left.map((t) =>
        this.#limit(async () => {
          if (t.gone || this.#signal.aborted) return;
          try {
            await this.#core.deleteNamespacedPod({
              name: t.pod.metadata?.name ?? '',
              namespace: t.pod.metadata?.namespace ?? '',
              // No kubelet on a node that is not Ready to serve a grace period: remove at once.
              body: {
                preconditions: { uid: t.uid },
                ...(this.#nodeReady ? {} : { gracePeriodSeconds: 0 }),
              },
            });
            this.#deps.observe?.('force-deleted');
            this.#unblock(t);
          } catch (err) {
            // 404: gone already; 409: UID precondition failed, i.e. replaced, so ours is gone.
            if (isNotFound(err) || isConflict(err)) this.#markGone(t);
            else errors.push(`${t.key}: ${errMessage(err)}`);
          }
        }),
      ),
    );
    if (this.#signal.aborted) return this.#fail('cancelled');
    if (errors.length > 0) return this.#fail(`forced delete failed: ${errors.join('; ')}`);

    const graceS = this.#nodeReady
      ? Math.max(
          0,
          ...left.map((t) => t.pod.spec?.terminationGracePeriodSeconds ?? DEFAULT_GRACE_S),
        )
      : 0;
    const waitMs = this.#opts.forceDeleteWaitMs ?? graceS * 1000 + 30_000;
    const outcome = await Promise.race([
      this.#allGonePromise.then(() => 'done' as const),
      sleep(waitMs, this.#signal).then(() =>
        this.#signal.aborted ? ('cancelled' as const) : ('timeout' as const),
      ),
    ]);
    if (outcome === 'done') return { ok: true, progress: this.#progress() };
    if (outcome === 'cancelled') return this.#fail('cancelled');
    return this.#fail(
      `pods deleted after drainTimeout are still on the node after ${waitMs} ms: ${summarize(
        [...this.#tracked.values()].filter((t) => !t.gone),
      )}`,
    );
  }

  // ---- watching for pods to go ---------------------------------------------------------------

  async #listPods(): Promise<{ pods: V1Pod[]; resourceVersion: string }> {
    const pods: V1Pod[] = [];
    let cont: string | undefined;
    let resourceVersion = '';
    do {
      const request = () =>
        this.#core.listPodForAllNamespaces({
          fieldSelector: `spec.nodeName=${this.#node}`,
          limit: LIST_CHUNK,
          ...(cont === undefined ? {} : { _continue: cont }),
        });
      const page = await (this.#deps.listLimit ? this.#deps.listLimit(request) : request());
      pods.push(...page.items);
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      cont = page.metadata?._continue || undefined;
    } while (cont !== undefined);
    return { pods, resourceVersion };
  }

  async #daemonSetLookup(pods: readonly V1Pod[]): Promise<(ns: string, name: string) => boolean> {
    const refs = daemonSetRefs(pods);
    if (refs.length === 0) return () => true;
    const apps = this.#deps.kc.makeApiClient(AppsV1Api);
    const missing = new Set<string>();
    await Promise.all(
      refs.map(async (r) => {
        try {
          await apps.readNamespacedDaemonSet(r);
        } catch (err) {
          // Only a definite 404 counts as missing; on any other error assume it exists, which
          // leaves the pod in place rather than evicting something that will come back.
          if (isNotFound(err)) missing.add(`${r.namespace}/${r.name}`);
        }
      }),
    );
    return (ns, name) => !missing.has(`${ns}/${name}`);
  }

  async #startWatch(resourceVersion: string): Promise<void> {
    if (this.#end.signal.aborted) return;
    try {
      const controller = await new Watch(this.#deps.kc).watch(
        '/api/v1/pods',
        {
          fieldSelector: `spec.nodeName=${this.#node}`,
          resourceVersion,
          allowWatchBookmarks: true,
        },
        (phase: string, obj: unknown) => {
          // ERROR is typically 410 Gone (resourceVersion too old); the server then closes the
          // watch and the restart below relists, which catches up.
          if (phase !== 'ERROR' && isPod(obj)) this.#observe(phase, obj);
        },
        (err: unknown) => {
          this.#onWatchEnd(err);
        },
      );
      // drainNode may have returned while the watch was connecting.
      if (this.#ended()) controller.abort();
      else this.#watch = controller;
    } catch (err) {
      this.#onWatchEnd(err);
    }
  }

  #ended(): boolean {
    return this.#end.signal.aborted;
  }

  #onWatchEnd(err: unknown): void {
    if (this.#end.signal.aborted) return;
    // A clean close (the server's watch timeout) restarts at once; errors back off.
    this.#watchFailures = err === null || err === undefined ? 0 : this.#watchFailures + 1;
    this.#log.debug(
      { err: this.#watchFailures === 0 ? undefined : errMessage(err) },
      'pod watch ended',
    );
    const delay =
      this.#watchFailures === 0
        ? 0
        : retryDelayMs(this.#watchFailures, { ...DEFAULT_BACKOFF, random: this.#random() });
    void sleep(delay, this.#end.signal).then(async () => {
      const rv = await this.#relist('watch ended', true);
      if (rv !== undefined) await this.#startWatch(rv);
    });
  }

  #observe(phase: string, pod: V1Pod): void {
    const uid = pod.metadata?.uid ?? '';
    const mine = this.#tracked.get(uid);
    if (mine !== undefined) {
      if (phase === 'DELETED') {
        this.#markGone(mine);
        return;
      }
      // Its deletionTimestamp (eviction accepted) starts the skip-wait-for-delete clock.
      mine.pod = pod;
      if (this.#isDeadDeletion(pod)) {
        this.#log.warn(
          { pod: mine.key, skipWaitForDeleteTimeoutSeconds: this.#skipWaitS() },
          'node not Ready: a pod whose deletion is pending that long counts as gone',
        );
        this.#markGone(mine);
      } else this.#planDeadCheck();
      return;
    }
    // A pod of the same name with a new UID: the one we evicted is gone (StatefulSet-style).
    const sameName = this.#byKey.get(podKey(pod));
    if (sameName !== undefined && phase !== 'DELETED') this.#markGone(sameName);
  }

  /**
   * Lists the node's pods again: whatever we track and no longer see is gone. Returns the list's
   * resourceVersion; with `persist` it retries until it succeeds or the drain ends.
   */
  async #relist(why: string, persist = false): Promise<string | undefined> {
    for (let failures = 1; !this.#end.signal.aborted; failures++) {
      try {
        await this.#readNodeReady();
        const { pods, resourceVersion } = await this.#listPods();
        const present = new Set(pods.map((p) => p.metadata?.uid ?? ''));
        for (const t of this.#tracked.values()) if (!present.has(t.uid)) this.#markGone(t);
        for (const p of pods) this.#observe('ADDED', p);
        return resourceVersion;
      } catch (err) {
        this.#log.warn({ err: errMessage(err), why }, 'relisting pods failed');
        if (!persist) return undefined;
        await sleep(
          retryDelayMs(failures, { ...DEFAULT_BACKOFF, random: this.#random() }),
          this.#end.signal,
        );
      }
    }
    return undefined;
  }

  // ---- dead nodes: deletions nothing will confirm -------------------------------------------

  #skipWaitS(): number {
    return this.#opts.skipWaitForDeleteTimeoutSeconds ?? 0;
  }

  /**
   * Reads the node's readiness when it matters (skip-wait-for-delete, forced deletes). A Node
   * that is gone is not Ready; on any other error the last known value stays (Ready at first:
   * then nothing is skipped, the safe side).
   */
  async #readNodeReady(): Promise<void> {
    if (this.#skipWaitS() <= 0 && !this.#opts.forceDrain) return;
    try {
      const node = await this.#core.readNode({ name: this.#node });
      this.#nodeReady = isNodeReady(node);
    } catch (err) {
      if (isNotFound(err)) this.#nodeReady = false;
      else this.#log.warn({ err: errMessage(err) }, 'reading the node failed');
    }
  }

  #isDeadDeletion(pod: V1Pod): boolean {
    return deletedLongAgo(pod, this.#skipWaitS(), new Date(), this.#nodeReady);
  }

  /**
   * On a node that is not Ready, relists when the next pending deletion passes the limit, so an
   * evicted pod that never terminates counts as gone then rather than at the next resync.
   */
  #planDeadCheck(): void {
    const limitMs = this.#skipWaitS() * 1000;
    if (limitMs <= 0 || this.#nodeReady || this.#ended()) return;
    let due: number | undefined;
    for (const t of this.#tracked.values()) {
      const at = t.gone ? undefined : deletionRequestedAt(t.pod);
      if (at !== undefined) due = Math.min(due ?? Infinity, at.getTime() + limitMs);
    }
    if (due === undefined || (this.#deadCheckAt !== undefined && this.#deadCheckAt <= due)) return;
    clearTimeout(this.#deadTimer);
    this.#deadCheckAt = due;
    // A little past the limit, so that the comparison (strictly longer) holds when it runs.
    this.#deadTimer = setTimeout(
      () => {
        this.#deadCheckAt = undefined;
        void this.#relist('deletion pending past skipWaitForDeleteTimeout');
      },
      Math.max(0, due - Date.now()) + 100,
    );
    this.#deadTimer.unref();
  }

  // ---- progress ------------------------------------------------------------------------------

  #markGone(t: Tracked): void {
    if (t.gone) return;
    t.gone = true;
    this.#gone++;
    this.#blockers.delete(t.uid);
    this.#emit();
    if (this.#gone >= this.#tracked.size) this.#allGone();
  }

  #block(t: Tracked, blocker: Blocker): void {
    const id = `${blocker.kind}/${blocker.namespace ?? ''}/${blocker.name}`;
    this.#blockers.set(t.uid, blocker);
    this.#emit();
    // One Event per blocker per drain, not one per pod and retry.
    if (!this.#announced.has(id)) {
      this.#announced.add(id);
      const what =
        blocker.kind === 'Pod'
          ? `pod ${t.key}`
          : `${blocker.kind} ${blocker.namespace ?? ''}/${blocker.name}`;
      this.#event(
        'Warning',
        'DrainBlocked',
        `eviction of ${t.key} on node ${this.#node} blocked by ${what}${blocker.message === undefined ? '' : `: ${blocker.message}`}`,
        t.pod,
      );
    }
  }

  #unblock(t: Tracked): void {
    if (this.#blockers.delete(t.uid)) this.#emit();
  }

  #progress(): DrainProgress {
    // Written as status.nodes[].drain: `satisfies` fails the build if the two drift apart.
    return computeProgress(this.#total, this.#gone, this.#blockers) satisfies NonNullable<
      NodeStatus['drain']
    >;
  }

  #emit(): void {
    const p = this.#progress();
    if (sameProgress(this.#lastProgress, p)) return;
    this.#lastProgress = p;
    try {
      this.#onProgress(p);
    } catch (err) {
      this.#log.error({ err: errMessage(err) }, 'onProgress threw');
    }
  }

  #event(type: EventType, reason: string, message: string, pod?: V1Pod): void {
    const send = this.#deps.events;
    if (send === undefined) return;
    send(type, reason, message, pod).catch((err: unknown) => {
      this.#log.warn({ err: errMessage(err), reason }, 'recording Event failed');
    });
  }

  #fail(reason: string): DrainResult {
    const progress = this.#progress();
    const stuck = [...this.#tracked.values()].find((t) => !t.gone);
    // A drain that ends with pods left names one of them when no PDB is to blame.
    const withBlocker =
      progress.blockedBy === undefined && stuck !== undefined && reason !== 'cancelled'
        ? { ...progress, blockedBy: podBlocker(stuck.pod, 'still on the node') }
        : progress;
    this.#log.warn({ reason, progress: withBlocker }, 'drain failed');
    return { ok: false, reason, progress: withBlocker };
  }

  #timeoutReason(): string {
    const left = [...this.#tracked.values()].filter((t) => !t.gone);
    const b = this.#progress().blockedBy;
    const by =
      b === undefined
        ? ''
        : `; blocked by ${b.kind} ${b.namespace === undefined ? '' : `${b.namespace}/`}${b.name}`;
    return `drain timed out after ${this.#opts.timeoutMs} ms with ${left.length} pod(s) left: ${summarize(left)}${by}`;
  }
}

function podBlocker(pod: V1Pod, message: string): Blocker {
  return {
    kind: 'Pod',
    ...(pod.metadata?.namespace === undefined ? {} : { namespace: pod.metadata.namespace }),
    name: pod.metadata?.name ?? '',
    message,
  };
}

function summarize(ts: readonly Tracked[], max = 5): string {
  const names = ts.slice(0, max).map((t) => t.key);
  return ts.length > max ? `${names.join(', ')} and ${ts.length - max} more` : names.join(', ');
}

function retryAfterSeconds(
  http: HttpError,
  status: EvictionStatus | undefined,
): number | undefined {
  const header = Object.entries(http.headers ?? {}).find(
    ([k]) => k.toLowerCase() === 'retry-after',
  )?.[1];
  const fromHeader = header === undefined ? NaN : Number(header);
  if (Number.isFinite(fromHeader) && fromHeader > 0) return fromHeader;
  const fromBody = status?.details?.retryAfterSeconds;
  return fromBody !== undefined && fromBody > 0 ? fromBody : undefined;
}

function retryAfterField(s: number | undefined): { retryAfterSeconds?: number } {
  return s === undefined ? {} : { retryAfterSeconds: s };
}
