// `noma init --preview`'s drain section: the stages a manifest's drains go through, each pod's
// decision (the coordinator's planDrain, with the manifest's options), the PDBs involved, and
// the text, against golden files in test/fixtures/cli/preview/ (UPDATE_GOLDEN=1 rewrites them).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { NodeMaintenanceSpec } from '../../shared/api/index.js';
import {
  NODE,
  NOW,
  SCENARIO_PDBS,
  SCENARIO_PODS,
  SHM,
  pdb,
  pod,
} from '../../test/fixtures/cli/drain-preview-pods.js';
import { CASES_DIR } from '../../test/fixtures/cli/init-cases.js';
import {
  drainStages,
  previewNodeDrain,
  renderDrainPreview,
  type DrainInputs,
  type NodeDrainPreview,
} from './drain-preview.js';

type Spec = DrainInputs['spec'];
const PREVIEW_DIR = join(CASES_DIR, 'preview');

function golden(name: string, text: string): void {
  const file = join(PREVIEW_DIR, `${name}.txt`);
  if (process.env['UPDATE_GOLDEN'] === '1') {
    mkdirSync(PREVIEW_DIR, { recursive: true });
    writeFileSync(file, text);
  }
  expect(existsSync(file), `${file} is missing: run with UPDATE_GOLDEN=1`).toBe(true);
  expect(text).toBe(readFileSync(file, 'utf8'));
}

const reboot: Spec = { actions: [{ type: 'Reboot' }, { type: 'Complete' }] };

function preview(
  spec: Spec,
  pods: readonly V1Pod[] = SCENARIO_PODS,
  pdbs = SCENARIO_PDBS,
  daemonSetExists = () => true,
): NodeDrainPreview {
  return previewNodeDrain(NODE, { spec, pods, pdbs, ctx: { now: NOW, daemonSetExists } });
}

/** `pod → stage label + action (+ reason)`, the decisions in one comparable list. */
function decisions(p: NodeDrainPreview): string[] {
  return p.pods.map((x) => {
    const s = p.stages[x.stage];
    const when = s?.beforeStep === undefined ? 'start' : `before ${s.beforeStep.type}`;
    const why = x.outcome.action === 'block' ? ` ${x.outcome.reason}` : '';
    return `${x.pod} ${when} ${x.outcome.action}${why}`;
  });
}

describe('drainStages', () => {
  const opts = (o: NonNullable<NodeMaintenanceSpec['options']>) => ({ options: o });
  it.each<[string, Spec, ReturnType<typeof drainStages>]>([
    ['a template without steps', { actions: [] }, [{ scope: 'GPUPods' }]],
    ['a Script', { actions: [{ type: 'Run', run: { command: ['x'] } }] }, [{ scope: 'GPUPods' }]],
    [
      'Reboot then Complete',
      reboot,
      [{ scope: 'GPUPods' }, { scope: 'AllPods', beforeStep: { number: 1, type: 'Reboot' } }],
    ],
    [
      'a Run, then DeleteNode',
      { actions: [{ type: 'Run', run: { command: ['x'] } }, { type: 'DeleteNode' }] },
      [{ scope: 'GPUPods' }, { scope: 'AllPods', beforeStep: { number: 2, type: 'DeleteNode' } }],
    ],
    [
      'two Reboots: the first one drains everything',
      { actions: [{ type: 'Reboot' }, { type: 'Reboot' }] },
      [{ scope: 'GPUPods' }, { scope: 'AllPods', beforeStep: { number: 1, type: 'Reboot' } }],
    ],
    ['drainNonGpuPods', { ...reboot, ...opts({ drainNonGpuPods: true }) }, [{ scope: 'AllPods' }]],
    [
      'a NoExecute taint',
      { actions: [], ...opts({ taints: [{ key: 'runai', value: 'drain', effect: 'NoExecute' }] }) },
      [{ scope: 'AllPods' }],
    ],
    [
      'a NoSchedule taint',
      { ...reboot, ...opts({ taints: [{ key: 'x', effect: 'NoSchedule' }] }) },
      [{ scope: 'GPUPods' }, { scope: 'AllPods', beforeStep: { number: 1, type: 'Reboot' } }],
    ],
  ])('%s', (_name, spec, want) => {
    expect(drainStages(spec)).toEqual(want);
  });
});

describe('previewNodeDrain', () => {
  it('the issue-11 node before a reboot: GPU pods first, every evictable pod before Reboot', () => {
    const p = preview(reboot);
    expect(decisions(p)).toEqual([
      'inference/trainer-0 start block LocalStorage',
      'inference/vllm-0 start evict',
      'inference/vllm-1 start wait',
      'inference/debug before Reboot block Unmanaged',
      'inference/router-0 before Reboot evict',
    ]);
    expect(Object.fromEntries(p.left)).toEqual({ DaemonSet: 1, Mirror: 1, Excluded: 1 });
    expect(p.pdbs).toEqual([
      { pdb: 'inference/router', disruptionsAllowed: 0, pods: ['inference/router-0'] },
      { pdb: 'inference/vllm', disruptionsAllowed: 1, pods: ['inference/vllm-0'] },
    ]);
    golden('reboot-issue-11', renderDrainPreview([p]));
  });

  it('a Run only: non-GPU pods stay, nothing is drained before a later step', () => {
    const p = preview({ actions: [{ type: 'Run', run: { command: ['nvidia-smi'] } }] });
    expect(decisions(p)).toEqual([
      'inference/trainer-0 start block LocalStorage',
      'inference/vllm-0 start evict',
      'inference/vllm-1 start wait',
    ]);
    // The selection comes first, as in the coordinator: a DaemonSet or mirror pod without GPUs
    // is simply not a GPU pod.
    expect(Object.fromEntries(p.left)).toEqual({ NotGpu: 4, Excluded: 1 });
    expect(p.pdbs.map((b) => b.pdb)).toEqual(['inference/vllm']);
    golden('run-gpu-only', renderDrainPreview([p]));
  });

  it('deleteEmptyDirData and evictUnmanagedPods evict what blocked, with their warnings', () => {
    const p = preview({
      ...reboot,
      options: { deleteEmptyDirData: true, evictUnmanagedPods: true },
    });
    expect(decisions(p)).toEqual([
      'inference/trainer-0 start evict',
      'inference/vllm-0 start evict',
      'inference/vllm-1 start wait',
      'inference/debug before Reboot evict',
      'inference/router-0 before Reboot evict',
    ]);
    const warnings = p.pods.map((x) => (x.outcome.action === 'evict' ? x.outcome.warning : '-'));
    expect(warnings).toEqual([
      'emptyDir data will be lost',
      undefined,
      '-',
      'no controller will recreate this pod',
      undefined,
    ]);
  });

  it('drainNonGpuPods: one drain of every pod at the start', () => {
    const p = preview({ ...reboot, options: { drainNonGpuPods: true } });
    expect(p.stages).toEqual([{ scope: 'AllPods' }]);
    expect(decisions(p)).toEqual([
      'inference/debug start block Unmanaged',
      'inference/trainer-0 start block LocalStorage',
      'inference/router-0 start evict',
      'inference/vllm-0 start evict',
      'inference/vllm-1 start wait',
    ]);
    golden('all-pods-at-start', renderDrainPreview([p]));
  });

  it('an orphaned DaemonSet pod blocks the all-pods drain', () => {
    const p = preview(reboot, [SCENARIO_PODS[5] as V1Pod], [], () => false);
    expect(decisions(p)).toEqual([
      'gpu-operator/dcgm-exporter-x before Reboot block DaemonSetMissing',
    ]);
  });

  it('reports unknown, exhausted and overlapping PDBs', () => {
    const pods = [
      pod('a-0', { app: 'a', gpus: 1, volumes: [SHM] }),
      pod('a-1', { app: 'a', gpus: 1, labels: { tier: 'gold' } }),
      pod('b-0', { app: 'b', gpus: 1 }),
    ];
    const gold = pdb('gold', 'a', 3);
    gold.spec = { selector: { matchLabels: { tier: 'gold' } } };
    const p = preview(reboot, pods, [pdb('a', 'a', 1), pdb('b', 'b', 4, { stale: true }), gold]);
    expect(p.pdbs).toEqual([
      { pdb: 'inference/a', disruptionsAllowed: 1, pods: ['inference/a-0', 'inference/a-1'] },
      { pdb: 'inference/b', disruptionsAllowed: undefined, pods: ['inference/b-0'] },
      { pdb: 'inference/gold', disruptionsAllowed: 3, pods: ['inference/a-1'] },
    ]);
    golden('pdb-warnings', renderDrainPreview([p]));
  });
});

describe('renderDrainPreview', () => {
  it('says so when a node has nothing to drain, and sorts nodes by name', () => {
    const empty = (node: string) =>
      previewNodeDrain(node, {
        spec: reboot,
        pods: [],
        pdbs: [],
        ctx: { now: NOW, daemonSetExists: () => true },
      });
    const text = renderDrainPreview([empty('gpu-02'), empty('gpu-01')]);
    expect(text).toBe(
      '\nwhat the drain would do with the pods on these nodes now:\n' +
        '\nnode gpu-01: drains GPU pods at the start, then every pod before step 1 (Reboot)\n' +
        'no pod to evict\n' +
        '\nnode gpu-02: drains GPU pods at the start, then every pod before step 1 (Reboot)\n' +
        'no pod to evict\n',
    );
  });

  it('prints nothing without nodes', () => {
    expect(renderDrainPreview([])).toBe('');
  });
});
