import { stringify } from 'yaml';
import type { NodeFacts } from '../kube/node-facts.js';
import { renderTable } from '../table.js';

export interface ContextNode {
  readonly context: string;
  readonly node: NodeFacts;
}

/** The fields of `noma nodes -o json|yaml`: what the table shows, without abbreviations. */
export function nodeRecord({ context, node }: ContextNode) {
  return {
    context,
    name: node.name,
    ready: node.ready,
    schedulable: node.schedulable,
    inMaintenance: node.inMaintenance,
    maintenance: node.maintenance ?? null,
    controlPlane: node.controlPlane,
    tier: node.tier ?? null,
    gpuSku: node.sku ?? null,
    gpus: node.gpus,
    agent: node.agent,
  };
}

export type NodesFormat = 'table' | 'json' | 'yaml';

/** Nodes sorted by context then name; the CONTEXT column only when several were asked. */
export function renderNodes(
  rows: readonly ContextNode[],
  format: NodesFormat,
  showContext: boolean,
): string {
  const sorted = [...rows].sort((a, b) =>
    a.context === b.context ? (a.node.name < b.node.name ? -1 : 1) : a.context < b.context ? -1 : 1,
  );
  if (format === 'json') return JSON.stringify(sorted.map(nodeRecord), null, 2) + '\n';
  if (format === 'yaml') return stringify(sorted.map(nodeRecord));
  const header = ['NAME', 'STATUS', 'TIER', 'GPU', 'GPUS', 'SCHEDULABLE', 'MAINTENANCE', 'AGENT'];
  const table = sorted.map(({ context, node }) => {
    const cells = [
      node.name,
      (node.ready ? 'Ready' : 'NotReady') + (node.controlPlane ? ',control-plane' : ''),
      node.tier ?? '-',
      node.sku ?? '-',
      String(node.gpus),
      node.schedulable ? 'yes' : 'no',
      node.maintenance ?? (node.inMaintenance ? 'yes' : 'no'),
      node.agent,
    ];
    return showContext ? [context, ...cells] : cells;
  });
  return renderTable(showContext ? ['CONTEXT', ...header] : header, table);
}
