// ActionDispatcher over the agent link. A dispatched action waits for its result across agent
// disconnects: whenever the node's agent says hello again the start is re-sent with the same
// ID, and the agent's ledger either attaches to the running action or returns the recorded
// result. A Reboot is done when the agent reports the new boot AND the Node shows a new
// status.nodeInfo.bootID and is Ready; it is never sent to an agent already on a boot other than
// the one recorded before it (that reboot happened). A cancel (the maintenance deleted) waits
// for proof that the action runs no more, across disconnects too, for at most cancelConfirmMs.
import type { V1Node } from '@kubernetes/client-node';
import type { Action } from '../../shared/api/index.js';
import { parseDuration } from '../../shared/duration.js';
import type { Logger } from '../../shared/log.js';
import { setLongTimeout } from '../../shared/timers.js';
import {
  LEDGER_UNREADABLE,
  STATUS_TAIL_BYTES,
  tailBytes,
  type MessageOf,
  type WireAction,
} from '../../shared/protocol.js';
import {
  DEFAULT_CANCEL_CONFIRM_MS,
  type ActionDispatcher,
  type NodeActionOutcome,
  type NodeActionRequest,
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

/** Pure: the agent refused the ID because its record of it exists but cannot be read. */
export function isLedgerUnreadable(result: MessageOf<'action.result'>): boolean {
  return (
    result.outcome === 'failed' &&
    (result.reason === LEDGER_UNREADABLE || result.message.startsWith(`${LEDGER_UNREADABLE}:`))
  );
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
      if (isLedgerUnreadable(result)) {
        const message = result.message.startsWith(`${LEDGER_UNREADABLE}:`)
          ? result.message
          : `${LEDGER_UNREADABLE}: ${result.message}`;
        return { kind: 'failed', message, reason: LEDGER_UNREADABLE, ...fields };
      }
      return { kind: 'failed', message: `Failed: ${result.message}`, ...fields };
  }
}

/**
 * Pure: the agent runs on a boot other than the one recorded before the Reboot, so the reboot
 * happened and must not be sent again. Unknown on either side: no proof.
 */
export function rebootHappened(
  bootIDBefore: string | undefined,
  bootIDNow: string | undefined,
): boolean {
  return (
    bootIDBefore !== undefined &&
    bootIDBefore !== '' &&
    bootIDNow !== undefined &&
    bootIDNow !== '' &&
    bootIDNow !== bootIDBefore
  );
}

/** What a hello tells a cancel that waits for its confirmation. */
export interface HelloCancel {
  /** Send action.cancel on this connection. */
  readonly send: boolean;
  /** The action is known to run no more, and why; absent: still waiting. */
  readonly confirmed?: string;
  /** What the cancel still waits for (the message if it is never confirmed). */
  readonly waiting: string;
}

/**
 * Pure: a pending cancel meets the agent's hello, which lists the agent's ledger. `finished`
 * means the action ended; a `running` one gets the cancel, answered with its result. A missing
 * ID proves nothing: the list leaves out records the agent cannot read (whose action may still
 * run) and is cut at 256, so the cancel goes and waits. A Reboot cannot be cancelled: it is over
 * when the boot changed or the ledger says it ended.
 */
export function cancelOnHello(
  id: string,
  reboot: boolean,
  bootIDBefore: string | undefined,
  hello: Pick<MessageOf<'hello'>, 'bootID' | 'actions'>,
): HelloCancel {
  const state = hello.actions.find((a) => a.id === id)?.state;
  if (reboot) {
    if (rebootHappened(bootIDBefore, hello.bootID)) {
      return { send: false, confirmed: `the node rebooted (boot ${hello.bootID})`, waiting: '' };
    }
    if (state === 'finished') {
      return { send: false, confirmed: 'the agent recorded the reboot as ended', waiting: '' };
    }
    return { send: false, waiting: 'a Reboot already sent cannot be cancelled; no new boot yet' };
  }
  if (state === 'finished') {
    return { send: false, confirmed: 'the agent recorded the action as ended', waiting: '' };
  }
  if (state === undefined) {
    return {
      send: true,
      waiting: 'the agent does not list the action (never started, or its record unreadable)',
    };
  }
  return { send: true, waiting: 'the agent did not report the cancelled action ended' };
}

/**
 * Pure: a result for an ID being cancelled. Any result ends the action, but a refusal to read
 * the ledger says nothing about an earlier run.
 */
export function cancelByResult(result: MessageOf<'action.result'>): {
  confirmed: boolean;
  message: string;
} {
  if (isLedgerUnreadable(result)) {
    return { confirmed: false, message: result.message.slice(0, 512) };
  }
  if (result.outcome === 'cancelled') return { confirmed: true, message: 'the agent cancelled it' };
  return { confirmed: true, message: `it had ended (${result.outcome}) before the cancel` };
}

/** An ID in flight on a node: what the link's hello and results mean for it. */
interface Entry {
  readonly node: string;
  onHello(hello: MessageOf<'hello'>): void;
  onResult(result: MessageOf<'action.result'>): void;
}

/** How the dispatch of a start ended. */
type Dispatched =
  | { kind: 'result'; result: MessageOf<'action.result'> }
  /** A Reboot whose agent said hello on a new boot: it happened, nothing is re-sent. */
  | { kind: 'rebooted'; bootID: string }
  | { kind: 'timeout' }
  | { kind: 'aborted' };

/** The part of AgentLinkServer the dispatcher uses (a fake in the unit tests). */
export type AgentLink = Pick<AgentLinkServer, 'setHandlers' | 'send' | 'isConnected' | 'lastHello'>;

export interface LinkDispatcherDeps {
  readonly log: Logger;
  readonly server: AgentLink;
  readonly watchNode: NodeWatcher;
  /** A request's cancelConfirmMs when it has none (default DEFAULT_CANCEL_CONFIRM_MS). */
  readonly cancelConfirmMs?: number;
}

const stopped: NodeActionOutcome = { kind: 'unavailable', message: 'stopped' };

export class LinkDispatcher implements ActionDispatcher {
  /** By action ID: every run() waiting on it (a cancel may be asked twice). */
  private readonly pending = new Map<string, Set<Entry>>();
  /** Cancels waiting for confirmation: detach() ends them. */
  private readonly cancelling = new Set<() => void>();
  private detached = false;

  constructor(private readonly deps: LinkDispatcherDeps) {
    deps.server.setHandlers({
      onHello: (node, hello) => {
        for (const entry of [...this.pending.values()].flatMap((set) => [...set])) {
          if (entry.node === node) entry.onHello(hello);
        }
      },
      onResult: (node, result) => {
        for (const entry of [...(this.pending.get(result.id) ?? [])]) {
          if (entry.node === node) entry.onResult(result);
        }
      },
      expects: (node, id) => this.expects(node, id),
    });
  }

  /**
   * Whether action `id` was dispatched (or is being cancelled) on `node` and is waited on: the
   * link stores and forwards frames only about such actions, so an agent cannot grow the
   * coordinator with IDs of its own invention.
   */
  expects(node: string, id: string): boolean {
    for (const entry of this.pending.get(id) ?? []) {
      if (entry.node === node) return true;
    }
    return false;
  }

  private track(id: string, entry: Entry): void {
    const set = this.pending.get(id) ?? new Set();
    set.add(entry);
    this.pending.set(id, set);
  }

  private untrack(id: string, entry: Entry): void {
    const set = this.pending.get(id);
    set?.delete(entry);
    if (set?.size === 0) this.pending.delete(id);
  }

  /**
   * The coordinator is shutting down: aborts that follow are not cancellations, so no cancel
   * goes to the agents and their actions finish; the next coordinator collects the results.
   */
  detach(): void {
    this.detached = true;
    for (const end of [...this.cancelling]) end();
  }

  async run(req: NodeActionRequest): Promise<NodeActionOutcome> {
    const { server, log } = this.deps;
    const wire = toWire(req.action);
    if (!wire.ok) return { kind: 'failed', message: wire.why };
    if (req.signal.aborted) {
      // A cancel of a step no run() here follows (dispatched by an earlier leader, or waiting
      // for its agent). The agent's last hello is read as if it came now: what it can prove
      // (the action finished, a new boot) stays true; what it lists running gets the cancel.
      return this.detached ? stopped : this.cancel(req, server.lastHello(req.node));
    }
    if (!server.isConnected(req.node)) {
      return { kind: 'unavailable', message: `no agent connected for node ${req.node}` };
    }
    const timeoutMs = actionTimeoutMs(req.action);
    const deadline = Date.now() + timeoutMs + RESULT_GRACE_MS;
    const reboot = req.action.type === 'Reboot';
    const bootNow = server.lastHello(req.node)?.bootID;
    if (reboot && rebootHappened(req.bootIDBeforeReboot, bootNow)) {
      log.info(
        { node: req.node, id: req.actionId, before: req.bootIDBeforeReboot, now: bootNow },
        'the agent is on a new boot: the reboot happened; not sent again',
      );
      return this.waitNodeBack(req, deadline);
    }
    const body = { action: wire.wire, timeoutMs, retryable: false };
    const sent = await this.dispatch(req, body, deadline);
    switch (sent.kind) {
      case 'aborted':
        return this.detached ? stopped : this.cancel(req);
      case 'timeout':
        return {
          kind: 'failed',
          message: `no result from the agent of ${req.node} within ${Math.round(
            (timeoutMs + RESULT_GRACE_MS) / 1000,
          )} s`,
        };
      case 'rebooted':
        log.info(
          { node: req.node, id: req.actionId, bootID: sent.bootID },
          'the agent said hello on a new boot: the reboot happened; waiting for the Node',
        );
        return this.waitNodeBack(req, deadline);
      case 'result': {
        const outcome = toOutcome(sent.result);
        if (outcome.kind !== 'succeeded' || !reboot) return outcome;
        log.info(
          { node: req.node, id: req.actionId },
          'agent reports the reboot; waiting for the Node',
        );
        return this.waitNodeBack(req, deadline);
      }
    }
  }

  /** Sends the start (again on every hello, but a Reboot not to a new boot) until it ends. */
  private dispatch(
    req: NodeActionRequest,
    body: Record<string, unknown>,
    deadline: number,
  ): Promise<Dispatched> {
    const { server } = this.deps;
    const start = { id: req.actionId, ...body };
    return new Promise((resolve) => {
      const finish = (d: Dispatched): void => {
        timer.clear();
        req.signal.removeEventListener('abort', onAbort);
        this.untrack(req.actionId, entry);
        resolve(d);
      };
      const onAbort = (): void => {
        finish({ kind: 'aborted' });
      };
      // An action's timeout may be up to 720h: past what Node's setTimeout can wait.
      const timer = setLongTimeout(() => {
        finish({ kind: 'timeout' });
      }, deadline - Date.now());
      const entry: Entry = {
        node: req.node,
        onHello: (hello) => {
          if (
            req.action.type === 'Reboot' &&
            rebootHappened(req.bootIDBeforeReboot, hello.bootID)
          ) {
            finish({ kind: 'rebooted', bootID: hello.bootID });
            return;
          }
          server.send(req.node, 'action.start', start);
        },
        onResult: (result) => {
          finish({ kind: 'result', result });
        },
      };
      this.track(req.actionId, entry);
      if (req.signal.aborted) {
        onAbort();
        return;
      }
      req.signal.addEventListener('abort', onAbort, { once: true });
      server.send(req.node, 'action.start', start);
    });
  }

  /**
   * Cancels an action and waits for proof it runs no more: its result, the agent's ledger in a
   * hello (the cancel waits for the agent's next hello when it is not connected), or for a
   * Reboot, which cannot be cancelled, a new boot of the agent or the Node. `known`: the
   * connected agent's last hello, read as if it arrived now.
   */
  private cancel(
    req: NodeActionRequest,
    known?: Readonly<MessageOf<'hello'>>,
  ): Promise<NodeActionOutcome> {
    const { server, log } = this.deps;
    const ms = req.cancelConfirmMs ?? this.deps.cancelConfirmMs ?? DEFAULT_CANCEL_CONFIRM_MS;
    const reboot = req.action.type === 'Reboot';
    const id = req.actionId;
    let waiting = reboot
      ? 'a Reboot already sent cannot be cancelled; no new boot yet'
      : 'the agent did not report the cancelled action ended';
    return new Promise((resolve) => {
      const watch = new AbortController();
      let settled = false;
      const done = (outcome: NodeActionOutcome): void => {
        if (settled) return;
        settled = true;
        timer.clear();
        watch.abort();
        this.cancelling.delete(end);
        this.untrack(id, entry);
        resolve(outcome);
      };
      const finish = (confirmed: boolean, message: string): void => {
        if (settled) return;
        log.info({ node: req.node, id, confirmed, why: message }, 'cancel ended');
        done({ kind: 'cancelled', confirmed, message: message.slice(0, 1024) });
      };
      const end = (): void => {
        done(stopped);
      };
      const timer = setLongTimeout(() => {
        const link = server.isConnected(req.node) ? '' : '; the agent is not connected';
        finish(false, `cancel not confirmed within ${Math.round(ms / 1000)} s: ${waiting}${link}`);
      }, ms);
      const entry: Entry = {
        node: req.node,
        onHello: (hello) => {
          const d = cancelOnHello(id, reboot, req.bootIDBeforeReboot, hello);
          if (d.send) server.send(req.node, 'action.cancel', { id });
          if (d.confirmed !== undefined) finish(true, d.confirmed);
          else waiting = d.waiting;
        },
        onResult: (result) => {
          const c = cancelByResult(result);
          finish(c.confirmed, c.message);
        },
      };
      this.track(id, entry);
      this.cancelling.add(end);
      if (reboot) {
        this.watchBoot(req, watch.signal, (bootID) => {
          finish(true, `the node rebooted (boot ${bootID})`);
        });
      }
      if (known !== undefined) {
        entry.onHello(known);
      } else if (!reboot && !server.send(req.node, 'action.cancel', { id })) {
        log.info({ node: req.node, id }, 'agent not connected: the cancel goes at its hello');
      }
    });
  }

  /** Calls `onBoot` once the Node reports a boot other than the one before the reboot. */
  private watchBoot(
    req: NodeActionRequest,
    signal: AbortSignal,
    onBoot: (bootID: string) => void,
  ): void {
    if (req.bootIDBeforeReboot === undefined) return;
    this.deps.watchNode(
      req.node,
      (node) => {
        const bootID = node?.status?.nodeInfo?.bootID;
        if (rebootHappened(req.bootIDBeforeReboot, bootID)) onBoot(bootID ?? '');
      },
      signal,
    );
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
        // The reboot is known to have happened: a cancel has nothing left to stop.
        finish(
          this.detached
            ? stopped
            : { kind: 'cancelled', confirmed: true, message: 'the reboot had already happened' },
        );
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
