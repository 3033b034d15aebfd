import type { AgentConnection, NodeFacts, NodeHealth } from '../kube/node-facts.js';
import { renderDocument } from '../output.js';
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

export const NODES_FORMATS = ['table', 'wide', 'json', 'yaml'] as const;
export type NodesFormat = (typeof NODES_FORMATS)[number];

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

/** `-o wide` adds these, after the table's: the why and when behind its cells. */
const WIDE_HEADER = ['REASON', 'TAINTED', 'LABELS', 'CONNECTED', 'HEARTBEAT', 'GPU DETAIL'];

function oneLine(value: unknown, max: number): string {
  if (value === undefined || value === null) return '-';
  const text = (typeof value === 'string' ? value : JSON.stringify(value)).replace(/\s+/g, ' ');
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** The wide columns: Ready's reason, ages of the taint and of the agent's link, GPU detail. */
function wideCells({ node, health, agentLink }: ContextNode, now: Date): string[] {
  return [
    health.readyReason ?? '-',
    age(health.downtimeTaintedAt, now),
    node.agent,
    agentLink === undefined ? '-' : agentLink === null ? 'no' : age(agentLink.connectedAt, now),
    agentLink === undefined || agentLink === null ? '-' : age(agentLink.lastHeartbeat, now),
    oneLine(health.gpuHealthDetail, 60),
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
  if (format === 'json' || format === 'yaml') return renderDocument(sorted.map(nodeRecord), format);
  const wide = format === 'wide';
  const table = sorted.map((row) => {
    const cells = wide ? [...tableCells(row, now), ...wideCells(row, now)] : tableCells(row, now);
    return showContext ? [row.context, ...cells] : cells;
  });
  const header = wide ? [...HEADER, ...WIDE_HEADER] : HEADER;
  return renderTable(showContext ? ['CONTEXT', ...header] : header, table);
}
