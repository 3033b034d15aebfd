import {
  API_VERSION,
  DURATION_PATTERN,
  KIND,
  TICKET_PATTERN,
  formatErrors,
  validateNodeMaintenance,
  type Action,
  type NodeMaintenance,
  type NodeMaintenanceSpec,
} from '../../shared/api/index.js';
import { MAX_DURATION, parseDuration } from '../../shared/duration.js';
import { labelKeyError, labelValueError } from '../../shared/labels.js';
import { UsageError, type Result } from '../errors.js';
import { SELECTED_FOR_LABEL } from '../kube/node-facts.js';
import { hostnameSelector, selectorError } from '../kube/selector.js';

/** `noma init`'s flags as commander hands them over: strings and booleans, unchecked. */
export interface InitFlags {
  name?: string | undefined;
  ticket?: string | undefined;
  namespace?: string | undefined;
  nodes?: string | undefined;
  selector?: string | undefined;
  nodeCount?: string | undefined;
  forceDrain?: boolean | undefined;
  drainTimeout?: string | undefined;
  skipWaitForDeleteTimeout?: string | undefined;
  drainNonGpuPods?: boolean | undefined;
  /** `--delete-emptydir-data`, spelled as commander camel-cases it. */
  deleteEmptydirData?: boolean | undefined;
  evictUnmanagedPods?: boolean | undefined;
  maxUnavailable?: string | undefined;
  maxFailedNodes?: string | undefined;
  allowControlPlane?: boolean | undefined;
  taint?: string[] | undefined;
  complete?: boolean | undefined;
}

/** The action of an `init` subcommand; none for the hand-edited template. */
export type InitAction =
  | { type: 'Script'; file: string; text: string; args: string[]; image?: string; timeout?: string }
  | { type: 'Run'; command: string[]; image?: string; timeout?: string }
  | { type: 'Reboot' }
  | { type: 'DeleteNode' };

/** How the nodes are chosen: a fixed selector, or `--node-count` (resolved on the cluster). */
export type Selection =
  | { kind: 'nodes'; nodes: string[] }
  | { kind: 'selector'; selector: string }
  | { kind: 'count'; count: number; pool: string | undefined };

export interface InitPlan {
  readonly manifest: NodeMaintenance;
  readonly selection: Selection;
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const TAINT = /^([^=:]+)(?:=([^:]*))?:(NoSchedule|PreferNoSchedule|NoExecute)$/;
const durationRe = new RegExp(DURATION_PATTERN);
const ticketRe = new RegExp(TICKET_PATTERN);

type Errors = UsageError[];

function checkName(flags: InitFlags, errors: Errors): string {
  const name = flags.name;
  if (name === undefined || name === '') {
    errors.push(
      new UsageError('--name', 'is required (the NodeMaintenance name, e.g. reboot-gpu)'),
    );
    return '';
  }
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    errors.push(
      new UsageError(
        '--name',
        `"${name}" must be lowercase letters, digits, "-" and "." (a DNS name)`,
      ),
    );
  } else if (flags.nodeCount !== undefined && labelValueError(name) !== undefined) {
    errors.push(
      new UsageError(
        '--name',
        `"${name}" must be at most 63 characters with --node-count (it becomes a label value)`,
      ),
    );
  }
  return name;
}

function checkTicket(ticket: string | undefined, errors: Errors): string {
  if (ticket === undefined || ticket === '') {
    errors.push(
      new UsageError('--ticket', 'is required: every maintenance needs a ticket, e.g. ENG-1234'),
    );
    return '';
  }
  if (!ticketRe.test(ticket) || ticket.length > 64) {
    errors.push(new UsageError('--ticket', `"${ticket}" is not a ticket ID like ENG-1234`));
  }
  return ticket;
}

function checkNodes(list: string, errors: Errors): string[] {
  const nodes = list.split(',').map((n) => n.trim());
  const bad = nodes.find((n) => n === '' || labelValueError(n) !== undefined);
  if (bad !== undefined) {
    errors.push(
      new UsageError(
        '--nodes',
        bad === '' ? 'has an empty node name' : `"${bad}" is not a node name`,
      ),
    );
  }
  return [...new Set(nodes)];
}

function checkSelector(selector: string, errors: Errors): string {
  const err = selectorError(selector);
  if (err !== undefined) errors.push(new UsageError('--selector', err));
  return selector.trim();
}

/**
 * Exactly one of --nodes, --selector and --node-count chooses the nodes; --selector may narrow
 * the pool that --node-count picks from ("4 of the H100 nodes").
 */
function checkSelection(flags: InitFlags, errors: Errors): Selection | undefined {
  const { nodes, selector, nodeCount } = flags;
  if (nodes === undefined && selector === undefined && nodeCount === undefined) {
    errors.push(
      new UsageError('--nodes', 'choose the nodes with one of --nodes, --selector or --node-count'),
    );
    return undefined;
  }
  if (nodes !== undefined && (selector !== undefined || nodeCount !== undefined)) {
    const other = selector !== undefined ? '--selector' : '--node-count';
    errors.push(new UsageError(other, 'cannot be combined with --nodes; use one'));
    return undefined;
  }
  if (nodes !== undefined) return { kind: 'nodes', nodes: checkNodes(nodes, errors) };
  if (nodeCount === undefined)
    return { kind: 'selector', selector: checkSelector(selector ?? '', errors) };
  const count = /^[0-9]+$/.test(nodeCount) ? Number(nodeCount) : NaN;
  if (!(count >= 1)) {
    errors.push(
      new UsageError('--node-count', `"${nodeCount}" must be a whole number of nodes >= 1`),
    );
  }
  const pool = selector === undefined ? undefined : checkSelector(selector, errors);
  return { kind: 'count', count, pool };
}

function parseTaint(spec: string, errors: Errors) {
  const m = TAINT.exec(spec);
  if (!m) {
    errors.push(
      new UsageError(
        '--taint',
        `"${spec}" must be key=value:Effect or key:Effect (Effect: NoSchedule, PreferNoSchedule, NoExecute)`,
      ),
    );
    return undefined;
  }
  const [, key = '', value, effect] = m;
  const err = labelKeyError(key) ?? (value === undefined ? undefined : labelValueError(value));
  if (err !== undefined) errors.push(new UsageError('--taint', `"${spec}": ${err}`));
  return {
    key,
    ...(value === undefined ? {} : { value }),
    effect: effect as 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute',
  };
}

/** A count (2) or a percentage (25%), as the CRD's int-or-string fields take them. */
function countOrPercent(flag: string, v: string, errors: Errors): number | string | undefined {
  if (/^[0-9]+$/.test(v)) return Number(v);
  if (/^[0-9]+%$/.test(v)) return v;
  errors.push(new UsageError(flag, `"${v}" must be a count (2) or a percentage (25%)`));
  return undefined;
}

/** A Go duration within noma's bound, checked here so the error names the flag. */
function checkDuration(flag: string, v: string, example: string, errors: Errors): void {
  if (!durationRe.test(v)) {
    errors.push(new UsageError(flag, `"${v}" is not a duration like ${example}`));
  } else if (parseDuration(v) === undefined) {
    errors.push(new UsageError(flag, `"${v}" is longer than ${MAX_DURATION} (30 days)`));
  }
}

function checkDrainTimeout(v: string | undefined, errors: Errors): string | undefined {
  if (v !== undefined) checkDuration('--drain-timeout', v, '30m or 1h30m', errors);
  return v;
}

// Keys are set in the schema's order, so the YAML reads like the CRD's documentation.
function checkOptions(flags: InitFlags, errors: Errors): NodeMaintenanceSpec['options'] {
  const options: NonNullable<NodeMaintenanceSpec['options']> = {};
  if (flags.forceDrain === true) options.forceDrain = true;
  const drainTimeout = checkDrainTimeout(flags.drainTimeout, errors);
  if (drainTimeout !== undefined) options.drainTimeout = drainTimeout;
  if (flags.drainNonGpuPods === true) options.drainNonGpuPods = true;
  if (flags.deleteEmptydirData === true) options.deleteEmptyDirData = true;
  if (flags.evictUnmanagedPods === true) options.evictUnmanagedPods = true;
  if (flags.maxUnavailable !== undefined) {
    const v = countOrPercent('--max-unavailable', flags.maxUnavailable, errors);
    if (v !== undefined) options.maxUnavailable = v;
  }
  if (flags.maxFailedNodes !== undefined) {
    const v = countOrPercent('--max-failed-nodes', flags.maxFailedNodes, errors);
    if (v !== undefined) options.maxFailedNodes = v;
  }
  const taints = (flags.taint ?? []).map((t) => parseTaint(t, errors));
  if (taints.length > 0) options.taints = taints.filter((t) => t !== undefined);
  const skipWait = flags.skipWaitForDeleteTimeout;
  if (skipWait !== undefined) {
    checkDuration('--skip-wait-for-delete-timeout', skipWait, '1m or 30s', errors);
    options.skipWaitForDeleteTimeout = skipWait;
  }
  if (flags.allowControlPlane === true) options.allowControlPlane = true;
  return Object.keys(options).length > 0 ? options : undefined;
}

function checkTimeout(timeout: string | undefined, errors: Errors): void {
  if (timeout !== undefined) checkDuration('--timeout', timeout, '45m or 2h', errors);
}

function checkImage(image: string | undefined, errors: Errors): void {
  if (image?.trim() === '') errors.push(new UsageError('--image', 'must not be empty'));
}

function toActions(action: InitAction | undefined, complete: boolean, errors: Errors): Action[] {
  const actions: Action[] = [];
  const common = (a: { image?: string; timeout?: string }) => {
    checkImage(a.image, errors);
    checkTimeout(a.timeout, errors);
    return a.image === undefined ? {} : { image: a.image };
  };
  switch (action?.type) {
    case undefined:
      break;
    case 'Script':
      if (action.text.trim() === '')
        errors.push(new UsageError('<file>', `${action.file} is empty`));
      actions.push({
        type: 'Script',
        name: action.file.replace(/^.*\//, '').slice(0, 128),
        ...(action.timeout === undefined ? {} : { timeout: action.timeout }),
        script: {
          script: action.text,
          ...(action.args.length > 0 ? { args: action.args } : {}),
          ...common(action),
        },
      });
      break;
    case 'Run':
      actions.push({
        type: 'Run',
        ...(action.timeout === undefined ? {} : { timeout: action.timeout }),
        run: { command: action.command, ...common(action) },
      });
      break;
    case 'Reboot':
      actions.push({ type: 'Reboot' });
      break;
    case 'DeleteNode':
      if (complete) {
        errors.push(
          new UsageError(
            '--complete',
            'cannot be combined with delete-node: a deleted node does not return to service',
          ),
        );
      }
      actions.push({ type: 'DeleteNode' });
      break;
  }
  if (complete && action?.type !== 'DeleteNode') actions.push({ type: 'Complete' });
  return actions;
}

/** The selector written into the manifest for a selection. */
export function selectorFor(selection: Selection, name: string): string {
  switch (selection.kind) {
    case 'nodes':
      return hostnameSelector(selection.nodes);
    case 'selector':
      return selection.selector;
    case 'count':
      return `${SELECTED_FOR_LABEL}=${name}`;
  }
}

/**
 * Turns `noma init`'s flags into a NodeMaintenance, checking every flag and reporting all
 * mistakes by flag name. Pure: `--node-count` only decides the selector here (a label the
 * command then puts on the nodes it picks).
 */
export function buildManifest(flags: InitFlags, action: InitAction | undefined): Result<InitPlan> {
  const errors: Errors = [];
  const name = checkName(flags, errors);
  const ticket = checkTicket(flags.ticket, errors);
  const selection = checkSelection(flags, errors);
  if (
    flags.namespace !== undefined &&
    !(flags.namespace.length <= 63 && DNS_LABEL.test(flags.namespace))
  ) {
    errors.push(new UsageError('--namespace', `"${flags.namespace}" is not a namespace name`));
  }
  const options = checkOptions(flags, errors);
  const actions = toActions(action, flags.complete === true, errors);
  if (errors.length > 0 || selection === undefined) return { ok: false, errors };

  const manifest: NodeMaintenance = {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name, ...(flags.namespace === undefined ? {} : { namespace: flags.namespace }) },
    spec: {
      operationName: name,
      linearTicket: ticket,
      nodeSelector: selectorFor(selection, name),
      ...(options === undefined ? {} : { options }),
      actions,
    },
  };
  // The flag checks above should make this unreachable; it guards against the two drifting
  // apart, since the schema is what the API server enforces.
  const valid = validateNodeMaintenance(manifest);
  if (!valid.ok) {
    return { ok: false, errors: [new UsageError('manifest', formatErrors(valid.errors))] };
  }
  return { ok: true, value: { manifest: valid.value, selection } };
}
