// What the drains of a maintenance would do on each node, for `noma init --preview`: which pods
// are evicted, which block the drain and why, and the PodDisruptionBudgets involved. The
// decisions come from the coordinator's own pure filters (planDrain), with the options the
// manifest carries, so the preview and the drain cannot disagree. Pure: the command fetches the
// pods, PDBs and DaemonSets and hands them in.
import type { V1Pod, V1PodDisruptionBudget } from '@kubernetes/client-node';
import {
  planDrain,
  podKey,
  selectorMatches,
  type BlockReason,
  type DrainPlan,
  type FilterContext,
  type FilterOptions,
  type SkipReason,
} from '../../coordinator/drain/filters.js';
import type { NodeMaintenanceSpec } from '../../shared/api/index.js';
import { renderTable } from '../table.js';

/** One drain of a node during its maintenance, in the order they run. */
export interface DrainStage {
  /** As status.drain.scope reports it. */
  readonly scope: 'GPUPods' | 'AllPods';
  /** The step it runs before (1-based); none for the drain before the first step. */
  readonly beforeStep?: { readonly number: number; readonly type: 'Reboot' | 'DeleteNode' };
}

export type PodOutcome =
  | { readonly action: 'evict'; readonly warning?: string }
  /** Already terminating: waited for, not evicted. */
  | { readonly action: 'wait' }
  | { readonly action: 'block'; readonly reason: BlockReason; readonly message: string };

export interface PodPreview {
  /** `namespace/name`. */
  readonly pod: string;
  /** Index into NodeDrainPreview.stages. */
  readonly stage: number;
  readonly outcome: PodOutcome;
}

export interface PdbPreview {
  /** `namespace/name`. */
  readonly pdb: string;
  /** status.disruptionsAllowed; undefined until the disruption controller has computed it. */
  readonly disruptionsAllowed: number | undefined;
  /** The node's pods it covers that a drain would evict (`namespace/name`). */
  readonly pods: readonly string[];
}

export interface NodeDrainPreview {
  readonly node: string;
  readonly stages: readonly DrainStage[];
  readonly pods: readonly PodPreview[];
  /** Pods no drain touches, counted by why. */
  readonly left: ReadonlyMap<SkipReason, number>;
  readonly pdbs: readonly PdbPreview[];
}

export interface DrainInputs {
  readonly spec: Pick<NodeMaintenanceSpec, 'options' | 'actions'>;
  /** Not-finished pods bound to the node. */
  readonly pods: readonly V1Pod[];
  /** PodDisruptionBudgets of (at least) the pods' namespaces. */
  readonly pdbs: readonly V1PodDisruptionBudget[];
  readonly ctx: FilterContext;
}

/**
 * The drains a node goes through, as the coordinator runs them: one before the first step
 * (every pod with drainNonGpuPods or a NoExecute taint, which is added only after noma's own
 * drain; else GPU pods only), and, when that one took GPU pods only, a drain of every pod
 * before the first Reboot or DeleteNode step, since those end every pod on the node.
 */
export function drainStages(spec: DrainInputs['spec']): DrainStage[] {
  const opts = spec.options ?? {};
  const allFirst =
    opts.drainNonGpuPods === true || (opts.taints ?? []).some((t) => t.effect === 'NoExecute');
  if (allFirst) return [{ scope: 'AllPods' }];
  const i = spec.actions.findIndex((a) => a.type === 'Reboot' || a.type === 'DeleteNode');
  const type = spec.actions[i]?.type;
  if (type !== 'Reboot' && type !== 'DeleteNode') return [{ scope: 'GPUPods' }];
  return [{ scope: 'GPUPods' }, { scope: 'AllPods', beforeStep: { number: i + 1, type } }];
}

const COMPONENT = 'app.kubernetes.io/component';

/**
 * noma's coordinator, which its drain never evicts (coordinator/main.ts skips it in its own
 * namespace; the CLI does not know that namespace, so the name label stands in for it).
 */
export function isNomaCoordinator(pod: V1Pod): boolean {
  const labels = pod.metadata?.labels ?? {};
  return labels['app.kubernetes.io/name'] === 'noma' && labels[COMPONENT] === 'coordinator';
}

/** Each PDB that covers a pod the drains would evict, with the pods it covers there. */
function pdbPreviews(evicted: readonly V1Pod[], pdbs: DrainInputs['pdbs']): PdbPreview[] {
  const out: PdbPreview[] = [];
  for (const p of pdbs) {
    const ns = p.metadata?.namespace ?? '';
    const pods = evicted.filter(
      (pod) =>
        pod.metadata?.namespace === ns &&
        selectorMatches(p.spec?.selector, pod.metadata.labels ?? {}),
    );
    if (pods.length === 0) continue;
    const st = p.status;
    // A status older than the spec says nothing about the budget the spec sets now.
    const fresh = st !== undefined && (st.observedGeneration ?? 0) >= (p.metadata?.generation ?? 0);
    out.push({
      pdb: `${ns}/${p.metadata?.name ?? ''}`,
      disruptionsAllowed: fresh ? st.disruptionsAllowed : undefined,
      pods: pods.map(podKey),
    });
  }
  return out.sort((a, b) => (a.pdb < b.pdb ? -1 : 1));
}

const ORDER: Record<PodOutcome['action'], number> = { block: 0, evict: 1, wait: 2 };

/** One row per pod a stage's plan evicts, waits for or is blocked by. */
function stageRows(plan: DrainPlan, stage: number): PodPreview[] {
  const warning = new Map(plan.warnings.map((w) => [w.pod, w.message]));
  return [
    ...plan.evict.map((pod): PodPreview => {
      const w = warning.get(pod);
      const outcome = { action: 'evict' as const, ...(w === undefined ? {} : { warning: w }) };
      return { pod: podKey(pod), stage, outcome };
    }),
    ...plan.wait.map((pod): PodPreview => ({
      pod: podKey(pod),
      stage,
      outcome: { action: 'wait' },
    })),
    ...plan.blocked.map((b): PodPreview => ({
      pod: podKey(b.pod),
      stage,
      outcome: { action: 'block', reason: b.reason, message: b.message },
    })),
  ];
}

function byStageActionName(a: PodPreview, b: PodPreview): number {
  return (
    a.stage - b.stage ||
    ORDER[a.outcome.action] - ORDER[b.outcome.action] ||
    (a.pod < b.pod ? -1 : a.pod > b.pod ? 1 : 0)
  );
}

/**
 * Runs planDrain for each stage on the pods the earlier stages left, as the drains would. A
 * stage after one that blocks never runs; it is shown anyway, so every fix can be made at once.
 */
export function previewNodeDrain(node: string, inputs: DrainInputs): NodeDrainPreview {
  const stages = drainStages(inputs.spec);
  const o = inputs.spec.options ?? {};
  const base: FilterOptions = {
    drainNonGpuPods: false,
    deleteEmptyDirData: o.deleteEmptyDirData === true,
    evictUnmanagedPods: o.evictUnmanagedPods === true,
    skipPod: isNomaCoordinator,
  };
  const pods: PodPreview[] = [];
  const evicted: V1Pod[] = [];
  let left: DrainPlan['skipped'] = inputs.pods.map((pod) => ({ pod, reason: 'NotGpu' }));
  stages.forEach((stage, i) => {
    const opts = { ...base, drainNonGpuPods: stage.scope === 'AllPods' };
    const plan = planDrain(
      left.map((s) => s.pod),
      opts,
      inputs.ctx,
    );
    pods.push(...stageRows(plan, i));
    evicted.push(...plan.evict);
    left = plan.skipped;
  });
  const counts = new Map<SkipReason, number>();
  for (const s of left) counts.set(s.reason, (counts.get(s.reason) ?? 0) + 1);
  return {
    node,
    stages,
    pods: pods.sort(byStageActionName),
    left: counts,
    pdbs: pdbPreviews(evicted, inputs.pdbs),
  };
}

// ---- rendering ------------------------------------------------------------------------------

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The DRAIN column: `start`, or the step an all-pods drain runs before. */
export function stageLabel(stage: DrainStage): string {
  return stage.beforeStep === undefined ? 'start' : `before ${stage.beforeStep.type}`;
}

function stagesLine(stages: readonly DrainStage[]): string {
  return stages
    .map((s) => {
      const what = s.scope === 'AllPods' ? 'every pod' : 'GPU pods';
      const when =
        s.beforeStep === undefined
          ? 'at the start'
          : `before step ${s.beforeStep.number} (${s.beforeStep.type})`;
      return `${what} ${when}`;
    })
    .join(', then ');
}

const LEFT_LABELS: Record<SkipReason, string> = {
  DaemonSet: 'DaemonSet',
  Mirror: 'static (mirror)',
  NotGpu: 'non-GPU',
  Excluded: 'noma coordinator',
  DeletedLongAgo: 'long-deleted',
};

function leftLine(left: NodeDrainPreview['left']): string | undefined {
  if (left.size === 0) return undefined;
  const parts = [...left].map(([reason, n]) => `${n} ${LEFT_LABELS[reason]}`);
  const total = [...left.values()].reduce((s, n) => s + n, 0);
  return `left in place: ${parts.join(', ')} (${plural(total, 'pod')})`;
}

function detail(p: PodPreview, covering: ReadonlyMap<string, string[]>): string {
  const o = p.outcome;
  if (o.action === 'block') return o.message;
  if (o.action === 'wait') return 'terminating: waited for, not evicted';
  const parts = [...(o.warning === undefined ? [] : [o.warning])];
  for (const pdb of covering.get(p.pod) ?? []) parts.push(`PDB ${pdb}`);
  return parts.length === 0 ? '-' : parts.join('; ');
}

const DECISION: Record<PodOutcome['action'], string> = {
  evict: 'evict',
  wait: 'wait',
  block: 'BLOCKS',
};

function podTable(p: NodeDrainPreview, covering: ReadonlyMap<string, string[]>): string {
  if (p.pods.length === 0) return 'no pod to evict\n';
  return renderTable(
    ['POD', 'DRAIN', 'DECISION', 'DETAIL'],
    p.pods.map((x) => {
      const stage = p.stages[x.stage];
      return [
        x.pod,
        stage === undefined ? '?' : stageLabel(stage),
        DECISION[x.outcome.action],
        detail(x, covering),
      ];
    }),
  );
}

function pdbTable(pdbs: readonly PdbPreview[]): string {
  if (pdbs.length === 0) return '';
  return renderTable(
    ['PODDISRUPTIONBUDGET', 'ALLOWED DISRUPTIONS', 'PODS HERE'],
    pdbs.map((b) => [b.pdb, b.disruptionsAllowed?.toString() ?? 'unknown', String(b.pods.length)]),
  );
}

// The init flag that turns each kind of block into an eviction.
const FLAG_FOR: Record<BlockReason, string> = {
  LocalStorage: '--delete-emptydir-data',
  Unmanaged: '--evict-unmanaged-pods',
  DaemonSetMissing: '--evict-unmanaged-pods',
};

function blockWarnings(p: NodeDrainPreview): string[] {
  return p.stages.flatMap((s, i) => {
    const reasons = p.pods.flatMap((x) =>
      x.stage === i && x.outcome.action === 'block' ? [x.outcome.reason] : [],
    );
    if (reasons.length === 0) return [];
    const n = reasons.length;
    const who = n === 1 ? '1 pod blocks' : `${n} pods block`;
    const fate =
      s.beforeStep === undefined
        ? 'at the start: the node would fail before its first step'
        : `before step ${s.beforeStep.number} (${s.beforeStep.type}): the node would fail at that step`;
    const flags = [...new Set(reasons.map((r) => FLAG_FOR[r]))].join(' and ');
    return [`${who} the drain ${fate} (${flags} would evict ${n === 1 ? 'it' : 'them'})`];
  });
}

function pdbWarnings(p: NodeDrainPreview, covering: ReadonlyMap<string, string[]>): string[] {
  const out: string[] = [];
  for (const b of p.pdbs) {
    const allowed = b.disruptionsAllowed;
    if (allowed === undefined) {
      out.push(`PDB ${b.pdb} has no current status: its allowed disruptions are unknown`);
    } else if (allowed === 0) {
      out.push(`PDB ${b.pdb} allows no disruption now: its pods' evictions wait until it does`);
    } else if (allowed < b.pods.length) {
      out.push(
        `PDB ${b.pdb} allows ${plural(allowed, 'disruption')} now for ${b.pods.length} pods ` +
          'here: the drain waits for replacements to become healthy',
      );
    }
  }
  for (const [pod, pdbs] of covering) {
    if (pdbs.length > 1) {
      out.push(
        `pod ${pod} is covered by ${pdbs.length} PDBs (${pdbs.join(', ')}): the Eviction API ` +
          'refuses to evict it, so the drain cannot finish',
      );
    }
  }
  return out;
}

/** One node's section: its drains, a row per pod they touch, the PDBs, warnings. */
export function renderNodeDrain(p: NodeDrainPreview): string {
  const covering = new Map<string, string[]>();
  for (const b of p.pdbs)
    for (const pod of b.pods) covering.set(pod, [...(covering.get(pod) ?? []), b.pdb]);
  const left = leftLine(p.left);
  const warnings = [...blockWarnings(p), ...pdbWarnings(p, covering)];
  return (
    `\nnode ${p.node}: drains ${stagesLine(p.stages)}\n` +
    podTable(p, covering) +
    (left === undefined ? '' : `${left}\n`) +
    pdbTable(p.pdbs) +
    warnings.map((w) => `warning: node ${p.node}: ${w}\n`).join('')
  );
}

/** Every node's section, by node name, after a heading that says when the pods were read. */
export function renderDrainPreview(previews: readonly NodeDrainPreview[]): string {
  if (previews.length === 0) return '';
  const sorted = [...previews].sort((a, b) => (a.node < b.node ? -1 : 1));
  return (
    '\nwhat the drain would do with the pods on these nodes now:\n' +
    sorted.map(renderNodeDrain).join('')
  );
}
