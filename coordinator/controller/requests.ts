// Pure: what the restore and retry annotations of a NodeMaintenance ask for, checked against
// its status. The run acts on what is accepted, says why the rest is refused, and removes every
// entry it decided on from the annotation (so a request is acted on once).
import type { NodeStatus } from '../../shared/api/index.js';
import { ALL_FAILED, canRestore, canRetry } from '../../shared/maintenance-keys.js';

export interface Refusal {
  readonly node: string;
  readonly request: 'restore' | 'retry';
  readonly reason: string;
}

export interface RequestPlan {
  /** Failed or not-started nodes to return to their initial state. */
  readonly restore: string[];
  /** Failed nodes to run again from their failed step. */
  readonly retry: string[];
  readonly refused: Refusal[];
  /** Entries decided on (acted on or refused): to be removed from each annotation. */
  readonly doneRestore: string[];
  readonly doneRetry: string[];
}

function refusal(n: NodeStatus | undefined, request: Refusal['request']): string {
  if (n === undefined) return 'not a node of this maintenance';
  if (request === 'retry') return `only a Failed node can be retried (it is ${n.phase})`;
  return `only a Failed node or one not started yet can be restored (it is ${n.phase})`;
}

export function planRequests(
  nodes: readonly NodeStatus[],
  restoreEntries: readonly string[],
  retryEntries: readonly string[],
): RequestPlan {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const plan: RequestPlan = {
    restore: [],
    retry: [],
    refused: [],
    doneRestore: [...restoreEntries],
    doneRetry: [...retryEntries],
  };
  for (const entry of restoreEntries) {
    if (entry === ALL_FAILED) {
      for (const n of nodes) if (n.phase === 'Failed') plan.restore.push(n.name);
      continue;
    }
    const n = byName.get(entry);
    if (n !== undefined && canRestore(n)) plan.restore.push(n.name);
    else plan.refused.push({ node: entry, request: 'restore', reason: refusal(n, 'restore') });
  }
  const restoring = new Set(plan.restore);
  for (const entry of retryEntries) {
    const n = byName.get(entry);
    if (n !== undefined && canRetry(n) && !restoring.has(entry)) plan.retry.push(entry);
    else {
      const reason = restoring.has(entry) ? 'also asked to be restored' : refusal(n, 'retry');
      plan.refused.push({ node: entry, request: 'retry', reason });
    }
  }
  plan.restore.splice(0, plan.restore.length, ...new Set(plan.restore));
  return plan;
}
