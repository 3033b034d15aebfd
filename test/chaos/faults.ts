// The fault table. Each row waits for its fault point (a version of the NodeMaintenance, a Node,
// a pod, a reboot of a machine, a side effect of a step: whichever shows the point first),
// then injects its fault. Points are reached on the first node that gets there (all three run
// at once), so a row is the same point every run; what the status looked like when the fault
// hit is in the row's detail and timeline.
import type { V1Node } from '@kubernetes/client-node';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeMaintenance, NodeStatus } from '../../shared/api/index.js';
import type { ChaosEvent, Rig } from './rig.js';

export interface Check {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface FaultOutcome {
  /** When the fault hit: status before it is the baseline of recovery. */
  readonly at: number;
  /** Recovery is measured from here (default `at`): the end of a fault that stops everything. */
  readonly recoverFrom?: number;
  /** Only this node's progress counts as recovery (a fault of one node's agent). */
  readonly focus?: string;
  /** The leader was taken out: only progress after another replica leads counts. */
  readonly successor?: boolean;
  readonly detail: string;
  /** Checks of this fault's own, run after the maintenance ended. */
  readonly checks?: () => Promise<Check[]>;
}

export interface Fault {
  readonly id: string;
  readonly point: string;
  /** In the CI subset (CHAOS_ROWS=ci). */
  readonly ci: boolean;
  /** The kubelet's restart delay for coordinators in this row (default: longer than a lease). */
  readonly restartDelayMs?: number;
  inject(rig: Rig): Promise<FaultOutcome | undefined>;
}

const PAUSE_MS = Number(process.env['CHAOS_PAUSE_S'] ?? '30') * 1000;

// ---- fault points -----------------------------------------------------------------------

type Pick<T> = (e: ChaosEvent) => T | undefined;

const onStatus =
  (pred: (m: NodeMaintenance) => boolean): Pick<NodeMaintenance> =>
  (e) =>
    e.kind === 'status' && pred(e.m) ? e.m : undefined;

const anyNode = (pred: (n: NodeStatus) => boolean) =>
  onStatus((m) => (m.status?.nodes ?? []).some(pred));

const inAction = (index: number, node?: string) =>
  anyNode(
    (n) =>
      (node === undefined || n.name === node) &&
      n.phase === 'InAction' &&
      n.currentActionIndex === index,
  );

const onNode =
  (pred: (n: V1Node) => boolean): Pick<V1Node> =>
  (e) =>
    e.kind === 'node' && pred(e.node) ? e.node : undefined;

const onSide =
  (step: 'script' | 'run', node?: string): Pick<string> =>
  (e) =>
    e.kind === 'side' && e.step === step && (node === undefined || e.node === node)
      ? e.node
      : undefined;

/** A Node back in service after noma had it cordoned (the Complete step's write). */
function uncordoned(): Pick<V1Node> {
  const cordoned = new Set<string>();
  return onNode((n) => {
    const name = n.metadata?.name ?? '';
    const claimed = n.metadata?.annotations?.['noma.dev/claim'] !== undefined;
    if (n.spec?.unschedulable === true && claimed) cordoned.add(name);
    return cordoned.has(name) && n.spec?.unschedulable !== true;
  });
}

/** A node whose boot ID is no longer the one it started the row with: it rebooted. */
const rebooted =
  (rig: Rig): Pick<V1Node> =>
  (e) =>
    e.kind === 'node' &&
    rig.bootIDs.get(e.node.metadata?.name ?? '') !== undefined &&
    rig.bootIDs.get(e.node.metadata?.name ?? '') !== e.node.status?.nodeInfo?.bootID
      ? e.node
      : undefined;

// ---- faults -----------------------------------------------------------------------------

/** One line of where every node is. */
export function summary(m: NodeMaintenance | undefined): string {
  const nodes = (m?.status?.nodes ?? [])
    .map((n) => {
      const short = n.name.split('-').at(-1) ?? n.name;
      return `${short}:${n.phase}${n.phase === 'InAction' ? `(${n.currentActionIndex ?? '?'})` : ''}`;
    })
    .join(' ');
  return `${m?.status?.phase ?? 'no status'} ${nodes}`.trim();
}

async function killLeader(rig: Rig): Promise<FaultOutcome & { identity: string }> {
  const leader = await rig.leader();
  const at = Date.now();
  leader.signal('SIGKILL');
  return {
    at,
    successor: true,
    identity: leader.identity,
    detail: `SIGKILL ${leader.identity}; status then: ${summary(rig.latest)}`,
  };
}

/** SIGKILL of the leader at the first event `pick` accepts. */
function killAt(id: string, point: string, ci: boolean, pick: (rig: Rig) => Pick<unknown>): Fault {
  return {
    id,
    point,
    ci,
    async inject(rig) {
      await rig.when(point, pick(rig));
      return killLeader(rig);
    },
  };
}

const pause = (rig: Rig, ms: number) => {
  rig.note(`paused for ${ms / 1000} s`);
  return sleep(ms);
};

/** SIGSTOP of the leader while a script runs; the standby takes over; SIGCONT after 30 s. */
const stopLeader: Fault = {
  id: 'stop-leader-30s',
  point: 'a script runs; leader SIGSTOP 30 s, then SIGCONT',
  ci: true,
  async inject(rig) {
    await rig.when('a script runs', onSide('script'));
    const zombie = await rig.leader();
    const at = Date.now();
    zombie.signal('SIGSTOP');
    const detail = `SIGSTOP ${zombie.identity}; status then: ${summary(rig.latest)}`;
    await pause(rig, PAUSE_MS);
    zombie.signal('SIGCONT');
    const resumed = Date.now();
    // What a deposed leader may take to notice: its renew period and deadline, and a bit.
    await sleep(8_000);
    const agents = await zombie.agents();
    const held = rig.proxy?.connectionsTo(zombie.identity) ?? 0;
    const steppedDown =
      zombie.pid === undefined ||
      zombie.logs.some((l) => l.at >= resumed && /lost leadership|shutting down/.test(l.line));
    const holder = await rig.holder();
    return {
      at,
      successor: true,
      detail: `${detail}; SIGCONT after ${PAUSE_MS / 1000} s; Lease then held by ${holder ?? 'none'}`,
      checks: () =>
        Promise.resolve([
          {
            name: 'zombie-no-agents',
            ok: held === 0 && (agents ?? []).length === 0,
            detail: `8 s after SIGCONT the deposed leader held ${held} agent connection(s) and reported agents [${(agents ?? []).join(', ')}]`,
          },
          {
            name: 'zombie-stepped-down',
            ok: steppedDown && holder !== zombie.identity,
            detail: steppedDown
              ? `deposed leader ${zombie.pid === undefined ? 'exited' : 'logged lost leadership'}`
              : 'deposed leader neither exited nor logged lost leadership within 8 s of SIGCONT',
          },
        ]),
    };
  },
};

/** SIGSTOP of the kube-apiserver (and its etcd) for 30 s while scripts run. */
const stopApiserver: Fault = {
  id: 'stop-apiserver-30s',
  point: 'a script runs; kube-apiserver SIGSTOP 30 s',
  ci: true,
  async inject(rig) {
    await rig.when('a script runs', onSide('script'));
    const at = Date.now();
    const detail = `status then: ${summary(rig.latest)}`;
    rig.stopApiserver();
    await pause(rig, PAUSE_MS);
    rig.continueApiserver();
    return { at, recoverFrom: Date.now(), detail };
  },
};

/** SIGKILL of node a's agent while its script runs (the kubelet restarts it after 0.5 s). */
const killAgentScript: Fault = {
  id: 'kill-agent-script',
  point: "node a's script runs; its agent SIGKILLed",
  ci: true,
  async inject(rig) {
    const a = rig.node(0);
    await rig.when("node a's script runs", onSide('script', a.name));
    const at = Date.now();
    await a.killAgent();
    return {
      at,
      focus: a.name,
      detail: `SIGKILL agent of ${a.name}; status then: ${summary(rig.latest)}`,
    };
  },
};

/** SIGKILL of node a's agent right after its Reboot is dispatched (its ledger write). */
const killAgentReboot: Fault = {
  id: 'kill-agent-reboot',
  point: "node a's Reboot dispatched; its agent SIGKILLed",
  ci: false,
  async inject(rig) {
    const a = rig.node(0);
    await rig.when("node a's Reboot dispatched", inAction(1, a.name));
    const at = Date.now();
    await a.killAgent();
    return {
      at,
      focus: a.name,
      detail: `SIGKILL agent of ${a.name}; status then: ${summary(rig.latest)}`,
    };
  },
};

/** SIGKILL of node a's agent while it writes the ledger record of its Reboot (inotify). */
const killAgentLedger: Fault = {
  id: 'kill-agent-ledger',
  point: "node a's agent writing its Reboot's ledger record; SIGKILLed",
  ci: true,
  async inject(rig) {
    const a = rig.node(0);
    const m = await rig.when('the maintenance has a uid', (e) =>
      e.kind === 'status' && e.m.metadata.uid !== undefined ? e.m : undefined,
    );
    // The action ID: <cr uid>/<node>/<action index>/<attempt> (docs/state-machine.md).
    const id = `${m.metadata.uid ?? ''}/${a.name}/1/1`;
    const { file, at } = await a.killAgentOnLedgerWrite(id);
    rig.note(`fault point reached: ledger write of ${id} (${file})`);
    return {
      at,
      focus: a.name,
      detail: `SIGKILL agent of ${a.name} on ${file.endsWith('.tmp') ? 'its temp file' : 'the record'}; status then: ${summary(rig.latest)}`,
    };
  },
};

/** Kill the leader while a script runs, then its successor as soon as it holds the Lease. */
const killTwice: Fault = {
  id: 'kill-twice',
  point: 'a script runs; leader killed, then its successor on taking over',
  ci: false,
  async inject(rig) {
    await rig.when('a script runs', onSide('script'));
    const first = await killLeader(rig);
    const successor = await rig.when('a new Lease holder', (e) =>
      e.kind === 'lease' && e.holder !== undefined && e.holder !== first.identity
        ? e.holder
        : undefined,
    );
    rig.replicaOf(successor)?.signal('SIGKILL');
    return {
      at: first.at,
      successor: true,
      detail: `${first.detail}; then SIGKILL ${successor} as it took over`,
    };
  },
};

export const FAULTS: readonly Fault[] = [
  {
    id: 'none',
    point: 'no fault (the baseline: proves the harness)',
    ci: true,
    inject: () => Promise.resolve(undefined),
  },
  killAt('kill-selected', 'nodes selected (observedNodes written)', false, () =>
    onStatus((m) => (m.status?.observedNodes?.length ?? 0) > 0),
  ),
  killAt('kill-initial-state', 'a node’s initial state recorded', true, () =>
    anyNode((n) => n.initialState !== undefined),
  ),
  killAt('kill-cordoned', 'a Node claimed and cordoned', true, () =>
    onNode((n) => n.metadata?.annotations?.['noma.dev/claim'] !== undefined),
  ),
  killAt(
    'kill-draining',
    'an eviction under way (pod terminating)',
    true,
    () => (e) =>
      e.kind === 'pod' &&
      e.pod.metadata?.name?.startsWith('gpu-') === true &&
      e.pod.metadata.deletionTimestamp !== undefined
        ? e.pod
        : undefined,
  ),
  killAt('kill-drained', 'a node drained (status Drained or later)', false, () =>
    anyNode((n) => ['Drained', 'InAction'].includes(n.phase)),
  ),
  killAt('kill-script-sent', 'Script ID recorded (InAction 0)', true, () => inAction(0)),
  killAt('kill-script-running', 'a script runs (its side effect seen)', true, () =>
    onSide('script'),
  ),
  killAt('kill-reboot-sent', 'Reboot ID recorded (InAction 1)', true, () => inAction(1)),
  killAt(
    'kill-reboot-down',
    'a machine going down for its reboot',
    true,
    () => (e) => (e.kind === 'reboot' && e.phase === 'down' ? e.node : undefined),
  ),
  killAt('kill-reboot-up', 'a Node reports its new boot ID', false, (rig) => rebooted(rig)),
  killAt('kill-run-sent', 'Run ID recorded (InAction 2)', false, () => inAction(2)),
  killAt('kill-run-running', 'a Run runs (its side effect seen)', true, () => onSide('run')),
  killAt('kill-complete', 'Complete step started (InAction 3)', true, () => inAction(3)),
  killAt('kill-uncordoned', 'a Node returned to service by Complete', false, () => uncordoned()),
  killAt('kill-succeeded', 'first node Succeeded', false, () =>
    onStatus(
      (m) =>
        m.status?.phase !== 'Completed' &&
        (m.status?.nodes ?? []).some((n) => n.phase === 'Succeeded'),
    ),
  ),
  killTwice,
  {
    ...killAt('kill-fast-restart', 'Reboot ID recorded; the same pod back at once', false, () =>
      inAction(1),
    ),
    restartDelayMs: 0,
  },
  stopLeader,
  stopApiserver,
  killAgentScript,
  killAgentReboot,
  killAgentLedger,
];

/** CHAOS_ROWS: unset or `all` (every row), `ci` (the CI subset), or a comma list of ids. */
export function selectFaults(spec: string | undefined): readonly Fault[] {
  if (spec === undefined || spec === '' || spec === 'all') return FAULTS;
  if (spec === 'ci') return FAULTS.filter((f) => f.ci);
  const ids = spec.split(',').map((s) => s.trim());
  const unknown = ids.filter((id) => !FAULTS.some((f) => f.id === id));
  if (unknown.length > 0) throw new Error(`CHAOS_ROWS: no such row ${unknown.join(', ')}`);
  return FAULTS.filter((f) => ids.includes(f.id));
}
