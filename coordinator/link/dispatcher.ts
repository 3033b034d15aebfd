// ActionDispatcher over the agent link. A dispatched action waits for its result across agent
// disconnects: whenever the node's agent says hello again the start is re-sent with the same
// ID, and the agent's ledger either attaches to the running action or returns the recorded
// result. A Reboot is done when the agent reports the new boot AND the Node shows a new
// status.nodeInfo.bootID and is Ready.
import type { V1Node } from '@kubernetes/client-node';
import type { Action } from '../../shared/api/index.js';
import { parseDuration } from '../../shared/duration.js';
import type { Logger } from '../../shared/log.js';
import { setLongTimeout } from '../../shared/timers.js';
import {
  STATUS_TAIL_BYTES,
  tailBytes,
  type MessageOf,
  type WireAction,
} from '../../shared/protocol.js';
import type {
  ActionDispatcher,
  NodeActionOutcome,
  NodeActionRequest,
} from '../actions/dispatcher.js';
import type { NodeWatcher } from '../nodes/node-watch.js';
import type { AgentLinkServer } from './server.js';

export const DEFAULT_ACTION_TIMEOUT_MS = 3_600_000;
export const DEFAULT_REBOOT_TIMEOUT_MS = 30 * 60_000;
/** Beyond the action's own timeout (which the agent enforces): room for reconnects. */
const RESULT_GRACE_MS = 2 * 60_000;

/** Pure: the part of an action the agent needs, or why it cannot run over the link. */
export function toWire(
  action: Action,
): { ok: true; wire: WireAction } | { ok: false; why: string } {
  switch (action.type) {
    case 'Script':
      if (action.script === undefined) return { ok: false, why: 'Script without body' };
      if (action.script.image !== undefined) {
        return { ok: false, why: 'Script with an image runs as a pod, not on the agent' };
      }
      return {
        ok: true,
        wire: { type: 'Script', script: action.script.script, args: action.script.args ?? [] },
      };
    case 'Run':
      if (action.run === undefined) return { ok: false, why: 'Run without body' };
      if (action.run.image !== undefined) {
        return { ok: false, why: 'Run with an image runs as a pod, not on the agent' };
      }
      return {
        ok: true,
        wire: { type: 'Run', command: [...action.run.command, ...(action.run.args ?? [])] },
      };
    case 'Reboot':
      return { ok: true, wire: { type: 'Reboot' } };
    default:
      return { ok: false, why: `${action.type} does not run on the agent` };
  }
}

export function actionTimeoutMs(action: Action): number {
  const def = action.type === 'Reboot' ? DEFAULT_REBOOT_TIMEOUT_MS : DEFAULT_ACTION_TIMEOUT_MS;
  if (action.timeout === undefined) return def;
  const ms = parseDuration(action.timeout);
  return ms === undefined || ms <= 0 ? def : ms;
}

/**
 * Pure: has the reboot landed on the Node — a bootID other than the one before it, and Ready?
 * Without a recorded bootID (none was known) Ready alone counts.
 */
export function rebootLanded(
  node: V1Node | undefined,
  bootIDBefore: string | undefined,
): { done: true } | { done: false; why: string } {
  if (node === undefined) return { done: false, why: 'the Node is gone' };
  const bootID = node.status?.nodeInfo?.bootID;
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  const rebooted = bootIDBefore === undefined || (bootID !== undefined && bootID !== bootIDBefore);
  if (rebooted && ready) return { done: true };
  return { done: false, why: rebooted ? 'not Ready' : `bootID still ${bootIDBefore}` };
}

/** Pure: an agent's result as the controller sees it. */
export function toOutcome(result: MessageOf<'action.result'>): NodeActionOutcome {
  const fields = {
    ...(result.exitCode === undefined ? {} : { exitCode: result.exitCode }),
    ...(result.outputTail === undefined
      ? {}
      : { outputTail: tailBytes(result.outputTail, STATUS_TAIL_BYTES) }),
  };
  switch (result.outcome) {
    case 'succeeded':
      return { kind: 'succeeded', ...fields };
    case 'interrupted':
      return { kind: 'failed', message: `Interrupted: ${result.message}`, ...fields };
    case 'timedOut':
      return { kind: 'failed', message: `TimedOut: ${result.message}`, ...fields };
    case 'cancelled':
      return { kind: 'failed', message: `Cancelled: ${result.message}`, ...fields };
    case 'failed':
      return { kind: 'failed', message: `Failed: ${result.message}`, ...fields };
  }
}

interface Pending {
  readonly node: string;
  readonly body: Record<string, unknown>;
  resolve(result: MessageOf<'action.result'>): void;
}

export interface LinkDispatcherDeps {
  readonly log: Logger;
  readonly server: AgentLinkServer;
  readonly watchNode: NodeWatcher;
}

export class LinkDispatcher implements ActionDispatcher {
  private readonly pending = new Map<string, Pending>();
  private detached = false;

  constructor(private readonly deps: LinkDispatcherDeps) {
    deps.server.setHandlers({
      onHello: (node) => {
        for (const [id, p] of this.pending) {
          if (p.node === node) deps.server.send(node, 'action.start', { id, ...p.body });
        }
      },
      onResult: (node, result) => {
        const p = this.pending.get(result.id);
        if (p === undefined || p.node !== node) return;
        p.resolve(result);
      },
    });
  }

  /**
   * The coordinator is shutting down: aborts that follow are not cancellations, so no cancel
   * goes to the agents and their actions finish; the next coordinator collects the results.
   */
  detach(): void {
    this.detached = true;
  }

  async run(req: NodeActionRequest): Promise<NodeActionOutcome> {
    const { server, log } = this.deps;
    const wire = toWire(req.action);
    if (!wire.ok) return { kind: 'failed', message: wire.why };
    if (!server.isConnected(req.node)) {
      return { kind: 'unavailable', message: `no agent connected for node ${req.node}` };
    }
    const timeoutMs = actionTimeoutMs(req.action);
    const body = { action: wire.wire, timeoutMs, retryable: false };
    const deadline = Date.now() + timeoutMs + RESULT_GRACE_MS;
    const result = await this.awaitResult(req, body, deadline);
    if (result === undefined) {
      if (req.signal.aborted) return { kind: 'unavailable', message: 'stopped' };
      return {
        kind: 'failed',
        message: `no result from the agent of ${req.node} within ${Math.round(
          (timeoutMs + RESULT_GRACE_MS) / 1000,
        )} s`,
      };
    }
    const outcome = toOutcome(result);
    if (outcome.kind !== 'succeeded' || req.action.type !== 'Reboot') return outcome;
    log.info(
      { node: req.node, id: req.actionId },
      'agent reports the reboot; waiting for the Node',
    );
    return this.waitNodeBack(req, deadline);
  }

  private awaitResult(
    req: NodeActionRequest,
    body: Record<string, unknown>,
    deadline: number,
  ): Promise<MessageOf<'action.result'> | undefined> {
    return new Promise((resolve) => {
      const finish = (r: MessageOf<'action.result'> | undefined): void => {
        timer.clear();
        req.signal.removeEventListener('abort', onAbort);
        if (this.pending.get(req.actionId) === entry) this.pending.delete(req.actionId);
        resolve(r);
      };
      const onAbort = (): void => {
        // Deleted maintenance: stop the action on the node. Shutdown: leave it running.
        if (!this.detached) this.deps.server.send(req.node, 'action.cancel', { id: req.actionId });
        finish(undefined);
      };
      // An action's timeout may be up to 720h: past what Node's setTimeout can wait.
      const timer = setLongTimeout(() => {
        finish(undefined);
      }, deadline - Date.now());
      const entry: Pending = { node: req.node, body, resolve: finish };
      this.pending.set(req.actionId, entry);
      if (req.signal.aborted) {
        onAbort();
        return;
      }
      req.signal.addEventListener('abort', onAbort, { once: true });
      this.deps.server.send(req.node, 'action.start', { id: req.actionId, ...body });
    });
  }

  /** Waits, on a watch of the Node, for its new boot to show and the node to be Ready. */
  private waitNodeBack(req: NodeActionRequest, deadline: number): Promise<NodeActionOutcome> {
    return new Promise((resolve) => {
      const stop = new AbortController();
      let last = 'not read yet';
      const finish = (outcome: NodeActionOutcome): void => {
        stop.abort();
        timer.clear();
        req.signal.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const onAbort = (): void => {
        finish({ kind: 'unavailable', message: 'stopped' });
      };
      const timer = setLongTimeout(() => {
        finish({ kind: 'failed', message: `node did not come back after the reboot: ${last}` });
      }, deadline - Date.now());
      if (req.signal.aborted) {
        onAbort();
        return;
      }
      req.signal.addEventListener('abort', onAbort, { once: true });
      this.deps.watchNode(
        req.node,
        (node) => {
          const landed = rebootLanded(node, req.bootIDBeforeReboot);
          if (landed.done) finish({ kind: 'succeeded' });
          else last = landed.why;
        },
        stop.signal,
      );
    });
  }
}
