import { stringify } from 'yaml';
import type { AgentConnection, NodeFacts, NodeHealth } from '../kube/node-facts.js';
import { age } from '../status/render.js';
import { renderTable } from '../table.js';

export interface ContextNode {
  readonly context: string;
  readonly node: NodeFacts;
  readonly health: NodeHealth;
  /**
   * The node's agent as the coordinator's `/agents` reports it: connected (the connection),
   * not connected (null), or unknown (undefined: the coordinator could not be asked).
   */
  readonly agentLink: AgentConnection | null | undefined;
}

/** The fields of `noma nodes -o json|yaml`: what the table shows, without abbreviations. */
export function nodeRecord({ context, node, health, agentLink }: ContextNode) {
  return {
    context,
    name: node.name,
    ready: node.ready,
    readyStatus: health.readyStatus ?? null,
    readyReason: health.readyReason ?? null,
    downSince: health.downSince ?? null,
    downtimeTaint: health.downtimeTaint ?? null,
    downtimeTaintedAt: health.downtimeTaintedAt ?? null,
    schedulable: node.schedulable,
    inMaintenance: node.inMaintenance,
    maintenance: node.maintenance ?? null,
    phase: health.phase ?? null,
    controlPlane: node.controlPlane,
    tier: node.tier ?? null,
    gpuSku: node.sku ?? null,
    gpus: node.gpus,
    gpuHealth: health.gpuHealth ?? null,
    gpuHealthDetail: health.gpuHealthDetail ?? null,
    /** `labeled`: the agent has written its labels on the node (from the Node alone). */
    agent: node.agent,
    /** From the coordinator's `/agents`; null when it could not be asked. */
    agentConnected: agentLink === undefined ? null : agentLink !== null,
    agentConnectedAt: agentLink?.connectedAt ?? null,
    agentLastHeartbeat: agentLink?.lastHeartbeat ?? null,
  };
}

export type NodesFormat = 'table' | 'json' | 'yaml';

const HEADER = [
  'NAME',
  'STATUS',
  'DOWN',
  'DOWNTIME',
  'TIER',
  'GPU',
  'GPUS',
  'HEALTH',
  'SCHEDULABLE',
  'MAINTENANCE',
  'PHASE',
  'AGENT',
];

/** One table row; narrow cells, `-` where nothing is known or nothing applies. */
function tableCells({ node, health, agentLink }: ContextNode, now: Date): string[] {
  return [
    node.name,
    (node.ready ? 'Ready' : 'NotReady') + (node.controlPlane ? ',control-plane' : ''),
    health.downSince === undefined ? '-' : age(health.downSince, now),
    health.downtimeTaint === undefined ? '-' : 'tainted',
    node.tier ?? '-',
    node.sku ?? '-',
    String(node.gpus),
    health.gpuHealth ?? '-',
    node.schedulable ? 'yes' : 'no',
    node.maintenance ?? (node.inMaintenance ? 'yes' : 'no'),
    health.phase ?? '-',
    agentLink === undefined ? '-' : agentLink === null ? 'no' : 'yes',
  ];
}

/** Nodes sorted by context then name; the CONTEXT column only when several were asked. */
export function renderNodes(
  rows: readonly ContextNode[],
  format: NodesFormat,
  showContext: boolean,
  now: Date = new Date(),
): string {
  const sorted = [...rows].sort((a, b) =>
    a.context === b.context ? (a.node.name < b.node.name ? -1 : 1) : a.context < b.context ? -1 : 1,
  );
  if (format === 'json') return JSON.stringify(sorted.map(nodeRecord), null, 2) + '\n';
  if (format === 'yaml') return stringify(sorted.map(nodeRecord));
  const table = sorted.map((row) => {
    const cells = tableCells(row, now);
    return showContext ? [row.context, ...cells] : cells;
  });
  return renderTable(showContext ? ['CONTEXT', ...HEADER] : HEADER, table);
}
