// Node-local actions (Script, Run, Reboot, InteractiveShell) run on the node: through the agent
// link, or as a pod pinned to the node (an `image`, InteractiveShell). The controller only knows
// this interface; routing.ts picks the implementation per action.
import type { Action, NodeStatus } from '../../shared/api/index.js';

/** The pod that runs a step, as status.nodes[].job records it. */
export type ActionJob = NonNullable<NodeStatus['job']>;

/** What an action tells the run while it is going on; the run writes it into status. */
export interface ActionProgress {
  /** The step runs as this pod (status: nodes[].job, pendingJobs, jobTimeoutAt). */
  readonly job?: ActionJob;
  /** What the step waits for, e.g. the pod Pending: ImagePullBackOff. */
  readonly message?: string;
}

export interface NodeActionRequest {
  /** `<cr uid>/<node>/<action index>/<attempt>`: the agent runs an ID at most once. */
  readonly actionId: string;
  readonly node: string;
  readonly index: number;
  readonly action: Action;
  readonly signal: AbortSignal;
  /** Reboot: the Node's status.nodeInfo.bootID before the reboot (from status). */
  readonly bootIDBeforeReboot?: string;
  /** The step's job as status records it: a pod was (or was about to be) created for it. */
  readonly job?: ActionJob;
  readonly maintenance: { readonly namespace: string; readonly name: string; readonly uid: string };
  /**
   * After an abort that is a cancel (not detach()): how long run() waits for the step to be
   * known stopped before it resolves `cancelled` with confirmed: false. Default: the
   * dispatcher's, DEFAULT_CANCEL_CONFIRM_MS unless it was built with another.
   */
  readonly cancelConfirmMs?: number;
  /** Resolves once the progress is in status (a job is committed, a message coalesced). */
  report(progress: ActionProgress): Promise<void>;
  /** The NodeMaintenance's annotations as of now (an InteractiveShell's release). */
  annotations(): Readonly<Record<string, string>>;
  /** Resolves when a new version of the NodeMaintenance arrives, or `signal` aborts. */
  maintenanceChanged(signal: AbortSignal): Promise<void>;
}

interface Finished {
  exitCode?: number;
  outputTail?: string;
  /** Removes what the step left behind (its pod): called once the result is in status. */
  afterRecorded?: () => Promise<void>;
}

/** How long a cancelled step may take to be known stopped, unless the request says. */
export const DEFAULT_CANCEL_CONFIRM_MS = 30_000;

/** Why a step failed, when it is not the action's own failure (status: the node's reason). */
export type FailedReason = 'LedgerUnreadable';

export type NodeActionOutcome =
  | ({ kind: 'succeeded'; message?: string } & Finished)
  | ({ kind: 'failed'; message: string; reason?: FailedReason } & Finished)
  /** Nothing can run it now (no agent connected): the node waits and the step is retried. */
  | { kind: 'unavailable'; message: string; reason?: string }
  /**
   * The run was aborted to cancel the step (the maintenance deleted; detach() was not called).
   * confirmed: the step is known to run no more — the agent's result for the ID arrived (it
   * was cancelled, or had ended), the agent's hello lists it finished, the pod is gone (not
   * merely Terminating) or had terminated, the reboot is known to have happened (new boot).
   * Not confirmed: none of that within cancelConfirmMs, or the agent cannot read its record
   * of the ID (LedgerUnreadable), so it may still be running (the node must not go back to
   * service). `message` says which, at most 1 KiB.
   */
  | { kind: 'cancelled'; confirmed: boolean; message: string };

export interface ActionDispatcher {
  /**
   * Runs the step until its outcome. When req.signal aborts: after detach() it resolves
   * `unavailable` ('stopped') at once and leaves the step running; otherwise it cancels the
   * step and resolves `cancelled` within cancelConfirmMs (plus an API call's time). Called with
   * a signal already aborted, it starts nothing and cancels a step that may run without a
   * run() following it (an earlier leader's, one waiting for its agent).
   */
  run(req: NodeActionRequest): Promise<NodeActionOutcome>;
  /**
   * The maintenance with this UID is finished or deleted: remove whatever of its steps is left
   * (pods whose result was recorded by a coordinator that died before deleting them).
   */
  forget?(maintenanceUid: string): Promise<void>;
  /**
   * The coordinator is shutting down: aborts from now on leave running steps running, and a
   * cancel still waiting for its confirmation resolves `unavailable` ('stopped') at once.
   */
  detach?(): void;
}

/** Until the agent link exists: every node-local action waits, saying why. */
export const noAgentLink: ActionDispatcher = {
  run: (req) =>
    Promise.resolve(
      req.signal.aborted
        ? // Nothing without a link can have sent it: a cancel is confirmed at once.
          {
            kind: 'cancelled',
            confirmed: true,
            message: `no agent link: ${req.action.type} was never sent to ${req.node}`,
          }
        : {
            kind: 'unavailable',
            message: `no agent link for node ${req.node}: ${req.action.type} waits for its agent`,
          },
    ),
};

export const NODE_LOCAL_ACTIONS: ReadonlySet<Action['type']> = new Set([
  'Script',
  'Run',
  'Reboot',
  'InteractiveShell',
]);

export const actionId = (uid: string, node: string, index: number, attempt: number): string =>
  `${uid}/${node}/${index}/${attempt}`;
