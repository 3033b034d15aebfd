import type { NodeFacts } from '../kube/node-facts.js';

export interface Ranked {
  readonly node: NodeFacts;
  /** Why it ranks lower than a free node, for the `--dry-run` listing. */
  readonly note: string;
}

export interface Ranking {
  /** Eligible nodes, best first. */
  readonly ranked: readonly Ranked[];
  /** Nodes that cannot be picked, and why. */
  readonly excluded: readonly { node: NodeFacts; reason: string }[];
}

function exclusion(n: NodeFacts): string | undefined {
  if (n.gpus <= 0) return 'no GPUs';
  if (n.controlPlane) return 'control plane';
  if (!n.ready) return 'not Ready';
  if (n.inMaintenance) return 'in maintenance';
  if (!n.schedulable) return 'cordoned';
  return undefined;
}

/**
 * Ranks GPU nodes by availability for maintenance `name`: schedulable, Ready, not in
 * maintenance and not control plane; then nodes already picked for another maintenance last
 * (so two `--node-count` runs do not pick the same nodes), then fewest GPUs requested by live
 * pods (least work disrupted), then by name so the choice is reproducible.
 */
export function rankNodes(nodes: readonly NodeFacts[], name: string): Ranking {
  const excluded: { node: NodeFacts; reason: string }[] = [];
  const eligible: NodeFacts[] = [];
  for (const node of nodes) {
    const reason = exclusion(node);
    if (reason === undefined) eligible.push(node);
    else excluded.push({ node, reason });
  }
  const reservedElsewhere = (n: NodeFacts) =>
    n.selectedFor !== undefined && n.selectedFor !== name ? 1 : 0;
  eligible.sort(
    (a, b) =>
      reservedElsewhere(a) - reservedElsewhere(b) ||
      a.gpusRequested - b.gpusRequested ||
      (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  const ranked = eligible.map((node) => ({
    node,
    note:
      reservedElsewhere(node) === 1
        ? `already selected for ${node.selectedFor ?? ''}`
        : `${node.gpusRequested}/${node.gpus} GPUs requested`,
  }));
  excluded.sort((a, b) => (a.node.name < b.node.name ? -1 : 1));
  return { ranked, excluded };
}

export type Pick =
  | { ok: true; chosen: readonly NodeFacts[]; ranking: Ranking }
  | { ok: false; message: string; ranking: Ranking };

/** The `count` most available nodes, or why there are not that many. */
export function pickNodes(nodes: readonly NodeFacts[], count: number, name: string): Pick {
  const ranking = rankNodes(nodes, name);
  if (ranking.ranked.length < count) {
    return {
      ok: false,
      ranking,
      message: `only ${ranking.ranked.length} GPU node(s) are available, ${count} requested`,
    };
  }
  return { ok: true, chosen: ranking.ranked.slice(0, count).map((r) => r.node), ranking };
}
