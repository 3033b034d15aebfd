import type { NodeMaintenanceSpec } from '../../shared/api/index.js';
import type { NodeFacts } from '../kube/node-facts.js';
import { renderTable } from '../table.js';

const dash = (v: string | undefined) => (v === undefined || v === '' ? '-' : v);

/**
 * What a maintenance would touch, for `noma init --preview`: the nodes the selector matches
 * today and what runs on them, with warnings for nodes the coordinator would refuse or that
 * another maintenance holds. `expected` (from --nodes) reports names that match nothing;
 * `options` are the manifest's (allowControlPlane turns the control-plane warning into a note).
 */
export function renderPreview(
  selector: string,
  nodes: readonly NodeFacts[],
  expected: readonly string[] = [],
  options: NodeMaintenanceSpec['options'] = {},
): string {
  const sorted = [...nodes].sort((a, b) => (a.name < b.name ? -1 : 1));
  let text = `selector ${JSON.stringify(selector)} matches ${sorted.length} node(s) now:\n`;
  if (sorted.length > 0) {
    text += renderTable(
      ['NAME', 'TIER', 'GPU', 'GPUS', 'GPU PODS', 'READY', 'SCHEDULABLE', 'AGENT'],
      sorted.map((n) => [
        n.name,
        dash(n.tier),
        dash(n.sku),
        String(n.gpus),
        String(n.gpuPods),
        n.ready ? 'yes' : 'no',
        n.schedulable ? 'yes' : 'no',
        n.agent,
      ]),
    );
  }
  const warnings: string[] = [];
  const found = new Set(sorted.map((n) => n.name));
  for (const name of expected) {
    if (!found.has(name)) warnings.push(`node ${name} does not exist in this cluster`);
  }
  for (const n of sorted) {
    if (n.controlPlane) {
      warnings.push(
        options.allowControlPlane === true
          ? `node ${n.name} is a control-plane node (allowed by --allow-control-plane)`
          : `node ${n.name} is a control-plane node: the coordinator refuses it unless --allow-control-plane (spec.options.allowControlPlane) is given`,
      );
    }
    if (n.inMaintenance) warnings.push(`node ${n.name} is already in maintenance`);
    if (!n.ready) warnings.push(`node ${n.name} is not Ready`);
  }
  if (sorted.length === 0) warnings.push('no node matches: the maintenance would do nothing');
  return text + warnings.map((w) => `warning: ${w}\n`).join('');
}
