// One NodeMaintenance being carried out: selection, then one task per node walking the state
// machine of model.ts. What a restart could not redo is committed to status before the next side
// effect (docs/state-machine.md, "Status first"), so a coordinator killed at any instant resumes
// from status and never repeats a finished step.
import { EventEmitter, once } from 'node:events';
import type { V1Node, V1Taint } from '@kubernetes/client-node';
import type {
  NodeMaintenance,
  NodeMaintenanceStatus,
  NodePhase,
  NodeStatus,
} from '../../shared/api/index.js';
import type { Logger } from '../../shared/log.js';
import { MAINTENANCE_TAINT, maintenanceLabelValue } from '../../shared/maintenance-keys.js';
import {
  DEFAULT_CANCEL_CONFIRM_MS,
  NODE_LOCAL_ACTIONS,
  type ActionDispatcher,
} from '../actions/dispatcher.js';
import type { Notifier } from '../actions/notify.js';
import type { EventRecorder, EventTarget } from '../events.js';
import {
  claimOf,
  foreignClaim,
  initialStateOf,
  isUnavailable,
  type Claim,
} from '../nodes/claims.js';
import { ClaimPhaseWriter } from '../nodes/claim-writer.js';
import { ClaimedElsewhereError, type NodeOps } from '../nodes/node-ops.js';
import { statusCode } from '../../shared/kube-errors.js';
import { retry } from '../../shared/retry.js';
import { sameTaint, type TaintSpec } from '../nodes/taints.js';
import {
  admission,
  failedSummary,
  holdReason,
  isHalted,
  isHeld,
  isTerminal,
  maxFailedNodes,
  maxUnavailable,
  nextStep,
  notStarted,
  setCondition,
  transition,
  unavailableNodes,
  type Step,
} from './model.js';
import { ActionSteps, type StepHost } from './action-steps.js';
import { DrainSteps, isNoExecute } from './drain-steps.js';
import {
  findStuck,
  isoSeconds,
  slaCondition,
  stuckCondition,
  withPhaseTime,
  type StuckNode,
} from './node-states.js';
import { RequestSteps } from './request-steps.js';
import type { DrainFn } from './ports.js';
import type { StatusStore } from './status-store.js';

/**
 * How long a deletion waits for in-flight work and status writes before it goes on: longer
 * than a cancelled step may take to be confirmed stopped, so that its answer is in.
 */
const CANCEL_WAIT_MS = DEFAULT_CANCEL_CONFIRM_MS + 15_000;
/** About 10 minutes of backoff: beyond that the API server is not coming back soon. */
const MAX_TRANSIENT_FAILURES = 25;
const CONTROL_PLANE_LABELS = [
  'node-role.kubernetes.io/control-plane',
  'node-role.kubernetes.io/master',
];

export interface Fleet {
  /** The other maintenance that holds `node` (in memory), if any. */
  heldElsewhere(self: MaintenanceRun, node: string): string | undefined;
  /** Distinct unavailable nodes over every maintenance, `except` not counted. */
  unavailableCount(except: string): number;
  /** Resolves when capacity may have freed up (a node finished somewhere), or after `ms`. */
  changed(ms: number, signal: AbortSignal): Promise<void>;
  notifyChanged(): void;
}

export interface RunDeps {
  readonly log: Logger;
  readonly nodes: NodeOps;
  readonly listNodes: (selector: string) => Promise<V1Node[]>;
  /** The Node as the coordinator's cache has it (readiness, cordon), if it has it. */
  readonly nodeFacts: (name: string) => V1Node | undefined;
  /** Whether a claim's maintenance is gone (deleted, or replaced by a new object). */
  readonly claimIsStale: (claim: Claim) => Promise<boolean>;
  /** Removes decided entries from the restore/retry annotations (resourceVersion-guarded). */
  readonly clearRequests: (done: { restore: string[]; retry: string[] }) => Promise<void>;
  /** Resolves once the coordinator's view of all maintenances and claims is rebuilt. */
  readonly ready: () => Promise<void>;
  readonly drain: DrainFn;
  readonly dispatcher: ActionDispatcher;
  readonly notifier: Notifier;
  readonly events: EventRecorder;
  readonly fleet: Fleet;
  readonly store: StatusStore;
  readonly now: () => Date;
  readonly globalLimit: number;
  readonly maxSelectedNodes: number;
  readonly agentRetryMs: number;
  /** How long a deletion waits for in-flight work and status writes (default 45 s). */
  readonly cancelWaitMs?: number;
  /**
   * How long a step cancelled by a deletion may take to be known stopped (the agent's answer,
   * the pod gone); past it the node stays cordoned and Failed (default 30 s).
   */
  readonly cancelConfirmMs?: number;
  readonly skipPod?: DrainFnSkip;
  /** Told about every new version of the object (the status store reads spec from it). */
  readonly onUpdate?: (cr: NodeMaintenance) => void;
  /** A node that has not moved this long is Stuck (node-states.ts findStuck); 0 = never. */
  readonly stuckAfterMs?: number;
  /** Told how long a node spent in `phase` as it leaves it (the per-phase histogram). */
  readonly observePhase?: (phase: NodePhase, seconds: number) => void;
}
type DrainFnSkip = Parameters<DrainFn>[1]['skipPod'];

export class MaintenanceRun {
  readonly key: string;
  private readonly abort = new AbortController();
  private readonly reserved = new Set<string>();
  private readonly log: Logger;
  private done: Promise<void> | undefined;
  /** The node as admit read it, for cordon's write (one read fewer per node). */
  private readonly admitted = new Map<string, V1Node>();
  /** Emits 'update' for every new version of the object (an InteractiveShell's release). */
  private readonly versions = new EventEmitter().setMaxListeners(0);
  /** Node tasks running now; a retry adds one after the others may have ended. */
  private readonly tasks = new Map<string, Promise<void>>();
  /** Retried on request: past the failure budget's hold (not past a pause). */
  private readonly retrying = new Set<string>();
  /** Steps cancelled by a deletion, by action ID: whether each is known stopped. */
  private readonly cancelled = new Map<string, { confirmed: boolean; message: string }>();
  /** Claims found stale at admission: cordon may take them over. */
  private readonly staleClaims = new Set<string>();
  /** Restore/retry requests, one batch at a time. */
  private requests: Promise<void> = Promise.resolve();
  private haltAnnounced = false;
  /** The action steps, one handler per type (action-steps.ts). */
  private readonly steps: ActionSteps;
  private readonly drains: DrainSteps;
  private readonly requestSteps: RequestSteps;
  /** The node's current phase in its claim annotation, coalesced and not awaited. */
  private readonly claims: ClaimPhaseWriter;
  /** Nodes found Stuck at the last check, and the timer of the checks. */
  private stuck: readonly StuckNode[] = [];
  private stuckTimer: NodeJS.Timeout | undefined;
  /** When a node's wait between steps (pause, failure budget) ended: not time it was stuck. */
  private readonly waitEnded = new Map<string, number>();

  constructor(
    private cr: NodeMaintenance,
    private readonly deps: RunDeps,
  ) {
    this.key = `${cr.metadata.namespace ?? ''}/${cr.metadata.name ?? ''}`;
    this.log = deps.log.child({ maintenance: this.key });
    const nodes = deps.store.nodes();
    this.haltAnnounced = isHalted(nodes, cr.spec) && !nodes.every(isTerminal);
    this.steps = new ActionSteps(this.host());
    this.requestSteps = new RequestSteps(this.host(), {
      afterRequests: () => {
        this.announceHaltChange();
        this.deps.fleet.notifyChanged();
      },
      runAgain: (name) => {
        this.runAgain(name);
      },
    });
    this.drains = new DrainSteps(this.host(), this.log, (name, startedMs, timeout) => {
      this.slaExpired(name, startedMs, timeout);
    });
    this.claims = new ClaimPhaseWriter((name, claim) => {
      // The cached node saves a read, unless it might make the write look done already.
      const known = deps.nodeFacts(name);
      const cached = known === undefined ? undefined : claimOf(known);
      const useKnown = cached?.uid === claim.uid && cached.phase !== claim.phase;
      return deps.nodes.updateClaim(name, claim, useKnown ? known : undefined);
    }, this.log);
  }

  /** What the steps (action-steps.ts, drain-steps.ts) need of this run. */
  private host(): StepHost {
    return {
      deps: this.deps,
      cr: () => this.cr,
      uid: () => this.uid,
      node: (name) => this.node(name),
      setNode: (name, next, progressOnly) => this.setNode(name, next, progressOnly),
      event: (type, reason, message, node) => {
        this.event(type, reason, message, node);
      },
      failNode: (name, reason, message, fields) => this.failNode(name, reason, message, fields),
      finishNode: (name, fields) => this.finishNode(name, fields),
      returnNode: (node) => this.returnNode(node),
      maintenanceChanged: (signal) => this.maintenanceChanged(signal),
      stepCancelled: (actionId, outcome) => {
        this.cancelled.set(actionId, outcome);
      },
    };
  }

  private maintenanceChanged(signal: AbortSignal): Promise<void> {
    return once(this.versions, 'update', { signal }).then(
      () => undefined,
      () => undefined,
    );
  }

  get uid(): string {
    return this.cr.metadata.uid ?? '';
  }

  get status(): NodeMaintenanceStatus {
    return this.deps.store.current;
  }

  /** Nodes this maintenance holds out of service (in maintenance or failed), or reserved. */
  heldNodes(): string[] {
    const held = this.deps.store
      .nodes()
      .filter(isHeld)
      .map((n) => n.name);
    return [...new Set([...held, ...this.reserved])];
  }

  /** Nodes that count against the limits: held, reserved, or selected and unavailable anyway. */
  unavailableNodes(): Set<string> {
    const out = unavailableNodes(this.deps.store.nodes(), (name) => {
      const node = this.deps.nodeFacts(name);
      return node !== undefined && isUnavailable(node);
    });
    for (const r of this.reserved) out.add(r);
    return out;
  }

  private target(): EventTarget {
    return {
      apiVersion: this.cr.apiVersion,
      kind: this.cr.kind,
      name: this.cr.metadata.name ?? '',
      namespace: this.cr.metadata.namespace,
      uid: this.cr.metadata.uid,
    };
  }

  private event(type: 'Normal' | 'Warning', reason: string, message: string, node?: string) {
    // A Node's Events carry its name as UID, as the kubelet's do: `kubectl describe node`
    // finds Events by UID.
    this.deps.events.record(this.target(), type, reason, node ? `${node}: ${message}` : message);
    if (node !== undefined) {
      this.deps.events.record(
        { apiVersion: 'v1', kind: 'Node', name: node, uid: node },
        type,
        reason,
        `${this.key}: ${message}`,
      );
    }
  }

  /** The latest object from the informer; spec edits apply from the next step on. */
  update(cr: NodeMaintenance): void {
    const wasPaused = this.cr.spec.paused === true;
    this.cr = cr;
    this.deps.onUpdate?.(cr);
    this.versions.emit('update');
    const paused = cr.spec.paused === true;
    if (paused !== wasPaused && this.status.observedNodes !== undefined) {
      this.event(
        'Normal',
        paused ? 'Paused' : 'Resumed',
        paused
          ? 'paused: no node starts or begins its next step'
          : 'resumed: nodes go on from where they stopped',
      );
    }
    if (this.status.observedNodes !== undefined) this.announceHaltChange();
    this.queueRequests();
  }

  start(): Promise<void> {
    this.done ??= this.execute().catch((err: unknown) => {
      if (!this.abort.signal.aborted) this.log.error({ err }, 'maintenance run crashed');
    });
    return this.done;
  }

  /** Stops in-flight work (drains, agent actions) and waits for the node tasks to settle. */
  async stop(): Promise<void> {
    this.abort.abort();
    clearInterval(this.stuckTimer);
    await this.done;
    await Promise.all(this.tasks.values());
    await this.requests;
  }

  private node(name: string): NodeStatus {
    const n = this.deps.store.node(name);
    if (n === undefined) throw new Error(`node ${name} is not in status`);
    return n;
  }

  private async setNode(name: string, next: NodeStatus, progressOnly = false): Promise<void> {
    if (next.name !== name) throw new Error(`entry of ${next.name} given for ${name}`);
    const prev = this.deps.store.node(name);
    const written = this.deps.store.setNode(next, progressOnly);
    if (prev !== undefined && prev.phase !== next.phase) this.moved(prev, next);
    await written;
  }

  /** A node changed phase: the time it spent in the last one, and its claim's phase. */
  private moved(prev: NodeStatus, next: NodeStatus): void {
    const since = prev.lastTransitionTime ?? prev.startedAt ?? this.status.startedAt;
    if (since !== undefined) {
      const seconds = (this.deps.now().getTime() - Date.parse(since)) / 1000;
      this.deps.observePhase?.(prev.phase, Math.max(0, seconds));
    }
    // No claim before the cordon; finished nodes give theirs up (release, return).
    if (next.initialState === undefined || next.claimReleased === true) return;
    if (next.phase === 'Succeeded' || next.phase === 'Restored') {
      this.claims.forget(next.name);
      return;
    }
    this.claims.set(next.name, this.claim(next.phase));
  }

  /** Every taint noma adds, NoExecute ones included: what a return to service removes. */
  private ourTaints(node?: NodeStatus): TaintSpec[] {
    return [
      MAINTENANCE_TAINT,
      ...(this.cr.spec.options?.taints ?? []),
      ...(node?.initialState?.inheritedTaints ?? []),
    ];
  }

  /** The taints of the cordon: NoExecute ones wait until noma's own drain is done. */
  private cordonTaints(): TaintSpec[] {
    return [
      MAINTENANCE_TAINT,
      ...(this.cr.spec.options?.taints ?? []).filter((t) => !isNoExecute(t)),
    ];
  }

  private claim(phase: string): Claim {
    return { maintenance: this.key, uid: this.uid, phase };
  }

  private async execute(): Promise<void> {
    const phaseBefore = this.status.phase;
    await this.deps.ready();
    if (this.status.observedNodes === undefined) {
      if (this.status.phase === 'Failed') return;
      const ok = await this.selectWithRetry();
      if (!ok) return;
    }
    this.queueRequests();
    this.watchStuck();
    this.resyncClaims();
    for (const n of this.status.nodes ?? []) this.startNode(n.name);
    while (this.tasks.size > 0) await Promise.all(this.tasks.values());
    clearInterval(this.stuckTimer);
    this.stuckTimer = undefined;
    this.checkStuck();
    await this.deps.store.flush();
    // Only when it ends in this process: a restart must not announce old results again.
    const phase = this.status.phase;
    if ((phase === 'Completed' || phase === 'Failed') && phase !== phaseBefore) {
      this.event(
        phase === 'Completed' ? 'Normal' : 'Warning',
        phase,
        `maintenance ${phase.toLowerCase()}: ${this.status.progress ?? ''}`,
      );
    }
  }

  /** One task per node; a node whose task is running is not started twice. */
  private startNode(name: string): void {
    if (this.tasks.has(name) || this.abort.signal.aborted) return;
    const task = this.runNode(name).finally(() => {
      this.tasks.delete(name);
    });
    this.tasks.set(name, task);
  }

  /** Resolves the selector once and freezes the result; refusals fail the maintenance. */
  private async select(): Promise<boolean> {
    const spec = this.cr.spec;
    const now = this.deps.now();
    const fail = async (reason: string, message: string) => {
      await this.deps.store.commit((s) => ({
        ...s,
        phase: 'Failed',
        completedAt: now.toISOString(),
        conditions: setCondition(
          s.conditions,
          { type: 'Ready', status: 'False', reason, message },
          now,
        ),
      }));
      this.event('Warning', reason, message);
      return false;
    };
    let nodes: V1Node[];
    try {
      nodes = await this.deps.listNodes(spec.nodeSelector);
    } catch (err) {
      if (statusCode(err) === 400) {
        return fail(
          'InvalidSelector',
          `nodeSelector ${JSON.stringify(spec.nodeSelector)} is invalid`,
        );
      }
      throw err;
    }
    const names = nodes
      .map((n) => n.metadata?.name ?? '')
      .filter((n) => n !== '')
      .sort();
    if (names.length === 0) {
      return fail(
        'NoNodesSelected',
        `nodeSelector ${JSON.stringify(spec.nodeSelector)} matched no nodes`,
      );
    }
    if (names.length > this.deps.maxSelectedNodes) {
      return fail(
        'TooManyNodesSelected',
        `nodeSelector matched ${names.length} nodes, more than the coordinator allows ` +
          `(${this.deps.maxSelectedNodes}); narrow the selector or split the maintenance`,
      );
    }
    const controlPlane = nodes
      .filter((n) => CONTROL_PLANE_LABELS.some((l) => n.metadata?.labels?.[l] !== undefined))
      .map((n) => n.metadata?.name ?? '');
    if (controlPlane.length > 0 && spec.options?.allowControlPlane !== true) {
      return fail(
        'ControlPlaneRefused',
        `nodeSelector matches control-plane nodes (${controlPlane.join(', ')}); ` +
          'set options.allowControlPlane to allow it',
      );
    }
    await this.deps.store.commit((s) => ({
      ...s,
      observedNodes: names,
      startedAt: s.startedAt ?? now.toISOString(),
      nodes: names.map((name) => ({ name, phase: 'Pending' })),
    }));
    this.event('Normal', 'NodesSelected', `selected ${names.length} nodes: ${names.join(', ')}`);
    return true;
  }

  /**
   * select() throws only when the API server did not answer (a refusal fails the maintenance):
   * try again, or the maintenance would stay Pending until the next restart.
   */
  private async selectWithRetry(): Promise<boolean> {
    return retry(() => this.select(), {
      baseMs: 500,
      maxMs: 30_000,
      signal: this.abort.signal,
      onRetry: (err, attempt) => {
        this.log.warn({ err, attempt }, 'selecting nodes failed; retrying');
      },
    }).catch((err: unknown) => {
      if (this.abort.signal.aborted) return false;
      throw err;
    });
  }

  private async runNode(name: string): Promise<void> {
    const signal = this.abort.signal;
    let failedAt: NodeStatus | undefined;
    try {
      // Every step is idempotent from its committed state, so a step that failed because the
      // API server was away is retried rather than failing a node that is fine; a step that
      // went through since the last failure means the API server is back (the count restarts).
      await retry(() => this.walkNode(name, signal), {
        baseMs: 500,
        maxMs: 30_000,
        attempts: MAX_TRANSIENT_FAILURES + 1,
        signal,
        progressed: () => failedAt !== undefined && this.node(name) !== failedAt,
        onRetry: (err, failures) => {
          failedAt = this.node(name);
          this.log.warn({ err, node: name, failures }, 'step failed; retrying');
        },
      });
    } catch (err) {
      if (signal.aborted) return;
      this.log.error({ err, node: name }, 'node failed');
      await this.failNode(name, 'NodeFailed', err instanceof Error ? err.message : String(err));
    }
  }

  /** Takes the node through its steps until it is finished. */
  private async walkNode(name: string, signal: AbortSignal): Promise<void> {
    for (;;) {
      if (signal.aborted) return;
      const node = this.node(name);
      const step = nextStep(node, this.cr.spec);
      if (step.kind === 'terminal') {
        await this.releaseClaim(name);
        return;
      }
      if (this.startsNewStep(node, step) && (await this.waitWhileHeld(name, signal))) continue;
      switch (step.kind) {
        case 'admit':
          await this.admit(name, signal);
          break;
        case 'cordon':
          await this.cordon(name);
          break;
        case 'drain':
          await this.drains.drain(name, signal);
          break;
        case 'finish':
          await this.finishNode(name, {});
          break;
        case 'action':
          await this.runAction(name, step.index, signal);
          break;
      }
    }
  }

  /**
   * Whether `step` begins something new (and so waits while the maintenance is paused or
   * halted). A drain under way and a dispatched action finish; admission checks on its own.
   */
  private startsNewStep(node: NodeStatus, step: Step): boolean {
    switch (step.kind) {
      case 'cordon':
        return true;
      case 'drain':
        return node.phase !== 'Draining';
      case 'action':
        return !(node.phase === 'InAction' && node.actionID !== undefined);
      default:
        return false;
    }
  }

  /**
   * Waits while the maintenance is paused or halted, the reason in the node's message.
   * Returns whether it waited (the caller looks at the node again: it may have been restored).
   */
  private async waitWhileHeld(name: string, signal: AbortSignal): Promise<boolean> {
    let waited = false;
    for (;;) {
      const reason = this.holdFor(name);
      if (reason === undefined || signal.aborted) break;
      waited = true;
      const node = this.node(name);
      if (isTerminal(node)) break;
      const message = `waiting: ${reason}`;
      if (node.message !== message) await this.setNode(name, { ...node, message }, true);
      await this.waitForChange(signal);
    }
    if (waited && !signal.aborted) {
      this.waitEnded.set(name, this.deps.now().getTime());
      const { message, ...rest } = this.node(name);
      if (message?.startsWith('waiting: ') === true) await this.setNode(name, rest, true);
    }
    return waited;
  }

  /** Pause holds every node; the failure budget holds all but nodes retried on request. */
  private holdFor(name: string): string | undefined {
    const reason = holdReason(this.deps.store.nodes(), this.cr.spec);
    if (reason === undefined) return undefined;
    if (this.retrying.has(name) && this.cr.spec.paused !== true) return undefined;
    return reason;
  }

  /** A new version of the object, capacity freed somewhere, or 2 s. */
  private async waitForChange(signal: AbortSignal): Promise<void> {
    const ac = new AbortController();
    const both = AbortSignal.any([signal, ac.signal]);
    await Promise.race([
      this.deps.fleet.changed(2_000, both),
      once(this.versions, 'update', { signal: both }).catch(() => undefined),
    ]);
    ac.abort();
  }

  /**
   * Stops this node where it is (it stays cordoned and keeps its slot), saying why in status
   * and an Event; halts the maintenance when the failure budget is spent.
   */
  private async failNode(
    name: string,
    reason: string,
    message: string,
    fields: Partial<NodeStatus> = {},
  ): Promise<void> {
    const { job: _job, ...node } = this.node(name);
    const failed = transition(node, 'Failed', this.deps.now(), { ...fields, message });
    this.retrying.delete(name);
    // The claim says Failed too (setNode → moved, not awaited).
    await this.setNode(name, failed);
    this.event('Warning', reason, message, name);
    this.announceHaltChange();
    this.deps.fleet.notifyChanged();
  }

  /**
   * Once per halt: an Event and, where a webhook is configured, a message; and an Event when
   * the halt ends (restores, retries, a raised budget). Called wherever the count can change.
   */
  private announceHaltChange(): void {
    const nodes = this.deps.store.nodes();
    // A maintenance whose nodes are all finished is Failed, not halted.
    const halted = isHalted(nodes, this.cr.spec) && !nodes.every(isTerminal);
    if (halted === this.haltAnnounced) return;
    this.haltAnnounced = halted;
    if (!halted) {
      this.event('Normal', 'Resumed', 'failure budget no longer exceeded: nodes go on');
      return;
    }
    const failed = nodes.filter((n) => n.phase === 'Failed');
    const text =
      `maintenance halted: ${failedSummary(failed)} (maxFailedNodes ` +
      `${maxFailedNodes(this.cr.spec, nodes.length)}). No node starts until failed nodes ` +
      `are restored (noma restore) or retried (noma retry), or the budget is raised.`;
    this.event('Warning', 'FailureBudgetExceeded', text);
    this.notify(text, 'halt');
  }

  /** To the notify webhook, if one is configured: the first Notify action's channel, or noma. */
  private notify(text: string, what: string): void {
    const channel = this.cr.spec.actions.find((a) => a.notify !== undefined)?.notify?.channel;
    void this.deps.notifier
      .send(
        { channel: channel ?? 'noma', text: `[${this.cr.spec.linearTicket}] ${this.key}: ${text}` },
        this.abort.signal,
      )
      .then((outcome) => {
        if (!outcome.delivered && outcome.error !== 'no webhook configured') {
          this.log.warn({ error: outcome.error }, `${what} notification not delivered`);
        }
      })
      .catch(() => undefined);
  }

  // ---- states for other controllers: SLAExpired, Stuck (node-states.ts) -------------------

  /**
   * A drain of `name` that began at `startedMs` passed drainTimeout: recorded once per drain
   * (phaseTimes.slaExpired, the SLAExpired condition, an Event, the webhook), whether forceDrain
   * then deletes what is left or the node fails.
   */
  private slaExpired(name: string, startedMs: number, timeout: string): void {
    const node = this.deps.store.node(name);
    if (node === undefined || this.abort.signal.aborted) return;
    const before = node.phaseTimes?.slaExpired;
    // Announced for this drain already (by this process, or by one before a restart).
    if (before !== undefined && Date.parse(before) >= startedMs - 1_000) return;
    const now = this.deps.now();
    void this.setNode(name, withPhaseTime(node, 'slaExpired', now), true).catch(() => undefined);
    this.deps.store.coalesce((s) => ({
      ...s,
      conditions: setCondition(s.conditions, slaCondition(s.nodes ?? [], timeout), now),
    }));
    const then =
      this.cr.spec.options?.forceDrain === true
        ? 'pods still there are deleted now (forceDrain)'
        : 'the node fails unless its pods go';
    const text = `drainTimeout (${timeout}) passed while draining ${name}: ${then}`;
    this.event('Warning', 'SLAExpired', text, name);
    this.notify(text, 'SLAExpired');
  }

  /**
   * A coordinator that stopped between a change of phase and its claim write left the claim
   * behind: where the cache (listed before any run starts) shows our claim on another phase,
   * write the current one. Nodes whose claim is right cost nothing.
   */
  private resyncClaims(): void {
    for (const n of this.deps.store.nodes()) {
      if (n.initialState === undefined || n.claimReleased === true) continue;
      if (n.phase === 'Succeeded' || n.phase === 'Restored') continue;
      const c = claimOf(this.deps.nodeFacts(n.name));
      if (c?.uid === this.uid && c.phase !== n.phase) this.claims.set(n.name, this.claim(n.phase));
    }
  }

  /** Nodes found Stuck at the last check (for /metrics and tests). */
  stuckNodes(): readonly StuckNode[] {
    return this.stuck;
  }

  /** Looks for Stuck nodes a few times per stuckAfter (at most once a minute). */
  private watchStuck(): void {
    const after = this.deps.stuckAfterMs ?? 0;
    if (after <= 0 || this.stuckTimer !== undefined) return;
    const every = Math.min(60_000, Math.max(250, Math.floor(after / 4)));
    this.stuckTimer = setInterval(() => {
      this.checkStuck();
    }, every);
    this.stuckTimer.unref();
  }

  /** The Stuck condition and an Event per newly stuck node, when the set of them changes. */
  private checkStuck(): void {
    const after = this.deps.stuckAfterMs ?? 0;
    if (after <= 0 || this.abort.signal.aborted) return;
    const now = this.deps.now();
    const stuck = findStuck(this.deps.store.nodes(), this.cr.spec, now, after, (name) =>
      this.waitEnded.get(name),
    );
    const before = new Set(this.stuck.map((n) => n.name));
    const same = stuck.length === before.size && stuck.every((n) => before.has(n.name));
    this.stuck = stuck;
    // A condition left True by a process before this one is cleared too.
    const shown = this.status.conditions?.find((c) => c.type === 'Stuck')?.status === 'True';
    if (same && shown === stuck.length > 0) return;
    // Bounded: a fleet that stalls at once gets the condition, not thousands of Events.
    for (const n of stuck.filter((x) => !before.has(x.name)).slice(0, 10)) {
      this.event('Warning', 'Stuck', `stuck: ${n.reason}`, n.name);
    }
    this.deps.store.coalesce((s) => ({
      ...s,
      conditions: setCondition(s.conditions, stuckCondition(stuck), now),
    }));
  }

  /** Undoes what noma did to the node (Complete, restore, deletion): see NodeOps.leave. */
  private returnNode(node: NodeStatus): Promise<void> {
    const initial = node.initialState;
    return this.deps.nodes.leave(
      node.name,
      this.uid,
      this.ourTaints(node),
      initial?.taints ?? [],
      initial?.unschedulable === false,
    );
  }

  /** The node is done; without a return to service its claim goes and noma's marks say whose. */
  private async finishNode(name: string, fields: Partial<NodeStatus>): Promise<void> {
    const { actionID: _id, message: _m, job: _j, attempt: _a, ...rest } = this.node(name);
    // The result first: releasing the claim is a Node write that may queue behind others.
    await this.setNode(name, transition(rest, 'Succeeded', this.deps.now(), fields));
    this.event('Normal', 'NodeSucceeded', 'maintenance of the node finished', name);
    this.deps.fleet.notifyChanged();
    await this.releaseClaim(name);
  }

  /**
   * A Succeeded node that was not returned to service (no Complete or DeleteNode) gives up its
   * claim for a left-by mark; recorded in status, so a restart in between does it then.
   */
  private async releaseClaim(name: string): Promise<void> {
    const node = this.node(name);
    const initial = node.initialState;
    const returned = this.cr.spec.actions.some(
      (a) => a.type === 'Complete' || a.type === 'DeleteNode',
    );
    if (node.phase !== 'Succeeded' || returned || initial === undefined || node.claimReleased) {
      return;
    }
    await this.deps.nodes.release(name, this.uid, {
      maintenance: this.key,
      uid: this.uid,
      unschedulable: !initial.unschedulable,
      taints: this.ourTaints(node).filter(
        (t) => !(initial.taints ?? []).some((i) => sameTaint(i, t)),
      ),
    });
    await this.setNode(name, { ...this.node(name), claimReleased: true }, true);
  }

  private admissionFor(name: string) {
    const mine = this.unavailableNodes();
    mine.delete(name);
    return admission({
      hold: this.holdFor(name),
      heldElsewhere: this.deps.fleet.heldElsewhere(this, name),
      unavailableInThis: mine.size,
      limitInThis: maxUnavailable(this.cr.spec, this.deps.store.nodes().length),
      unavailableGlobally: this.deps.fleet.unavailableCount(name),
      globalLimit: this.deps.globalLimit,
    });
  }

  private async admit(name: string, signal: AbortSignal): Promise<void> {
    for (;;) {
      if (signal.aborted || !notStarted(this.node(name))) return;
      // Check and reserve with no await in between: JavaScript runs this atomically with
      // respect to the other node tasks, so two nodes cannot take the same last slot.
      const decision = this.admissionFor(name);
      if (decision.admit) {
        this.reserved.add(name);
        try {
          if (await this.recordInitialState(name)) return;
        } finally {
          this.reserved.delete(name);
        }
      } else {
        const node = this.node(name);
        const message = `waiting: ${decision.reason}`;
        if (node.message !== message) await this.setNode(name, { ...node, message }, true);
      }
      await this.waitForChange(signal);
    }
  }

  /**
   * Reads the node and records its initial state, unless another maintenance claims it (the
   * claim on the Node survives restarts; the in-memory view may not have it yet). Returns
   * false when the node must wait.
   */
  private async recordInitialState(name: string): Promise<boolean> {
    const live = await this.deps.nodes.read(name);
    if (!notStarted(this.node(name))) return true; // restored meanwhile
    if (live === undefined) {
      await this.failNode(name, 'NodeFailed', 'node not found');
      return true;
    }
    const other = foreignClaim(live, this.uid);
    if (other !== undefined) {
      if (!(await this.deps.claimIsStale(other))) {
        const message = `waiting: node is claimed by maintenance ${other.maintenance} (${other.phase})`;
        const node = this.node(name);
        if (node.message !== message) await this.setNode(name, { ...node, message }, true);
        return false;
      }
      this.log.warn({ node: name, claim: other }, 'taking over a stale claim');
      this.staleClaims.add(other.uid);
    }
    this.admitted.set(name, live);
    const init = initialStateOf(live);
    const { message: _waiting, ...rest } = this.node(name);
    const now = this.deps.now();
    await this.setNode(name, {
      ...rest,
      startedAt: now.toISOString(),
      phaseTimes: { ...rest.phaseTimes, scheduled: isoSeconds(now) },
      initialState: {
        unschedulable: init.unschedulable,
        taints: init.taints.map(taintRecord),
        ...(init.inheritedTaints.length === 0
          ? {}
          : { inheritedTaints: init.inheritedTaints.map(taintRecord) }),
      },
    });
    return true;
  }

  private async cordon(name: string): Promise<void> {
    const known = this.admitted.get(name);
    this.admitted.delete(name);
    try {
      await this.deps.nodes.enter(
        name,
        {
          taints: this.cordonTaints(),
          label: maintenanceLabelValue(this.cr.metadata.name ?? ''),
          owner: this.key,
          claim: this.claim('Cordoned'),
          takeOver: (c) => this.staleClaims.has(c.uid),
        },
        known,
      );
    } catch (err) {
      if (!(err instanceof ClaimedElsewhereError)) throw err;
      // Another maintenance claimed the node between our read and our write (or before a
      // restart): nothing was changed, so forget the admission and wait for the node.
      await this.setNode(name, { name, phase: 'Pending', message: `waiting: ${err.message}` });
      return;
    }
    this.claims.written(name, 'Cordoned');
    // Not awaited (coalesced): cordon and drain are idempotent, so a coordinator that dies
    // before this is written cordons and drains again from the recorded initial state. Only
    // what a restart could not redo safely waits for its write (the initial state before the
    // first change, the action ID before the send). At 2000 nodes each awaited write is a
    // round of status writes every node waits for.
    await this.setNode(name, transition(this.node(name), 'Cordoned', this.deps.now()), true);
    this.event('Normal', 'Cordoned', 'cordoned and tainted', name);
  }

  /**
   * Records the start of spec.actions[index] (its ID before anything is sent) unless it is
   * already in flight, then hands it to the handler of its type.
   */
  private async runAction(name: string, index: number, signal: AbortSignal): Promise<void> {
    const action = this.cr.spec.actions[index];
    if (action === undefined) return;
    let node = this.node(name);
    const inFlight =
      node.phase === 'InAction' && node.currentActionIndex === index && node.actionID !== undefined;
    if (!inFlight) {
      const endsPods = action.type === 'Reboot' || action.type === 'DeleteNode';
      if (endsPods && !(await this.drains.drainBeforeEnd(name, index, signal))) return;
      // Paused or halted during that drain: the step waits (walkNode holds it).
      if (this.holdFor(name) !== undefined) return;
      node = await this.steps.start(name, index, action);
    }
    this.retrying.delete(name);
    await this.steps.run({ name, index, action, node, signal });
  }

  // ---- restore and retry, on request ---------------------------------------------------------

  private queueRequests(): void {
    this.requests = this.requests
      .then(() =>
        this.abort.signal.aborted || this.status.observedNodes === undefined
          ? undefined
          : this.requestSteps.handle(),
      )
      .catch((err: unknown) => {
        // The annotation stays: the next version of the object (or the resync) tries again.
        this.log.warn({ err }, 'restore/retry requests not handled; will retry');
      });
  }

  /** A retried node goes again: in the running execution, or in a new one if it had ended. */
  private runAgain(name: string): void {
    this.retrying.add(name);
    if (this.tasks.size === 0 && this.done !== undefined) {
      // The run had ended (every node finished): it goes on for this node.
      this.done = this.execute().catch((err: unknown) => {
        if (!this.abort.signal.aborted) this.log.error({ err }, 'maintenance run crashed');
      });
    } else {
      this.startNode(name);
    }
  }

  /**
   * The NodeMaintenance is being deleted: stop, and return every node noma holds (in flight or
   * failed) to the state it had before; finished nodes keep their final state. A node whose
   * step was running is returned only once the step is known stopped (cancelConfirmed); else
   * it stays cordoned, Failed, with a left-by mark naming this maintenance.
   */
  async cancel(): Promise<void> {
    // A status write that never lands (the API server refusing it with 5xx, say) must not hold
    // the deletion: node tasks stuck on one get that long, then the nodes are returned anyway.
    await withDeadline(this.stop(), this.deps.cancelWaitMs ?? CANCEL_WAIT_MS);
    const held = (this.status.nodes ?? []).filter(isHeld);
    const unconfirmed = new Map<string, string>();
    await Promise.all(
      held.map(async (n) => {
        const why = await this.cancelConfirmed(n);
        if (why !== undefined) unconfirmed.set(n.name, why);
      }),
    );
    for (const n of held) {
      const why = unconfirmed.get(n.name);
      if (why === undefined) await this.restoreCancelled(n);
      else await this.leaveUnconfirmed(n, why);
    }
    await withDeadline(this.deps.store.flush(), this.deps.cancelWaitMs ?? CANCEL_WAIT_MS);
    this.deps.fleet.notifyChanged();
  }

  /**
   * Whether the node's step, if one was running on the node or as its pod, is known stopped:
   * undefined if so (or nothing ran), else why not. The step's own task recorded the
   * dispatcher's answer as it stopped; a step it did not see end (the task past the deadline,
   * or a deletion seen only after a restart) is cancelled here through the dispatcher.
   */
  private async cancelConfirmed(n: NodeStatus): Promise<string | undefined> {
    const action = this.cr.spec.actions[n.currentActionIndex ?? -1];
    const running = n.phase === 'InAction' && n.actionID !== undefined && action !== undefined;
    if (!running || !NODE_LOCAL_ACTIONS.has(action.type)) return undefined;
    const recorded = this.cancelled.get(n.actionID ?? '');
    if (recorded !== undefined) return recorded.confirmed ? undefined : recorded.message;
    const stopped = new AbortController();
    stopped.abort();
    const outcome = await this.deps.dispatcher.run({
      actionId: n.actionID ?? '',
      node: n.name,
      index: n.currentActionIndex ?? 0,
      action,
      signal: stopped.signal,
      ...(n.bootIDBeforeReboot === undefined ? {} : { bootIDBeforeReboot: n.bootIDBeforeReboot }),
      ...(n.job === undefined ? {} : { job: n.job }),
      ...(this.deps.cancelConfirmMs === undefined
        ? {}
        : { cancelConfirmMs: this.deps.cancelConfirmMs }),
      maintenance: {
        namespace: this.cr.metadata.namespace ?? '',
        name: this.cr.metadata.name ?? '',
        uid: this.uid,
      },
      report: () => Promise.resolve(),
      annotations: () => this.cr.metadata.annotations ?? {},
      maintenanceChanged: (signal) => this.maintenanceChanged(signal),
    });
    if (outcome.kind === 'cancelled') return outcome.confirmed ? undefined : outcome.message;
    // It had ended (a result) before the cancel: stopped. Unavailable: nobody could say.
    return outcome.kind === 'unavailable' ? outcome.message : undefined;
  }

  private async restoreCancelled(n: NodeStatus): Promise<void> {
    await this.returnNode(n);
    const { job: _job, ...rest } = n;
    await this.setNode(
      n.name,
      transition(rest, 'Restored', this.deps.now(), { message: 'maintenance deleted' }),
      true,
    );
    this.event(
      'Normal',
      'NodeRestored',
      'maintenance deleted: node returned to its initial state',
      n.name,
    );
  }

  /**
   * The step may still run: the node must not go back to service. It stays cordoned (and
   * tainted), Failed in status while the object lasts, and its claim becomes a left-by mark so
   * that `noma nodes` and a later maintenance know who left it so.
   */
  private async leaveUnconfirmed(n: NodeStatus, why: string): Promise<void> {
    const message = `cancel not confirmed: ${why}`;
    await this.failNode(n.name, 'CancelNotConfirmed', message);
    const initial = n.initialState;
    await this.deps.nodes.release(n.name, this.uid, {
      maintenance: this.key,
      uid: this.uid,
      unschedulable: initial === undefined ? true : !initial.unschedulable,
      taints: this.ourTaints(n).filter(
        (t) => !(initial?.taints ?? []).some((i) => sameTaint(i, t)),
      ),
    });
  }
}

/** Waits for `p`, but no longer than `ms`. */
async function withDeadline(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    p,
    new Promise<void>((r) => {
      timer = setTimeout(r, ms);
    }),
  ]);
  clearTimeout(timer);
}

function taintRecord(
  t: TaintSpec & Pick<V1Taint, 'timeAdded'>,
): NonNullable<NonNullable<NodeStatus['initialState']>['taints']>[number] {
  return {
    key: t.key,
    effect: t.effect,
    ...(t.value === undefined ? {} : { value: t.value }),
    ...(t.timeAdded === undefined ? {} : { timeAdded: new Date(t.timeAdded).toISOString() }),
  };
}
