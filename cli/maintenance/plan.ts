// Pure decisions of `noma restore` and `noma retry`: which nodes may be asked for, and the
// annotation value that asks for them. The commands only read, call these, and write.
import type { NodeMaintenance, NodeStatus } from '../../shared/api/index.js';
import {
  ALL_FAILED,
  canRestore,
  canRetry,
  RESTORE_ANNOTATION,
  RETRY_ANNOTATION,
  formatNodeList,
  parseNodeList,
} from '../../shared/maintenance-keys.js';

export type RequestKind = 'restore' | 'retry';

/** What the user asked for: named nodes, or (restore only) every failed node. */
export type NodeRequest =
  | { readonly kind: RequestKind; readonly nodes: readonly string[] }
  | { readonly kind: 'restore'; readonly allFailed: true };

export const annotationOf = (kind: RequestKind): string =>
  kind === 'restore' ? RESTORE_ANNOTATION : RETRY_ANNOTATION;

const otherKind = (kind: RequestKind): RequestKind => (kind === 'restore' ? 'retry' : 'restore');

export type Plan =
  | {
      readonly ok: true;
      /** The entries this request adds (names, or `*`); empty when all were already asked for. */
      readonly added: readonly string[];
      /** The entries that were already in the annotation. */
      readonly already: readonly string[];
      /** The annotation's new value (undefined only when there is nothing at all). */
      readonly value: string | undefined;
    }
  | { readonly ok: false; readonly problems: readonly string[] };

/** Pure: why `node` cannot be restored (or retried), or undefined when it can. */
function refusal(
  kind: RequestKind,
  name: string,
  node: NodeStatus | undefined,
): string | undefined {
  if (node === undefined) return `${name} is not a node of this maintenance`;
  if (kind === 'restore' ? canRestore(node) : canRetry(node)) return undefined;
  if (node.phase === 'Restored') return `${name} is already Restored`;
  if (kind === 'retry') return `${name} is ${node.phase}: only a Failed node can be retried`;
  const what = node.phase === 'Pending' ? 'Pending and already being cordoned' : node.phase;
  return `${name} is ${what}: only a Failed node, or one that has not started, can be restored`;
}

/** Pure: why a name asked for here is already queued in the other annotation, or undefined. */
function clash(kind: RequestKind, name: string, other: readonly string[]): string | undefined {
  const key = annotationOf(otherKind(kind));
  const fix = `remove it there first to ${kind} it instead`;
  if (other.includes(name))
    return `${name} is already queued for ${otherKind(kind)} (${key}); ${fix}`;
  // `*` (restore only) is every failed node, and only a failed node can be retried.
  if (kind === 'retry' && other.includes(ALL_FAILED)) {
    return `${name} is already queued for restore (${key}=${ALL_FAILED}, every failed node); ${fix}`;
  }
  return undefined;
}

function planNamed(m: NodeMaintenance, kind: RequestKind, names: readonly string[]): Plan {
  const annotations = m.metadata.annotations ?? {};
  const current = parseNodeList(annotations[annotationOf(kind)]);
  const other = parseNodeList(annotations[annotationOf(otherKind(kind))]);
  const byName = new Map((m.status?.nodes ?? []).map((n) => [n.name, n]));
  const problems: string[] = [];
  for (const name of names) {
    const why = refusal(kind, name, byName.get(name)) ?? clash(kind, name, other);
    if (why !== undefined) problems.push(why);
  }
  if (problems.length > 0) return { ok: false, problems };
  return merge(current, names);
}

function merge(current: readonly string[], asked: readonly string[]): Plan {
  const added = [...new Set(asked)].filter((e) => !current.includes(e));
  const already = [...new Set(asked)].filter((e) => current.includes(e));
  return { ok: true, added, already, value: formatNodeList([...current, ...added]) };
}

/** Pure: whether a request is acceptable for `m` as it is now, and the annotation it writes. */
export function planRequest(m: NodeMaintenance, req: NodeRequest): Plan {
  const name = `${m.metadata.namespace ?? 'default'}/${m.metadata.name ?? ''}`;
  if (m.metadata.deletionTimestamp !== undefined) {
    return {
      ok: false,
      problems: [`${name} is being deleted: the deletion returns its nodes to their initial state`],
    };
  }
  if (m.status?.nodes === undefined) {
    return {
      ok: false,
      problems: [`${name} has not selected its nodes yet: nothing to ${req.kind}`],
    };
  }
  if ('nodes' in req) return planNamed(m, req.kind, req.nodes);
  const failed = m.status.nodes.filter((n) => n.phase === 'Failed').map((n) => n.name);
  if (failed.length === 0) {
    return { ok: false, problems: [`no node of ${name} is Failed: nothing to restore`] };
  }
  const current = parseNodeList(m.metadata.annotations?.[RESTORE_ANNOTATION]);
  return merge(current, [ALL_FAILED]);
}

/**
 * Pure: the entries of `asked` that the coordinator has not acted on yet (still in the
 * annotation). `--wait` waits until this is empty.
 */
export function stillQueued(
  m: NodeMaintenance,
  kind: RequestKind,
  asked: readonly string[],
): string[] {
  const current = parseNodeList(m.metadata.annotations?.[annotationOf(kind)]);
  return asked.filter((e) => current.includes(e));
}

/** Pure: the node names of `--node` flags: repeatable, each may be a comma-separated list. */
export function splitNodeFlags(values: readonly string[]): string[] {
  return parseNodeList(values.join(','));
}

const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Pure: the names that are not valid Node names (RFC 1123 subdomains), e.g. a stray `*`. */
export function invalidNodeNames(names: readonly string[]): string[] {
  return names.filter((n) => n.length > 253 || !NODE_NAME.test(n));
}

/** What `--wait` sees: done (with what to print), or what it still waits for. */
export type Progress =
  | { readonly done: true; readonly text: string }
  | { readonly done: false; readonly waitingFor: string };

const phaseOf = (m: NodeMaintenance): string => m.status?.phase ?? 'Pending';
const finished = (m: NodeMaintenance): boolean =>
  m.status?.phase === 'Completed' || m.status?.phase === 'Failed';

/** Pure, for `pause --wait` and `resume --wait`: has the coordinator followed spec.paused? */
export function pauseProgress(m: NodeMaintenance, paused: boolean): Progress {
  if (finished(m)) return { done: true, text: `it has finished (phase ${phaseOf(m)})` };
  if (paused === (m.status?.phase === 'Paused')) {
    return { done: true, text: `phase ${phaseOf(m)}` };
  }
  return {
    done: false,
    waitingFor: paused ? `phase Paused (now ${phaseOf(m)})` : 'the phase to leave Paused',
  };
}

/** Pure, for `restore --wait` and `retry --wait`: has the coordinator taken every entry? */
export function queueProgress(
  m: NodeMaintenance,
  kind: RequestKind,
  asked: readonly string[],
): Progress {
  const left = stillQueued(m, kind, asked);
  if (left.length > 0) {
    return {
      done: false,
      waitingFor: `the coordinator to take ${left.join(', ')} from ${annotationOf(kind)}`,
    };
  }
  const nodes = asked.includes(ALL_FAILED)
    ? []
    : asked.map((n) => `${n} ${m.status?.nodes?.find((s) => s.name === n)?.phase ?? '?'}`);
  return { done: true, text: [...nodes, `phase ${phaseOf(m)}`].join(', ') };
}
