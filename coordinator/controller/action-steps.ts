// The action steps of a NodeMaintenance, one handler per action type. MaintenanceRun decides
// when a step runs (admission, pause, failure budget, drains); this file does the step and
// records how it ended, through the run's StepHost.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Action, NodeMaintenance, NodeStatus } from '../../shared/api/index.js';
import { parseDuration } from '../../shared/duration.js';
import { actionId, type ActionProgress } from '../actions/dispatcher.js';
import { runsAsPod } from '../actions/pod-job.js';
import type { EventType } from '../events.js';
import { setCondition, transition } from './model.js';
import type { RunDeps } from './run.js';

const DEFAULT_AGENT_TIMEOUT = '15m';
const DEFAULT_AGENT_TIMEOUT_MS = 15 * 60_000;

/** options.agentTimeout in ms (default 15m). */
export function agentTimeoutMs(value: string | undefined): number {
  return value === undefined
    ? DEFAULT_AGENT_TIMEOUT_MS
    : (parseDuration(value) ?? DEFAULT_AGENT_TIMEOUT_MS);
}

/**
 * How much longer a step may wait for its node's agent, in ms, when it has waited since
 * `since` (status.nodes[].agentWaitSince, so a restarted coordinator goes on counting); 0 or
 * less: the wait is over and the node fails. An unreadable `since` starts the wait now.
 */
export function agentWaitLeftMs(since: string | undefined, now: Date, timeoutMs: number): number {
  const start = since === undefined ? NaN : Date.parse(since);
  return Number.isNaN(start) ? timeoutMs : start + timeoutMs - now.getTime();
}

/** One step of one node, as it starts (its action ID recorded). */
export interface ActionStep {
  readonly name: string;
  readonly index: number;
  readonly action: Action;
  /** The node's entry as the step started. */
  readonly node: NodeStatus;
  readonly signal: AbortSignal;
}

/** What the steps need of the run that owns them. */
export interface StepHost {
  readonly deps: Pick<
    RunDeps,
    | 'nodes'
    | 'dispatcher'
    | 'notifier'
    | 'store'
    | 'now'
    | 'agentRetryMs'
    | 'drain'
    | 'skipPod'
    | 'clearRequests'
    | 'fleet'
  >;
  cr(): NodeMaintenance;
  uid(): string;
  node(name: string): NodeStatus;
  setNode(name: string, next: NodeStatus, progressOnly?: boolean): Promise<void>;
  event(type: EventType, reason: string, message: string, node?: string): void;
  failNode(
    name: string,
    reason: string,
    message: string,
    fields?: Partial<NodeStatus>,
  ): Promise<void>;
  /** The last step succeeded: the node leaves the maintenance. */
  finishNode(name: string, fields: Partial<NodeStatus>): Promise<void>;
  /** Undoes what noma did to the node (Complete). */
  returnNode(node: NodeStatus): Promise<void>;
  /** Resolves when a new version of the NodeMaintenance arrives, or `signal` aborts. */
  maintenanceChanged(signal: AbortSignal): Promise<void>;
  /** A deletion cancelled the step: whether the dispatcher knows it stopped (run.cancel). */
  stepCancelled(actionId: string, outcome: { confirmed: boolean; message: string }): void;
}

export class ActionSteps {
  constructor(private readonly host: StepHost) {}

  /** Runs the step with the handler of its type. */
  run(step: ActionStep): Promise<void> {
    return this.#handlers[step.action.type](step);
  }

  /** Records the start of a step: its ID is in status before anything is sent. */
  async start(name: string, index: number, action: Action): Promise<NodeStatus> {
    const node = this.host.node(name);
    // A retried step carries its next attempt number in from the retry request.
    const attempt = node.currentActionIndex === index ? (node.attempt ?? 1) : 1;
    // Read before the reboot is sent and kept in status: "the node came back" means a bootID
    // other than this one, also for a coordinator restarted mid-reboot.
    const bootID =
      action.type === 'Reboot'
        ? (await this.host.deps.nodes.read(name))?.status?.nodeInfo?.bootID
        : undefined;
    // The ID is in status before anything is sent: a restarted coordinator re-sends the same
    // ID, and the agent's ledger makes the second send return the first result.
    const { message: _m, job: _j, agentWaitSince: _w, ...previous } = node;
    const next = transition(previous, 'InAction', this.host.deps.now(), {
      currentActionIndex: index,
      currentActionType: action.type,
      actionID: actionId(this.host.uid(), name, index, attempt),
      attempt,
      ...(bootID === undefined ? {} : { bootIDBeforeReboot: bootID }),
    });
    await this.host.setNode(name, next);
    this.host.event(
      'Normal',
      'ActionStarted',
      `action ${index} (${action.name ?? action.type})${attempt > 1 ? `, attempt ${attempt},` : ''} started`,
      name,
    );
    return next;
  }

  /** One handler per action type. */
  readonly #handlers: Record<Action['type'], (step: ActionStep) => Promise<void>> = {
    Complete: (step) => this.#completeStep(step),
    DeleteNode: (step) => this.#deleteNodeStep(step),
    Notify: (step) => this.#notifyStep(step),
    Script: (step) => this.#nodeLocalStep(step),
    Run: (step) => this.#nodeLocalStep(step),
    Reboot: (step) => this.#nodeLocalStep(step),
    InteractiveShell: (step) => this.#nodeLocalStep(step),
  };

  /** The step succeeded: on to the next one, or the node is finished. */
  async #actionSucceeded(step: ActionStep, fields: Partial<NodeStatus>): Promise<void> {
    const { name, index, action } = step;
    const last = index + 1 >= this.host.cr().spec.actions.length || action.type === 'DeleteNode';
    this.host.event(
      'Normal',
      'ActionSucceeded',
      `action ${index} (${action.name ?? action.type}) succeeded` +
        (fields.message === undefined ? '' : `: ${fields.message}`),
      name,
    );
    if (last) {
      await this.host.finishNode(name, fields);
      return;
    }
    const {
      actionID: _id,
      message: _m,
      job: _j,
      attempt: _a,
      agentWaitSince: _w,
      ...rest
    } = this.host.node(name);
    await this.host.setNode(
      name,
      transition(rest, 'InAction', this.host.deps.now(), {
        ...fields,
        currentActionIndex: index + 1,
        currentActionType: this.host.cr().spec.actions[index + 1]?.type ?? '',
      }),
    );
  }

  async #completeStep(step: ActionStep): Promise<void> {
    await this.host.returnNode(step.node);
    await this.#actionSucceeded(step, {});
  }

  async #deleteNodeStep(step: ActionStep): Promise<void> {
    await this.host.deps.nodes.remove(step.name);
    await this.#actionSucceeded(step, {});
  }

  async #notifyStep(step: ActionStep): Promise<void> {
    const { name, signal } = step;
    const msg = step.action.notify;
    if (msg === undefined) throw new Error('Notify action without notify body');
    const outcome = await this.host.deps.notifier.send(
      {
        channel: msg.channel,
        text: `[${this.host.cr().spec.linearTicket}] ${name}: ${msg.message}`,
      },
      signal,
    );
    this.host.event(
      outcome.delivered ? 'Normal' : 'Warning',
      outcome.delivered ? 'Notified' : 'NotifyFailed',
      outcome.delivered ? `${msg.channel}: ${msg.message}` : `${msg.channel}: ${outcome.error}`,
      name,
    );
    if (!outcome.delivered) {
      // Visible on the maintenance until a later Notify gets through.
      const now = this.host.deps.now();
      await this.host.deps.store.commit((s) => ({
        ...s,
        conditions: setCondition(
          s.conditions,
          {
            type: 'NotificationsDelivered',
            status: 'False',
            reason: 'WebhookFailed',
            message: `${name}: notify to ${msg.channel} failed: ${outcome.error}`.slice(0, 4096),
          },
          now,
        ),
      }));
    }
    await this.#actionSucceeded(step, {});
  }

  /** Script, Run, Reboot, InteractiveShell: through the dispatcher (agent link or a pod). */
  async #nodeLocalStep(step: ActionStep): Promise<void> {
    const { name, index, action, signal } = step;
    const id = step.node.actionID ?? '';
    for (;;) {
      const { job, bootIDBeforeReboot, agentWaitSince } = this.host.node(name);
      const running = this.host.deps.dispatcher.run({
        actionId: id,
        node: name,
        index,
        action,
        signal,
        ...(bootIDBeforeReboot === undefined ? {} : { bootIDBeforeReboot }),
        ...(job === undefined ? {} : { job }),
        maintenance: {
          namespace: this.host.cr().metadata.namespace ?? '',
          name: this.host.cr().metadata.name ?? '',
          uid: this.host.uid(),
        },
        report: (p) => this.#reportProgress(name, id, p, signal),
        annotations: () => this.host.cr().metadata.annotations ?? {},
        maintenanceChanged: (s) => this.host.maintenanceChanged(s),
      });
      if (agentWaitSince !== undefined) void this.#endAgentWait(name, id, running);
      const outcome = await running;
      if (outcome.kind === 'cancelled') this.host.stepCancelled(id, outcome);
      if (signal.aborted || outcome.kind === 'cancelled') return;
      if (outcome.kind === 'unavailable') {
        if (!(await this.#waitForAgent(step, outcome))) return;
        continue;
      }
      const fields: Partial<NodeStatus> = {
        ...(outcome.exitCode === undefined ? {} : { lastExitCode: outcome.exitCode }),
        ...(outcome.outputTail === undefined ? {} : { outputTail: outcome.outputTail }),
      };
      if (outcome.kind === 'succeeded') {
        await this.#actionSucceeded(
          step,
          outcome.message === undefined ? fields : { ...fields, message: outcome.message },
        );
      } else {
        await this.host.failNode(name, outcome.reason ?? 'ActionFailed', outcome.message, fields);
      }
      await outcome.afterRecorded?.();
      return;
    }
  }

  /**
   * A dispatcher without an agent answers `unavailable` at once; one still busy after a second
   * has handed the step over, and the wait is over: a coordinator restarted later while the
   * step runs must not count the agent's reconnection against the old wait.
   */
  async #endAgentWait(name: string, id: string, running: Promise<unknown>): Promise<void> {
    const ac = new AbortController();
    const first = await Promise.race([
      running.then(
        () => 'answered' as const,
        () => 'answered' as const,
      ),
      sleep(1_000, 'handed over' as const, { signal: ac.signal, ref: false }).catch(
        () => 'answered' as const,
      ),
    ]);
    ac.abort();
    const current = this.host.node(name);
    if (first === 'answered' || current.actionID !== id || current.agentWaitSince === undefined)
      return;
    const { agentWaitSince: _w, message: _m, ...rest } = current;
    await this.host.setNode(name, rest);
  }

  /** A job (the step's pod) is committed before the wait for it; messages are progress. */
  async #reportProgress(
    name: string,
    id: string,
    p: ActionProgress,
    signal: AbortSignal,
  ): Promise<void> {
    const current = this.host.node(name);
    if (signal.aborted || current.actionID !== id) return;
    const next = {
      ...current,
      ...(p.job === undefined ? {} : { job: p.job }),
      ...(p.message === undefined ? {} : { message: p.message }),
    };
    if (p.job !== undefined) await this.host.setNode(name, next);
    else if (p.message !== current.message) await this.host.setNode(name, next, true);
  }

  /**
   * Says why the step cannot run now and waits; false when the run stopped meanwhile or the node
   * failed. A step for the node's agent waits at most options.agentTimeout, counted from
   * agentWaitSince; a step that runs as a pod needs no agent and waits for the API server.
   */
  async #waitForAgent(
    step: ActionStep,
    outcome: { message: string; reason?: string },
  ): Promise<boolean> {
    const { name, action, signal } = step;
    const current = this.host.node(name);
    const now = this.host.deps.now();
    const timed = !runsAsPod(action);
    const since = timed ? (current.agentWaitSince ?? now.toISOString()) : undefined;
    const option = this.host.cr().spec.options?.agentTimeout;
    const left = timed ? agentWaitLeftMs(since, now, agentTimeoutMs(option)) : Infinity;
    if (left <= 0) {
      const message =
        `AgentUnavailable: ${outcome.message.slice(0, 512)}; waited ` +
        `${option ?? DEFAULT_AGENT_TIMEOUT} (agentTimeout) since ${since ?? ''}`;
      await this.host.failNode(name, 'AgentUnavailable', message);
      return false;
    }
    if (current.message !== outcome.message || current.agentWaitSince !== since) {
      // Not progress-only: agentWaitSince must survive a restart of the coordinator.
      await this.host.setNode(name, {
        ...current,
        message: outcome.message,
        ...(since === undefined ? {} : { agentWaitSince: since }),
      });
      if (current.message !== outcome.message)
        this.host.event('Warning', outcome.reason ?? 'WaitingForAgent', outcome.message, name);
    }
    // Past the deadline by a hair, so the next look finds it passed.
    const delay = Math.min(this.host.deps.agentRetryMs, left + 5);
    return sleep(delay, undefined, { signal }).then(
      () => true,
      () => false,
    );
  }
}
