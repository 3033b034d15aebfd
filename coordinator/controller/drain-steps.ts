// The drains of a NodeMaintenance's nodes: the first one (GPU pods, or every pod), and the one
// before a Reboot or DeleteNode (the pods left), with progress into status.nodes[].drain. The
// drain engine itself is coordinator/drain/, reached through DrainFn.
import type { NodeStatus } from '../../shared/api/index.js';
import { parseDuration } from '../../shared/duration.js';
import type { Logger } from '../../shared/log.js';
import { retry } from '../../shared/retry.js';
import { setLongTimeout } from '../../shared/timers.js';
import type { TaintSpec } from '../nodes/taints.js';
import type { StepHost } from './action-steps.js';
import { transition } from './model.js';
import type { DrainFn, DrainOutcome, DrainProgress } from './ports.js';

const DEFAULT_DRAIN_TIMEOUT_MS = 30 * 60_000;
/** options.skipWaitForDeleteTimeout's default (it applies only on nodes that are not Ready). */
const DEFAULT_SKIP_WAIT_FOR_DELETE_MS = 60_000;

export const isNoExecute = (t: TaintSpec): boolean => t.effect === 'NoExecute';

type NodeDrain = NonNullable<NodeStatus['drain']>;
type DrainScope = NonNullable<NodeDrain['scope']>;
/** A drain's outcome with its progress as status.nodes[].drain records it. */
type NodeDrainOutcome =
  { ok: true; progress: NodeDrain } | { ok: false; reason: string; progress: NodeDrain };

export class DrainSteps {
  /** The blocker last announced per node: one Event per new blocker. */
  readonly #blockedBy = new Map<string, string>();

  constructor(
    private readonly host: StepHost,
    private readonly log: Logger,
    /** A drain begun at `startedMs` ran past drainTimeout (`timeout`): SLAExpired. */
    private readonly onSlaExpired?: (name: string, startedMs: number, timeout: string) => void,
  ) {}

  /** Which pods the first drain ends: all of them when a NoExecute taint would end them next. */
  #firstDrainScope(): DrainScope {
    const opts = this.host.cr().spec.options ?? {};
    return opts.drainNonGpuPods === true || (opts.taints ?? []).some(isNoExecute)
      ? 'AllPods'
      : 'GPUPods';
  }

  /** The drain step (phase Cordoned or Draining). */
  async drain(name: string, signal: AbortSignal): Promise<void> {
    let node = this.host.node(name);
    const scope = this.#firstDrainScope();
    if (node.phase !== 'Draining') {
      node = transition(node, 'Draining', this.host.deps.now(), {
        drain: { total: 0, evicted: 0, pending: 0, scope },
      });
      await this.host.setNode(name, node, true); // a restart drains again (see cordon)
    }
    const result = await this.#drainPods(name, scope, signal);
    if (signal.aborted || result === undefined) return;
    const now = this.host.deps.now();
    if (!result.ok) {
      await this.host.failNode(name, 'DrainFailed', result.reason, {
        drain: { ...result.progress, scope },
      });
      return;
    }
    // Only now: the taint-eviction controller would end pods around their PDBs.
    const noExecute = (this.host.cr().spec.options?.taints ?? []).filter(isNoExecute);
    if (noExecute.length > 0) await this.host.deps.nodes.addTaints(name, noExecute);
    const { message: _m, ...rest } = this.host.node(name);
    // The next step's own write (the action ID, or the node's end) carries this one.
    await this.host.setNode(
      name,
      transition(rest, 'Drained', now, { drain: result.progress }),
      true,
    );
    this.host.event(
      'Normal',
      'Drained',
      `drained (${scope}): ${result.progress.evicted} pods evicted`,
      name,
    );
  }

  /**
   * Runs the drain engine for `scope`, with progress into status.nodes[].drain and an Event per
   * new blocker. Undefined when aborted.
   */
  async #drainPods(
    name: string,
    scope: DrainScope,
    signal: AbortSignal,
  ): Promise<NodeDrainOutcome | undefined> {
    const opts = this.host.cr().spec.options ?? {};
    // The drain before Reboot/DeleteNode goes on from the first drain's count.
    const first = this.host.node(name).drain;
    const base = first !== undefined && first.scope !== scope ? first.evicted : 0;
    const merge = (p: DrainProgress): NodeDrain => {
      // A drain resumed after a restart sees only the pods still there; keep the first total.
      const before = this.host.node(name).drain;
      const total = Math.max(before?.scope === scope ? before.total : 0, base + p.total);
      return { ...p, total, evicted: total - p.pending, scope };
    };
    const onProgress = (p: DrainProgress) => {
      const blocker = p.blockedBy
        ? `${p.blockedBy.kind} ${p.blockedBy.namespace ?? ''}/${p.blockedBy.name}`
        : '';
      if (blocker !== '' && this.#blockedBy.get(name) !== blocker) {
        this.host.event(
          'Warning',
          'DrainBlocked',
          `drain blocked by ${blocker}: ${p.blockedBy?.message ?? ''}`,
          name,
        );
      }
      this.#blockedBy.set(name, blocker);
      void this.host.setNode(name, { ...this.host.node(name), drain: merge(p) }, true);
    };
    const timeoutMs =
      opts.drainTimeout === undefined
        ? DEFAULT_DRAIN_TIMEOUT_MS
        : (parseDuration(opts.drainTimeout) ?? DEFAULT_DRAIN_TIMEOUT_MS);
    const sla = this.#slaTimer(name, timeoutMs, opts.drainTimeout ?? '30m');
    const result = await this.#drainWithRetry(
      name,
      {
        drainNonGpuPods: scope === 'AllPods',
        deleteEmptyDirData: opts.deleteEmptyDirData === true,
        evictUnmanagedPods: opts.evictUnmanagedPods === true,
        forceDrain: opts.forceDrain === true,
        timeoutMs,
        skipWaitForDeleteTimeoutSeconds: skipWaitSeconds(opts.skipWaitForDeleteTimeout),
        ...(this.host.deps.skipPod ? { skipPod: this.host.deps.skipPod } : {}),
      },
      onProgress,
      signal,
    ).finally(() => {
      sla.end(signal.aborted);
    });
    return signal.aborted ? undefined : { ...result, progress: merge(result.progress) };
  }

  /**
   * SLAExpired at drainTimeout after the drain began: the first drain began when the node
   * entered Draining (so a restart keeps the deadline), the one before Reboot/DeleteNode now.
   * A drain that ends (forceDrain deleting) as the deadline passes still records it.
   */
  #slaTimer(name: string, timeoutMs: number, timeout: string): { end(aborted: boolean): void } {
    const node = this.host.node(name);
    const nowMs = this.host.deps.now().getTime();
    const began = node.phase === 'Draining' ? Date.parse(node.lastTransitionTime ?? '') : NaN;
    const startedMs = Number.isNaN(began) ? nowMs : began;
    let fired = false;
    const fire = () => {
      fired = true;
      this.onSlaExpired?.(name, startedMs, timeout);
    };
    const timer = setLongTimeout(fire, startedMs + timeoutMs - nowMs);
    return {
      end: (aborted) => {
        timer.clear();
        const passed = this.host.deps.now().getTime() - startedMs >= timeoutMs;
        if (!aborted && !fired && passed) fire();
      },
    };
  }

  /**
   * The drain engine throws only when it cannot even list the node's pods (nothing evicted
   * yet): that is the API server being away, so try again instead of failing the node.
   */
  #drainWithRetry(...args: Parameters<DrainFn>): Promise<DrainOutcome> {
    return retry(() => this.host.deps.drain(...args), {
      baseMs: 1_000,
      maxMs: 30_000,
      // Whatever it was: the node must not fail for an API server that is away for a while.
      retryable: () => true,
      signal: args[3],
      onRetry: (err, attempt) => {
        this.log.warn({ err, node: args[0], attempt }, 'drain could not start; retrying');
      },
    });
  }

  /**
   * Reboot and DeleteNode end every pod on the node: before them the pods the first drain left
   * (drainNonGpuPods false) go through the Eviction API too, so none loses its PDB's
   * protection. Returns false when the node failed or the run stopped.
   */
  async drainBeforeEnd(name: string, index: number, signal: AbortSignal): Promise<boolean> {
    const node = this.host.node(name);
    if (node.drain?.scope === 'AllPods' || node.actionID !== undefined) return true;
    const result = await this.#drainPods(name, 'AllPods', signal);
    if (result === undefined) return false;
    const drain = result.progress;
    if (!result.ok) {
      await this.host.failNode(name, 'DrainFailed', result.reason, {
        drain,
        currentActionIndex: index,
      });
      return false;
    }
    await this.host.setNode(name, { ...this.host.node(name), drain }, true);
    this.host.event(
      'Normal',
      'Drained',
      `drained (AllPods): ${result.progress.evicted} pods evicted`,
      name,
    );
    return true;
  }
}

/** options.skipWaitForDeleteTimeout in seconds (default 1m); the drain reads the node's Ready. */
export function skipWaitSeconds(value: string | undefined): number {
  const ms =
    value === undefined
      ? DEFAULT_SKIP_WAIT_FOR_DELETE_MS
      : (parseDuration(value) ?? DEFAULT_SKIP_WAIT_FOR_DELETE_MS);
  return ms / 1000;
}
