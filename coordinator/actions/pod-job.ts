// Actions that run as a pod pinned to the node (Script or Run with an `image`, InteractiveShell),
// as pure functions: which actions, the pod's name and manifest, what its status means, the
// commands a human is shown, and the release annotation. pod-runner.ts does the API calls.
import { createHash } from 'node:crypto';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { GROUP, PLURAL, type Action } from '../../shared/api/index.js';
import { parseDuration } from '../../shared/duration.js';
import { maintenanceLabelValue } from '../../shared/maintenance-keys.js';
import { STATUS_TAIL_BYTES, tailBytes } from '../../shared/protocol.js';
import type { NodeActionOutcome } from './dispatcher.js';

// On the NodeMaintenance, a comma-separated list of `<node>/<action index>`, `<node>`,
// `*/<action index>` or `*`: see isReleased().
export const RELEASE_ANNOTATION = 'noma.dev/release';

export const POD_LABELS = {
  'app.kubernetes.io/name': 'noma',
  'app.kubernetes.io/component': 'action',
} as const;
/** Selects every action pod of the coordinator (its watch, the cleanup). */
export const POD_SELECTOR = Object.entries(POD_LABELS)
  .map(([k, v]) => `${k}=${v}`)
  .join(',');
export const MAINTENANCE_UID_LABEL = 'noma.dev/maintenance-uid';
export const NODE_LABEL = 'noma.dev/node';
export const ACTION_INDEX_LABEL = 'noma.dev/action-index';
/** The full action ID: a pod found under the expected name must carry it, or it is not ours. */
export const ACTION_ID_ANNOTATION = 'noma.dev/action-id';
export const MAINTENANCE_ANNOTATION = 'noma.dev/maintenance';

export const HOST_ROOT = '/host';
export const ACTION_CONTAINER = 'action';
export const SHELL_CONTAINER = 'shell';
export const SHELL = '/bin/sh';
/** argv[0] of a Script in a pod, as the agent names it on the host ($0 in the script). */
export const SCRIPT_ARGV0 = 'noma-script';

export const DEFAULT_POD_ACTION_TIMEOUT_MS = 3_600_000;
/** A shell waits for a human: long enough for a working day, short enough to be noticed. */
export const DEFAULT_SHELL_TIMEOUT_MS = 24 * 3_600_000;
/** The kubelet's own deadline trails ours, so a pod outlives a coordinator that is down. */
const KUBELET_DEADLINE_GRACE_S = 300;
/** Lines asked of pods/log; the status keeps the last STATUS_TAIL_BYTES of them. */
export const LOG_TAIL_LINES = 200;
export const LOG_LIMIT_BYTES = 64 * 1024;

/** Script/Run with an image, and InteractiveShell, run as pods; the rest goes to the agent. */
export function runsAsPod(action: Action): boolean {
  switch (action.type) {
    case 'Script':
      return action.script?.image !== undefined;
    case 'Run':
      return action.run?.image !== undefined;
    case 'InteractiveShell':
      return true;
    default:
      return false;
  }
}

export function podActionTimeoutMs(action: Action): number {
  const def =
    action.type === 'InteractiveShell' ? DEFAULT_SHELL_TIMEOUT_MS : DEFAULT_POD_ACTION_TIMEOUT_MS;
  if (action.timeout === undefined) return def;
  const ms = parseDuration(action.timeout);
  return ms === undefined || ms <= 0 ? def : ms;
}

/**
 * Deterministic, so a restarted coordinator finds the pod it created instead of creating a
 * second one: `noma-<node>-<index>-<hash of the action ID>`, at most 63 characters (a pod's
 * hostname is cut there).
 */
export function podName(actionId: string, node: string, index: number): string {
  const hash = createHash('sha256').update(actionId).digest('hex').slice(0, 10);
  const slug = node
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .slice(0, 40)
    .replace(/^-+|-+$/g, '');
  return `noma-${slug === '' ? '' : `${slug}-`}${index}-${hash}`;
}

/**
 * The kubelet expands `$(VAR)` in command and args and turns `$$` into `$`; doubling every `$`
 * hands the user's text to the program exactly as written.
 */
export function escapeKubeExpansion(text: string): string {
  return text.replace(/\$/g, () => '$$');
}

export interface MaintenanceRef {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
}

export interface PodJobInput {
  readonly name: string;
  readonly namespace: string;
  readonly node: string;
  readonly index: number;
  readonly actionId: string;
  readonly action: Action;
  readonly maintenance: MaintenanceRef;
  readonly timeoutMs: number;
}

type ContainerPart = Pick<V1Container, 'name' | 'image' | 'command' | 'args' | 'stdin' | 'tty'>;

/** The container that does the work, or why this action cannot run as a pod. */
function container(
  action: Action,
): { ok: true; container: ContainerPart } | { ok: false; why: string } {
  const esc = (xs: readonly string[]) => xs.map(escapeKubeExpansion);
  switch (action.type) {
    case 'Script': {
      const body = action.script;
      if (body?.image === undefined) return { ok: false, why: 'Script without an image' };
      return {
        ok: true,
        container: {
          name: ACTION_CONTAINER,
          image: body.image,
          // The script is bash's program text, its args are bash's positional parameters:
          // nothing but bash interprets them.
          command: esc(['bash', '-c', body.script, SCRIPT_ARGV0, ...(body.args ?? [])]),
        },
      };
    }
    case 'Run': {
      const body = action.run;
      if (body?.image === undefined) return { ok: false, why: 'Run without an image' };
      return {
        ok: true,
        container: {
          name: ACTION_CONTAINER,
          image: body.image,
          command: esc(body.command),
          ...(body.args === undefined || body.args.length === 0 ? {} : { args: esc(body.args) }),
        },
      };
    }
    case 'InteractiveShell': {
      const body = action.interactiveShell;
      if (body === undefined) return { ok: false, why: 'InteractiveShell without a body' };
      return {
        ok: true,
        container: {
          name: SHELL_CONTAINER,
          image: body.image,
          // A shell reading an open stdin that nobody writes to stays up until released (and
          // `kubectl attach` reaches it); humans get their own shells with `kubectl exec`.
          command: [SHELL],
          stdin: true,
          tty: body.tty === true,
        },
      };
    }
    default:
      return { ok: false, why: `${action.type} does not run as a pod` };
  }
}

/**
 * The pod: pinned to the node (nodeName: no scheduler, so cordon and NoSchedule taints do not
 * keep it off), tolerating every taint (NoExecute ones like options.taints would evict it), in
 * the host's PID, network and IPC namespaces, privileged, the host's root at /host, like
 * `kubectl debug node/… --profile=sysadmin`. No ServiceAccount token: the step needs the host,
 * not the API. Nothing from the coordinator's namespace (no Secret, ConfigMap or projected
 * volume, no env from them, no pull secrets): the admission policy noma-coordinator-step-pods
 * refuses such a pod to the coordinator's identity. Labeled instead of owned: a NodeMaintenance
 * in another namespace cannot own it.
 */
export function podManifest(
  input: PodJobInput,
): { ok: true; pod: V1Pod } | { ok: false; why: string } {
  const c = container(input.action);
  if (!c.ok) return c;
  const env = [
    { name: 'NOMA_NODE_NAME', value: input.node },
    { name: 'NOMA_ACTION_ID', value: input.actionId },
    { name: 'NOMA_MAINTENANCE', value: `${input.maintenance.namespace}/${input.maintenance.name}` },
    { name: 'NOMA_HOST_ROOT', value: HOST_ROOT },
  ];
  return {
    ok: true,
    pod: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: input.name,
        namespace: input.namespace,
        labels: {
          ...POD_LABELS,
          [MAINTENANCE_UID_LABEL]: input.maintenance.uid,
          [NODE_LABEL]: maintenanceLabelValue(input.node),
          [ACTION_INDEX_LABEL]: String(input.index),
        },
        annotations: {
          [ACTION_ID_ANNOTATION]: input.actionId,
          [MAINTENANCE_ANNOTATION]: `${input.maintenance.namespace}/${input.maintenance.name}`,
        },
      },
      spec: {
        nodeName: input.node,
        restartPolicy: 'Never',
        activeDeadlineSeconds: Math.ceil(input.timeoutMs / 1000) + KUBELET_DEADLINE_GRACE_S,
        tolerations: [{ operator: 'Exists' }],
        hostPID: true,
        hostNetwork: true,
        hostIPC: true,
        dnsPolicy: 'ClusterFirstWithHostNet',
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        volumes: [{ name: 'host', hostPath: { path: '/', type: 'Directory' } }],
        containers: [
          {
            ...c.container,
            env,
            securityContext: { privileged: true },
            // On a failure without logs (the kubelet unreachable through the API server), the
            // termination message still carries the end of the output.
            terminationMessagePolicy: 'FallbackToLogsOnError',
            volumeMounts: [{ name: 'host', mountPath: HOST_ROOT }],
          },
        ],
      },
    },
  };
}

export function containerOf(action: Action): string {
  return action.type === 'InteractiveShell' ? SHELL_CONTAINER : ACTION_CONTAINER;
}

/** What a human runs to get a shell in the pod (shown in status.nodes[].job.execCommand). */
export function execCommand(namespace: string, pod: string, tty: boolean): string {
  return `kubectl -n ${namespace} exec ${tty ? '-it' : '-i'} ${pod} -c ${SHELL_CONTAINER} -- ${SHELL}`;
}

/**
 * What a human runs to release one node's InteractiveShell step. The resource is named with its
 * group: other operators (medik8s) define a NodeMaintenance kind too.
 */
export function releaseCommand(m: MaintenanceRef, node: string, index: number): string {
  return (
    `kubectl -n ${m.namespace} annotate ${PLURAL}.${GROUP} ${m.name} ` +
    `${RELEASE_ANNOTATION}=${node}/${index} --overwrite`
  );
}

/**
 * True when the release annotation names this node's step: an entry `<node>/<index>`, or
 * `<node>` (every InteractiveShell step of the node), `*\/<index>` or `*` (every node).
 */
export function isReleased(
  annotations: Readonly<Record<string, string>> | undefined,
  node: string,
  index: number,
): boolean {
  const value = annotations?.[RELEASE_ANNOTATION];
  if (value === undefined) return false;
  return value
    .split(/[\s,]+/)
    .filter((e) => e !== '')
    .some((entry) => {
      const slash = entry.lastIndexOf('/');
      const who = slash < 0 ? entry : entry.slice(0, slash);
      const which = slash < 0 ? undefined : entry.slice(slash + 1);
      if (who !== '*' && who !== node) return false;
      return which === undefined || which === String(index);
    });
}

/** A pod as the runner sees it. */
export type PodView =
  | { state: 'pending'; detail: string; permanent: boolean }
  | { state: 'running' }
  | {
      state: 'finished';
      succeeded: boolean;
      exitCode?: number;
      /** The container's termination reason (Completed, Error, OOMKilled…) or the pod's. */
      reason?: string;
      /** The pod's own status message (eviction, deadline). */
      podMessage?: string;
      terminationMessage?: string;
    };

/** Waiting reasons the kubelet does not get out of by retrying. */
const PERMANENT_WAITING = new Set(['InvalidImageName']);

export function podView(pod: V1Pod, containerName: string): PodView {
  const status = pod.status;
  const cs = status?.containerStatuses?.find((c) => c.name === containerName);
  const phase = status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') {
    const t = cs?.state?.terminated;
    const reason = t?.reason ?? status?.reason;
    return {
      state: 'finished',
      succeeded: phase === 'Succeeded',
      ...(t?.exitCode === undefined ? {} : { exitCode: t.exitCode }),
      ...(reason === undefined ? {} : { reason }),
      ...(status?.message === undefined ? {} : { podMessage: status.message }),
      ...(t?.message === undefined || t.message === '' ? {} : { terminationMessage: t.message }),
    };
  }
  if (phase === 'Running') return { state: 'running' };
  const waiting = cs?.state?.waiting;
  const name = pod.metadata?.name ?? '';
  if (waiting?.reason !== undefined) {
    return {
      state: 'pending',
      detail: `pod ${name} Pending: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`,
      permanent: PERMANENT_WAITING.has(waiting.reason),
    };
  }
  return { state: 'pending', detail: `pod ${name} Pending`, permanent: false };
}

/** Where the output tail comes from: pods/log, else the termination message. */
export type LogRead = { ok: true; text: string } | { ok: false; why: string };

/** A finished Script/Run pod as the controller sees it. */
export function podOutcome(
  pod: string,
  view: Extract<PodView, { state: 'finished' }>,
  log: LogRead,
): NodeActionOutcome {
  let tail: string | undefined;
  let note: string | undefined;
  if (log.ok) {
    tail = log.text;
  } else if (view.terminationMessage !== undefined) {
    tail = view.terminationMessage;
    note = `output tail from the container's termination message (pod logs unreadable: ${log.why})`;
  } else {
    note = `no output tail (pod logs unreadable: ${log.why})`;
  }
  const fields = {
    ...(view.exitCode === undefined ? {} : { exitCode: view.exitCode }),
    ...(tail === undefined || tail === ''
      ? {}
      : { outputTail: tailBytes(tail, STATUS_TAIL_BYTES) }),
  };
  if (view.succeeded) {
    return { kind: 'succeeded', ...fields, ...(note === undefined ? {} : { message: note }) };
  }
  const suffix = note === undefined ? '' : `; ${note}`;
  if (view.reason === 'DeadlineExceeded') {
    return {
      kind: 'failed',
      message: `TimedOut: pod ${pod} ran past its activeDeadlineSeconds${suffix}`,
      ...fields,
    };
  }
  if (view.exitCode === undefined) {
    const why = [view.reason, view.podMessage].filter((x) => x !== undefined).join(': ');
    return {
      kind: 'failed',
      message: `Failed: pod ${pod} failed${why === '' ? '' : `: ${why}`}${suffix}`,
      ...fields,
    };
  }
  const reason = view.reason === undefined || view.reason === 'Error' ? '' : ` (${view.reason})`;
  return {
    kind: 'failed',
    message: `Failed: pod ${pod} exited with code ${view.exitCode}${reason}${suffix}`,
    ...fields,
  };
}
