// One NodeMaintenance being carried out: selection, then one task per node walking the state
// machine of model.ts. What a restart could not redo is committed to status before the next side
// effect (docs/state-machine.md, "Status first"), so a coordinator killed at any instant resumes
// from status and never repeats a finished step.
import { EventEmitter, once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1Node } from '@kubernetes/client-node';
import type { NodeMaintenance, NodeMaintenanceStatus, NodeStatus } from '../../shared/api/index.js';
import { backoffMs, parseDuration } from '../../shared/duration.js';
import type { Logger } from '../../shared/log.js';
import { MAINTENANCE_TAINT, maintenanceLabelValue } from '../../shared/maintenance-keys.js';
import {
  actionId,
  NODE_LOCAL_ACTIONS,
  type ActionDispatcher,
  type ActionProgress,
} from '../actions/dispatcher.js';
import type { Notifier } from '../actions/notify.js';
import type { EventRecorder, EventTarget } from '../events.js';
import { isTransient, type NodeOps } from '../nodes/node-ops.js';
import type { TaintSpec } from '../nodes/taints.js';
import {
  admission,
  isActive,
  maxUnavailable,
  nextStep,
  setCondition,
  transition,
} from './model.js';
import type { DrainFn, DrainOutcome, DrainProgress } from './ports.js';
import type { StatusStore } from './status-store.js';

const DEFAULT_DRAIN_TIMEOUT_MS = 30 * 60_000;
/** About 10 minutes of backoff: beyond that the API server is not coming back soon. */
const MAX_TRANSIENT_FAILURES = 25;
const CONTROL_PLANE_LABELS = [
  'node-role.kubernetes.io/control-plane',
  'node-role.kubernetes.io/master',
];

export interface Fleet {
  /** Nodes active in maintenances other than `self`, and how many are active in all. */
  activeElsewhere(self: MaintenanceRun, node: string): string | undefined;
  activeCount(): number;
  /** Resolves when capacity may have freed up (a node finished somewhere), or after `ms`. */
  changed(ms: number, signal: AbortSignal): Promise<void>;
  notifyChanged(): void;
}

export interface RunDeps {
  readonly log: Logger;
  readonly nodes: NodeOps;
  readonly listNodes: (selector: string) => Promise<V1Node[]>;
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
  readonly skipPod?: DrainFnSkip;
  /** Told about every new version of the object (the status store reads spec from it). */
  readonly onUpdate?: (cr: NodeMaintenance) => void;
}
type DrainFnSkip = Parameters<DrainFn>[1]['skipPod'];

export class MaintenanceRun {
  readonly key: string;
  private readonly abort = new AbortController();
  private readonly reserved = new Set<string>();
  private readonly log: Logger;
  private done: Promise<void> | undefined;
  private blockedBy = new Map<string, string>();
  /** The node as admit read it, for cordon's write (one read fewer per node). */
  private readonly admitted = new Map<string, V1Node>();
  /** Emits 'update' for every new version of the object (an InteractiveShell's release). */
  private readonly versions = new EventEmitter().setMaxListeners(0);

  constructor(
    private cr: NodeMaintenance,
    private readonly deps: RunDeps,
  ) {
    this.key = `${cr.metadata.namespace ?? ''}/${cr.metadata.name ?? ''}`;
    this.log = deps.log.child({ maintenance: this.key });
  }

  get uid(): string {
    return this.cr.metadata.uid ?? '';
  }

  get status(): NodeMaintenanceStatus {
    return this.deps.store.current;
  }

  /** Nodes that count against the limits: active in status, or reserved a moment ago. */
  activeNodes(): string[] {
    const active = this.deps.store
      .nodes()
      .filter(isActive)
      .map((n) => n.name);
    return [...new Set([...active, ...this.reserved])];
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
    this.deps.events.record(this.target(), type, reason, node ? `${node}: ${message}` : message);
    if (node !== undefined) {
      this.deps.events.record(
        { apiVersion: 'v1', kind: 'Node', name: node, uid: undefined },
        type,
        reason,
        `${this.key}: ${message}`,
      );
    }
  }

  /** The latest object from the informer; spec edits apply from the next step on. */
  update(cr: NodeMaintenance): void {
    this.cr = cr;
    this.deps.onUpdate?.(cr);
    this.versions.emit('update');
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
    await this.done;
  }

  private node(name: string): NodeStatus {
    const n = this.deps.store.node(name);
    if (n === undefined) throw new Error(`node ${name} is not in status`);
    return n;
  }

  private async setNode(name: string, next: NodeStatus, progressOnly = false): Promise<void> {
    if (next.name !== name) throw new Error(`entry of ${next.name} given for ${name}`);
    await this.deps.store.setNode(next, progressOnly);
  }

  private ourTaints(): TaintSpec[] {
    return [MAINTENANCE_TAINT, ...(this.cr.spec.options?.taints ?? [])];
  }

  private async execute(): Promise<void> {
    const phaseBefore = this.status.phase;
    if (this.status.observedNodes === undefined) {
      if (this.status.phase === 'Failed') return;
      const ok = await this.select();
      if (!ok) return;
    }
    const names = (this.status.nodes ?? []).map((n) => n.name);
    await Promise.all(names.map((n) => this.runNode(n)));
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
      const code = (err as { code?: number }).code;
      if (code === 400) {
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

  private async runNode(name: string): Promise<void> {
    const signal = this.abort.signal;
    let failures = 0;
    for (;;) {
      try {
        await this.walkNode(name, signal);
        return;
      } catch (err) {
        if (signal.aborted) return;
        const message = err instanceof Error ? err.message : String(err);
        // Every step is idempotent from its committed state, so a step that failed because the
        // API server was away is retried rather than failing a node that is fine.
        if (isTransient(err) && failures < MAX_TRANSIENT_FAILURES) {
          this.log.warn({ err, node: name, failures }, 'step failed; retrying');
          await sleep(backoffMs(failures++, { baseMs: 500, maxMs: 30_000 }), undefined, {
            signal,
          }).catch(() => undefined);
          continue;
        }
        this.log.error({ err, node: name }, 'node failed');
        await this.failNode(name, 'NodeFailed', message);
        return;
      }
    }
  }

  /** Takes the node through its steps until it is finished. */
  private async walkNode(name: string, signal: AbortSignal): Promise<void> {
    for (;;) {
      if (signal.aborted) return;
      const node = this.node(name);
      const step = nextStep(node, this.cr.spec);
      switch (step.kind) {
        case 'terminal':
          return;
        case 'admit':
          await this.admit(name, signal);
          break;
        case 'cordon':
          await this.cordon(name);
          break;
        case 'drain':
          await this.drainNode(name, signal);
          break;
        case 'finish':
          await this.setNode(name, transition(node, 'Succeeded', this.deps.now()));
          this.event('Normal', 'NodeSucceeded', 'maintenance of the node finished', name);
          this.deps.fleet.notifyChanged();
          break;
        case 'action':
          await this.runAction(name, step.index, signal);
          break;
      }
    }
  }

  /** Stops this node where it is (it stays cordoned), saying why in status and an Event. */
  private async failNode(
    name: string,
    reason: string,
    message: string,
    fields: Partial<NodeStatus> = {},
  ): Promise<void> {
    const { job: _job, ...node } = this.node(name);
    const failed = transition(node, 'Failed', this.deps.now(), { ...fields, message });
    await this.setNode(name, failed);
    this.event('Warning', reason, message, name);
    this.deps.fleet.notifyChanged();
  }

  /** Undoes what noma did to the node (Complete, or a deleted maintenance): see NodeOps.leave. */
  private returnNode(node: NodeStatus): Promise<void> {
    const initial = node.initialState;
    return this.deps.nodes.leave(
      node.name,
      this.ourTaints(),
      initial?.taints ?? [],
      initial?.unschedulable === false,
    );
  }

  private async admit(name: string, signal: AbortSignal): Promise<void> {
    for (;;) {
      const total = this.deps.store.nodes().length;
      // Check and reserve with no await in between: JavaScript runs this atomically with
      // respect to the other node tasks, so two nodes cannot take the same last slot.
      const decision = admission({
        activeInThis: this.activeNodes().length,
        limitInThis: maxUnavailable(this.cr.spec, total),
        activeGlobally: this.deps.fleet.activeCount(),
        globalLimit: this.deps.globalLimit,
        activeElsewhere: this.deps.fleet.activeElsewhere(this, name),
      });
      if (decision.admit) {
        this.reserved.add(name);
        break;
      }
      const node = this.node(name);
      const message = `waiting: ${decision.reason}`;
      if (node.message !== message) await this.setNode(name, { ...node, message }, true);
      await this.deps.fleet.changed(2_000, signal);
      if (signal.aborted) return;
    }
    try {
      const live = await this.deps.nodes.read(name);
      const node = this.node(name);
      const now = this.deps.now();
      if (live === undefined) {
        await this.failNode(name, 'NodeFailed', 'node not found');
        return;
      }
      this.admitted.set(name, live);
      const { message: _waiting, ...rest } = node;
      await this.setNode(name, {
        ...rest,
        startedAt: now.toISOString(),
        initialState: {
          unschedulable: live.spec?.unschedulable === true,
          taints: (live.spec?.taints ?? []).map((t) => ({
            key: t.key,
            effect: t.effect,
            ...(t.value === undefined ? {} : { value: t.value }),
            ...(t.timeAdded === undefined
              ? {}
              : { timeAdded: new Date(t.timeAdded).toISOString() }),
          })),
        },
      });
    } finally {
      this.reserved.delete(name);
    }
  }

  private async cordon(name: string): Promise<void> {
    const known = this.admitted.get(name);
    this.admitted.delete(name);
    await this.deps.nodes.enter(
      name,
      this.ourTaints(),
      maintenanceLabelValue(this.cr.metadata.name ?? ''),
      this.key,
      known,
    );
    // Not awaited (coalesced): cordon and drain are idempotent, so a coordinator that dies
    // before this is written cordons and drains again from the recorded initial state. Only
    // what a restart could not redo safely waits for its write (the initial state before the
    // first change, the action ID before the send). At 2000 nodes each awaited write is a
    // round of status writes every node waits for.
    await this.setNode(name, transition(this.node(name), 'Cordoned', this.deps.now()), true);
    this.event('Normal', 'Cordoned', 'cordoned and tainted', name);
  }

  private async drainNode(name: string, signal: AbortSignal): Promise<void> {
    const opts = this.cr.spec.options ?? {};
    let node = this.node(name);
    if (node.phase !== 'Draining') {
      node = transition(node, 'Draining', this.deps.now(), {
        drain: { total: 0, evicted: 0, pending: 0 },
      });
      await this.setNode(name, node, true); // a restart drains again (see cordon)
    }
    const onProgress = (p: DrainProgress) => {
      const blocker = p.blockedBy
        ? `${p.blockedBy.kind} ${p.blockedBy.namespace ?? ''}/${p.blockedBy.name}`
        : '';
      if (blocker !== '' && this.blockedBy.get(name) !== blocker) {
        this.event(
          'Warning',
          'DrainBlocked',
          `drain blocked by ${blocker}: ${p.blockedBy?.message ?? ''}`,
          name,
        );
      }
      this.blockedBy.set(name, blocker);
      // A drain resumed after a restart sees only the pods still there; keep the first total.
      const before = this.node(name).drain;
      const total = Math.max(before?.total ?? 0, p.total);
      const drain = { ...p, total, evicted: total - p.pending };
      void this.setNode(name, { ...this.node(name), drain }, true);
    };
    const timeoutMs =
      opts.drainTimeout === undefined
        ? DEFAULT_DRAIN_TIMEOUT_MS
        : (parseDuration(opts.drainTimeout) ?? DEFAULT_DRAIN_TIMEOUT_MS);
    const result = await this.drainWithRetry(
      name,
      {
        drainNonGpuPods: opts.drainNonGpuPods === true,
        deleteEmptyDirData: opts.deleteEmptyDirData === true,
        evictUnmanagedPods: opts.evictUnmanagedPods === true,
        forceDrain: opts.forceDrain === true,
        timeoutMs,
        ...(this.deps.skipPod ? { skipPod: this.deps.skipPod } : {}),
      },
      onProgress,
      signal,
    );
    if (signal.aborted) return;
    const now = this.deps.now();
    if (result.ok) {
      const { message: _m, ...rest } = this.node(name);
      // The next step's own write (the action ID, or the node's end) carries this one.
      await this.setNode(name, transition(rest, 'Drained', now, { drain: result.progress }), true);
      this.event('Normal', 'Drained', `drained: ${result.progress.evicted} pods evicted`, name);
    } else {
      await this.failNode(name, 'DrainFailed', result.reason, { drain: result.progress });
    }
  }

  /**
   * The drain engine throws only when it cannot even list the node's pods (nothing evicted
   * yet): that is the API server being away, so try again instead of failing the node.
   */
  private async drainWithRetry(...args: Parameters<DrainFn>): Promise<DrainOutcome> {
    const signal = args[3];
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.deps.drain(...args);
      } catch (err) {
        if (signal.aborted) throw err;
        this.log.warn({ err, node: args[0], attempt }, 'drain could not start; retrying');
        await sleep(backoffMs(attempt, { baseMs: 1_000, maxMs: 30_000 }), undefined, { signal });
      }
    }
  }

  private async runAction(name: string, index: number, signal: AbortSignal): Promise<void> {
    const action = this.cr.spec.actions[index];
    if (action === undefined) return;
    let node = this.node(name);
    if (
      node.phase !== 'InAction' ||
      node.currentActionIndex !== index ||
      node.actionID === undefined
    ) {
      const attempt = 1;
      // Read before the reboot is sent and kept in status: "the node came back" means a bootID
      // other than this one, also for a coordinator restarted mid-reboot.
      const bootID =
        action.type === 'Reboot'
          ? (await this.deps.nodes.read(name))?.status?.nodeInfo?.bootID
          : undefined;
      // The ID is in status before anything is sent: a restarted coordinator re-sends the same
      // ID, and the agent's ledger makes the second send return the first result.
      const { message: _m, job: _j, ...previous } = node;
      node = transition(previous, 'InAction', this.deps.now(), {
        currentActionIndex: index,
        currentActionType: action.type,
        actionID: actionId(this.uid, name, index, attempt),
        attempt,
        ...(bootID === undefined ? {} : { bootIDBeforeReboot: bootID }),
      });
      await this.setNode(name, node);
      this.event(
        'Normal',
        'ActionStarted',
        `action ${index} (${action.name ?? action.type}) started`,
        name,
      );
    }
    const id = node.actionID ?? '';
    const done = async (fields: Partial<NodeStatus>) => {
      const current = this.node(name);
      const last = index + 1 >= this.cr.spec.actions.length || action.type === 'DeleteNode';
      const { actionID: _id, message: _m, job: _j, ...rest } = current;
      const next = last
        ? transition(rest, 'Succeeded', this.deps.now(), fields)
        : transition(rest, 'InAction', this.deps.now(), {
            ...fields,
            currentActionIndex: index + 1,
            currentActionType: this.cr.spec.actions[index + 1]?.type ?? '',
          });
      await this.setNode(name, next);
      this.event(
        'Normal',
        'ActionSucceeded',
        `action ${index} (${action.name ?? action.type}) succeeded` +
          (fields.message === undefined ? '' : `: ${fields.message}`),
        name,
      );
      if (last) {
        this.event('Normal', 'NodeSucceeded', 'maintenance of the node finished', name);
        this.deps.fleet.notifyChanged();
      }
    };

    switch (action.type) {
      case 'Complete': {
        await this.returnNode(node);
        await done({});
        return;
      }
      case 'DeleteNode':
        await this.deps.nodes.remove(name);
        await done({});
        return;
      case 'Notify': {
        const msg = action.notify;
        if (msg === undefined) throw new Error('Notify action without notify body');
        const outcome = await this.deps.notifier.send(
          { channel: msg.channel, text: `[${this.cr.spec.linearTicket}] ${name}: ${msg.message}` },
          signal,
        );
        this.event(
          outcome.delivered ? 'Normal' : 'Warning',
          outcome.delivered ? 'Notified' : 'NotifyFailed',
          outcome.delivered ? `${msg.channel}: ${msg.message}` : `${msg.channel}: ${outcome.error}`,
          name,
        );
        if (!outcome.delivered) {
          // Visible on the maintenance until a later Notify gets through.
          const now = this.deps.now();
          await this.deps.store.commit((s) => ({
            ...s,
            conditions: setCondition(
              s.conditions,
              {
                type: 'NotificationsDelivered',
                status: 'False',
                reason: 'WebhookFailed',
                message: `${name}: notify to ${msg.channel} failed: ${outcome.error}`,
              },
              now,
            ),
          }));
        }
        await done({});
        return;
      }
      default:
        break;
    }
    if (!NODE_LOCAL_ACTIONS.has(action.type)) throw new Error(`unknown action ${action.type}`);
    // A job (the step's pod) is committed before the wait for it; messages are progress.
    const report = async (p: ActionProgress): Promise<void> => {
      const current = this.node(name);
      if (signal.aborted || current.actionID !== id) return;
      const next = {
        ...current,
        ...(p.job === undefined ? {} : { job: p.job }),
        ...(p.message === undefined ? {} : { message: p.message }),
      };
      if (p.job !== undefined) await this.setNode(name, next);
      else if (p.message !== current.message) await this.setNode(name, next, true);
    };
    for (;;) {
      const { job } = this.node(name);
      const outcome = await this.deps.dispatcher.run({
        actionId: id,
        node: name,
        index,
        action,
        signal,
        ...(node.bootIDBeforeReboot === undefined
          ? {}
          : { bootIDBeforeReboot: node.bootIDBeforeReboot }),
        ...(job === undefined ? {} : { job }),
        maintenance: {
          namespace: this.cr.metadata.namespace ?? '',
          name: this.cr.metadata.name ?? '',
          uid: this.uid,
        },
        report,
        annotations: () => this.cr.metadata.annotations ?? {},
        maintenanceChanged: (s) =>
          once(this.versions, 'update', { signal: s }).then(
            () => undefined,
            () => undefined,
          ),
      });
      if (signal.aborted) return;
      if (outcome.kind === 'unavailable') {
        const current = this.node(name);
        if (current.message !== outcome.message) {
          await this.setNode(name, { ...current, message: outcome.message });
          this.event('Warning', outcome.reason ?? 'WaitingForAgent', outcome.message, name);
        }
        const aborted = await sleep(this.deps.agentRetryMs, undefined, { signal }).then(
          () => false,
          () => true,
        );
        if (aborted) return;
        continue;
      }
      const fields: Partial<NodeStatus> = {
        ...(outcome.exitCode === undefined ? {} : { lastExitCode: outcome.exitCode }),
        ...(outcome.outputTail === undefined ? {} : { outputTail: outcome.outputTail }),
      };
      if (outcome.kind === 'succeeded') {
        await done(
          outcome.message === undefined ? fields : { ...fields, message: outcome.message },
        );
      } else {
        await this.failNode(name, 'ActionFailed', outcome.message, fields);
      }
      await outcome.afterRecorded?.();
      return;
    }
  }

  /**
   * The NodeMaintenance is being deleted: stop, and return every node that is not finished to
   * the state it had before (finished nodes keep their final state).
   */
  async cancel(): Promise<void> {
    await this.stop();
    for (const n of this.status.nodes ?? []) {
      if (!isActive(n)) continue;
      await this.returnNode(n);
      const { job: _job, ...rest } = n;
      await this.setNode(
        n.name,
        transition(rest, 'Restored', this.deps.now(), { message: 'maintenance deleted' }),
      );
      this.event(
        'Normal',
        'NodeRestored',
        'maintenance deleted: node returned to its initial state',
        n.name,
      );
    }
    await this.deps.store.flush();
    this.deps.fleet.notifyChanged();
  }
}
