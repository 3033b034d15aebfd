// Node-local actions (Script, Run, Reboot, InteractiveShell) run on the node, through the agent
// link. The controller only knows this interface; the agent link implements it.
import type { Action } from '../../shared/api/index.js';

export interface NodeActionRequest {
  /** `<cr uid>/<node>/<action index>/<attempt>`: the agent runs an ID at most once. */
  readonly actionId: string;
  readonly node: string;
  readonly index: number;
  readonly action: Action;
  readonly signal: AbortSignal;
  /** Reboot: the Node's status.nodeInfo.bootID before the reboot (from status). */
  readonly bootIDBeforeReboot?: string;
}

export type NodeActionOutcome =
  | { kind: 'succeeded'; exitCode?: number; outputTail?: string }
  | { kind: 'failed'; message: string; exitCode?: number; outputTail?: string }
  /** Nothing can run it now (no agent connected): the node waits and the step is retried. */
  | { kind: 'unavailable'; message: string };

export interface ActionDispatcher {
  run(req: NodeActionRequest): Promise<NodeActionOutcome>;
}

/** Until the agent link exists: every node-local action waits, saying why. */
export const noAgentLink: ActionDispatcher = {
  run: (req) =>
    Promise.resolve({
      kind: 'unavailable',
      message: `no agent link for node ${req.node}: ${req.action.type} waits for its agent`,
    }),
};

export const NODE_LOCAL_ACTIONS: ReadonlySet<Action['type']> = new Set([
  'Script',
  'Run',
  'Reboot',
  'InteractiveShell',
]);

export const actionId = (uid: string, node: string, index: number, attempt: number): string =>
  `${uid}/${node}/${index}/${attempt}`;
