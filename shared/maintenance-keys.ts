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
