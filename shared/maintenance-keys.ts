// The marks noma puts on Nodes and NodeMaintenances while a maintenance runs. Shared by the
// coordinator (which sets them) and the CLI (which reads them).

/** Taint added to every node in maintenance, besides options.taints. */
export const MAINTENANCE_TAINT = { key: 'noma.dev/maintenance', effect: 'NoSchedule' } as const;

/** Node label: the name of the NodeMaintenance the node is in (sanitized to a label value). */
export const MAINTENANCE_LABEL = 'noma.dev/maintenance';

/** Node annotation: `<namespace>/<name>` of the NodeMaintenance the node is in. */
export const MAINTENANCE_ANNOTATION = 'noma.dev/maintenance';

/** Finalizer that lets the coordinator return nodes to their initial state on deletion. */
export const FINALIZER = 'noma.dev/finalizer';

/** A label value naming a maintenance: at most 63 characters of [A-Za-z0-9._-], alnum ends. */
export function maintenanceLabelValue(name: string): string {
  return name
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
}

/**
 * NodeMaintenance annotation: nodes to return to their initial state. Grammar: a
 * comma-separated list of node names, or `*` for every failed node. `noma restore` writes it; the
 * coordinator removes each name once it has acted on it.
 */
export const RESTORE_ANNOTATION = 'noma.dev/restore';

/**
 * NodeMaintenance annotation: failed nodes to run again from their failed step (next attempt
 * number). Grammar: a comma-separated list of node names. `noma retry` writes it; the
 * coordinator removes each name once it has acted on it.
 */
export const RETRY_ANNOTATION = 'noma.dev/retry';

/** The `*` of RESTORE_ANNOTATION: every failed node. */
export const ALL_FAILED = '*';

/** Pure: the entries of a restore/retry annotation (names, or `*`), without blanks or repeats. */
export function parseNodeList(value: string | undefined): string[] {
  if (value === undefined) return [];
  return [
    ...new Set(
      value
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== ''),
    ),
  ];
}

/** Pure: a restore/retry annotation value from its entries; undefined when there are none. */
export function formatNodeList(entries: readonly string[]): string | undefined {
  return entries.length === 0 ? undefined : [...new Set(entries)].join(',');
}

/**
 * Node annotation: the maintenance that holds the node, written in the same resourceVersion-
 * guarded patch that cordons it and removed when the node leaves the maintenance. JSON,
 * `{"maintenance":"<ns>/<name>","uid":"<uid>","phase":"<node phase>"}`; phase is the node's
 * phase when the claim was taken (`Cordoned`) or last changed (`Failed`). No run acts on a node
 * another maintenance claims. Other controllers (schedulers such as Run:ai) may watch it: a
 * node that carries it is in maintenance.
 */
export const CLAIM_ANNOTATION = 'noma.dev/claim';

/**
 * Node annotation: what a finished maintenance without `Complete` left on the node (its
 * cordon, if noma cordoned it, and its taints). JSON,
 * `{"maintenance":"<ns>/<name>","uid":"<uid>","unschedulable":true,"taints":[…]}`. A later
 * maintenance counts these as noma's own, so its `Complete` (or a restore) returns the node to
 * service; a cordon an admin made before stays.
 */
export const LEFT_BY_ANNOTATION = 'noma.dev/left-by';

/**
 * Node annotation: the unplanned-downtime taint the coordinator put on a node that stayed not
 * Ready (coordinator/downtime/). JSON,
 * `{"taint":{"key":…,"value":…,"effect":…},"downSince":"<RFC 3339>","taintedAt":"<RFC 3339>","agent":true}`;
 * `agent`: an agent was connected for the node before it went down, so the taint goes only
 * once it has reconnected. Written in the same resourceVersion-guarded patch as the taint and
 * removed with it: noma removes only a taint this records, and a new leader carries on from it.
 */
export const DOWNTIME_ANNOTATION = 'noma.dev/unplanned-downtime';

/**
 * On a Node: the taint (`key[=value]:Effect`) the coordinator added because the agent marked
 * the node's GPUs degraded (--degraded-gpu-taint). Only a taint recorded here is ever removed
 * by noma; one that was on the node before stays.
 */
export const DEGRADED_GPU_TAINT_ANNOTATION = 'noma.dev/degraded-gpu-taint';

/** The phase and initial state of a node, as far as a restore/retry request cares. */
interface RequestedNode {
  readonly phase: string;
  readonly initialState?: unknown;
}

/**
 * Pure, the one rule for both the CLI (before it writes) and the coordinator (before it acts):
 * a Failed node can be restored, and so can one not started yet (Pending, no initial state
 * recorded), which a restore takes out of the maintenance untouched.
 */
export const canRestore = (n: RequestedNode): boolean =>
  n.phase === 'Failed' || (n.phase === 'Pending' && n.initialState === undefined);

/** Pure: only a Failed node can be retried. */
export const canRetry = (n: RequestedNode): boolean => n.phase === 'Failed';
