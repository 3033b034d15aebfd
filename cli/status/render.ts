import {
  formatErrors,
  validateNodeMaintenance,
  type NodeMaintenance,
  type NodeStatus,
} from '../../shared/api/index.js';
import {
  RESTORE_ANNOTATION,
  RETRY_ANNOTATION,
  parseNodeList,
} from '../../shared/maintenance-keys.js';
import { renderTable } from '../table.js';

/** `3m`, `2h5m`, `4d`: how long ago, like kubectl's AGE column. */
export function age(since: string | undefined, now: Date): string {
  if (since === undefined) return '-';
  const sec = Math.max(0, Math.floor((now.getTime() - Date.parse(since)) / 1000));
  if (Number.isNaN(sec)) return '-';
  if (sec < 120) return `${sec}s`;
  const min = Math.floor(sec / 60);
  if (min < 60) return `${min}m`;
  const h = Math.floor(min / 60);
  if (h < 48) return min % 60 === 0 ? `${h}h` : `${h}h${min % 60}m`;
  return `${Math.floor(h / 24)}d`;
}

function truncate(text: string, max: number): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

function actionCell(n: NodeStatus, total: number): string {
  if (n.currentActionIndex === undefined) return '-';
  const type = n.currentActionType ?? '?';
  return `${n.currentActionIndex + 1}/${total} ${type}`;
}

function drainCell(n: NodeStatus): string {
  if (n.drain === undefined) return '-';
  const { evicted, total, pending } = n.drain;
  return pending > 0 ? `${evicted}/${total} (${pending} left)` : `${evicted}/${total}`;
}

function blockedCell(n: NodeStatus): string {
  const b = n.drain?.blockedBy;
  if (b === undefined) return '-';
  return `${b.kind} ${b.namespace === undefined ? '' : `${b.namespace}/`}${b.name}`;
}

/**
 * The nodes the coordinator's Stuck condition names: its message is "N node(s) stuck: a: why;
 * b: why…" (coordinator/controller/node-states.ts stuckCondition), the first three named.
 */
export function stuckNodes(m: NodeMaintenance): Set<string> {
  const c = m.status?.conditions?.find((x) => x.type === 'Stuck' && x.status === 'True');
  const list = c?.message?.replace(/^\d+ node\(s\) stuck: /, '') ?? '';
  const names = list
    .split('; ')
    .map((part) => /^([^\s:;]+): /.exec(part)?.[1])
    .filter((n): n is string => n !== undefined);
  return new Set(names);
}

function nodeRows(m: NodeMaintenance): string[][] {
  const total = m.spec.actions.length;
  const stuck = stuckNodes(m);
  const reported = m.status?.nodes ?? [];
  const seen = new Set(reported.map((n) => n.name));
  // Nodes the coordinator selected but has not reported on yet are waiting their turn.
  const waiting = (m.status?.observedNodes ?? []).filter((name) => !seen.has(name));
  return [
    ...reported.map((n) => [
      n.name,
      stuck.has(n.name) ? `${n.phase} STUCK` : n.phase,
      actionCell(n, total),
      drainCell(n),
      blockedCell(n),
      n.lastExitCode === undefined ? '-' : String(n.lastExitCode),
      truncate(n.message ?? n.drain?.blockedBy?.message ?? '', 60) || '-',
    ]),
    ...waiting.map((name) => [name, 'Pending', '-', '-', '-', '-', '-']),
  ];
}

/** What holds a maintenance (pause, failure budget) and the restores/retries queued on it. */
function holdLines(m: NodeMaintenance): string[] {
  const ref = `${m.metadata.name ?? ''} -n ${m.metadata.namespace ?? 'default'}`;
  const phase = m.status?.phase;
  const lines: string[] = [];
  if (m.spec.paused === true) {
    lines.push(
      phase === 'Paused'
        ? `  paused: no node starts or begins its next step; \`noma resume ${ref}\` goes on`
        : `  pausing: spec.paused is set; steps in flight finish first`,
    );
  }
  const stuck = m.status?.conditions?.find((c) => c.type === 'Stuck' && c.status === 'True');
  if (stuck !== undefined) {
    lines.push(
      `  STUCK: ${truncate(stuck.message ?? 'nodes stuck', 300)} (no progress for longer ` +
        "than the coordinator's --stuck-after; see the node's Events)",
    );
  }
  if (phase === 'Halted') {
    lines.push(
      `  halted: too many nodes failed; \`noma restore|retry ${ref} --node NODE\` or raise options.maxFailedNodes`,
    );
  }
  const annotations = m.metadata.annotations ?? {};
  for (const [what, key] of [
    ['restore', RESTORE_ANNOTATION],
    ['retry', RETRY_ANNOTATION],
  ] as const) {
    const queued = parseNodeList(annotations[key]).map((e) =>
      e === '*' ? 'every failed node' : e,
    );
    if (queued.length > 0) lines.push(`  queued ${what}: ${truncate(queued.join(', '), 100)}`);
  }
  return lines;
}

/** One maintenance: a summary line, its selector and steps, and a row per node. */
export function renderMaintenance(m: NodeMaintenance, now: Date): string {
  const s = m.status;
  const ns = m.metadata.namespace ?? 'default';
  const steps =
    m.spec.actions.map((a) => a.name ?? a.type).join(' → ') || '(cordon and drain only)';
  const lines = [
    `${ns}/${m.metadata.name ?? ''}   ${s?.phase ?? 'Pending'}   nodes ${s?.progress ?? '-'}   ticket ${m.spec.linearTicket}   age ${age(m.metadata.creationTimestamp, now)}`,
    `  selector: ${m.spec.nodeSelector}`,
    `  steps:    ${steps}`,
  ];
  for (const c of s?.conditions ?? []) {
    const reason = c.reason === undefined ? '' : ` ${c.reason}`;
    const message = c.message === undefined ? '' : `: ${truncate(c.message, 100)}`;
    lines.push(`  ${c.type}=${c.status}${reason}${message}`);
  }
  lines.push(...holdLines(m));
  const rows = nodeRows(m);
  let text = lines.join('\n') + '\n';
  if (s === undefined) {
    text += '  not started: no status yet (is the coordinator running?)\n';
  } else if (rows.length > 0) {
    const table = renderTable(
      ['NODE', 'PHASE', 'ACTION', 'DRAIN', 'BLOCKED BY', 'EXIT', 'MESSAGE'],
      rows,
    );
    text += table.replace(/^/gm, '  ').replace(/ +$/gm, '');
  }
  // In full, not in the truncated MESSAGE column: they are meant to be copied.
  for (const n of s?.nodes ?? []) {
    const job = n.job;
    if (n.phase !== 'InAction' || job?.execCommand === undefined) continue;
    text += `  ${n.name} shell:   ${job.execCommand}\n`;
    if (job.releaseCommand !== undefined) text += `  ${n.name} release: ${job.releaseCommand}\n`;
  }
  return text;
}

/** Maintenances sorted by namespace and name, separated by blank lines. */
export function renderStatus(items: readonly NodeMaintenance[], now: Date): string {
  if (items.length === 0) return 'no NodeMaintenances\n';
  const key = (m: NodeMaintenance) => `${m.metadata.namespace ?? ''}/${m.metadata.name ?? ''}`;
  return [...items]
    .sort((a, b) => (key(a) < key(b) ? -1 : 1))
    .map((m) => renderMaintenance(m, now))
    .join('\n');
}

/** Maintenances read from the API server, checked against the schema once, at the boundary. */
export interface Checked {
  readonly items: NodeMaintenance[];
  /** One warning per object that does not match the schema (it is left out). */
  readonly problems: string[];
}

export function checkMaintenances(raw: Iterable<unknown>): Checked {
  const result: Checked = { items: [], problems: [] };
  for (const obj of raw) {
    const valid = validateNodeMaintenance(obj);
    if (valid.ok) result.items.push(valid.value);
    else {
      const meta = (obj as { metadata?: { namespace?: string; name?: string } }).metadata;
      result.problems.push(
        `warning: ${meta?.namespace ?? '?'}/${meta?.name ?? '?'} does not match the NodeMaintenance schema (${truncate(formatErrors(valid.errors), 300)})`,
      );
    }
  }
  return result;
}

/** An object as `-o json|yaml` shows it: as read, less metadata.managedFields (like kubectl). */
export function withoutManagedFields(obj: unknown): unknown {
  const o = obj as { metadata?: Record<string, unknown> } | null;
  if (typeof o !== 'object' || o === null || o.metadata === undefined) return obj;
  const { managedFields: _, ...metadata } = o.metadata;
  return { ...o, metadata };
}

/**
 * `noma status -o json|yaml`: a named maintenance is the object itself; otherwise a kubectl
 * List (`apiVersion: v1, kind: List, items`), sorted by namespace and name.
 */
export function statusDocument(items: readonly NodeMaintenance[], named: boolean): unknown {
  const key = (m: NodeMaintenance) => `${m.metadata.namespace ?? ''}/${m.metadata.name ?? ''}`;
  const sorted = [...items].sort((a, b) => (key(a) < key(b) ? -1 : 1)).map(withoutManagedFields);
  if (named && sorted.length === 1) return sorted[0];
  return { apiVersion: 'v1', kind: 'List', items: sorted };
}
