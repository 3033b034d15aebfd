import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import {
  MIRROR_ANNOTATION,
  blockedReason,
  computeProgress,
  daemonSetRefs,
  decide,
  deletedLongAgo,
  deletionRequestedAt,
  diskEmptyDirs,
  isNodeReady,
  isGpuResourceName,
  parseStatus,
  pdbNameFromStatus,
  planDrain,
  requestsGpu,
  retryDelayMs,
  sameProgress,
  selectorMatches,
  type Blocker,
  type FilterContext,
  type FilterOptions,
} from './filters.js';

const NOW = new Date('2026-01-01T00:00:00Z');

interface PodOpts {
  name?: string;
  owner?: 'ReplicaSet' | 'DaemonSet' | 'Node' | 'none';
  gpu?: 'requests' | 'limits' | 'init' | 'mig' | 'none';
  /** A disk-backed emptyDir volume `scratch`. */
  emptyDir?: boolean;
  /** More emptyDir volumes `dir-<i>`, one per medium given ('' is the disk, like `{}`). */
  media?: string[];
  mirror?: boolean;
  phase?: string;
  deletedSecondsAgo?: number;
}

function pod(o: PodOpts = {}): V1Pod {
  const owner = o.owner ?? 'ReplicaSet';
  const gpu = o.gpu ?? 'requests';
  const res: Record<string, string> =
    gpu === 'mig' ? { 'nvidia.com/mig-1g.10gb': '1' } : { 'nvidia.com/gpu': '1' };
  const main = {
    name: 'main',
    resources:
      gpu === 'requests' || gpu === 'mig'
        ? { requests: res }
        : gpu === 'limits'
          ? { limits: res }
          : { requests: { cpu: '1' } },
  };
  return {
    metadata: {
      name: o.name ?? 'p',
      namespace: 'ns',
      uid: `uid-${o.name ?? 'p'}`,
      ...(owner === 'none'
        ? {}
        : {
            ownerReferences: [
              { apiVersion: 'apps/v1', kind: owner, name: 'owner', uid: 'o', controller: true },
            ],
          }),
      ...(o.mirror === true ? { annotations: { [MIRROR_ANNOTATION]: 'hash' } } : {}),
      ...(o.deletedSecondsAgo === undefined
        ? {}
        : { deletionTimestamp: new Date(NOW.getTime() - o.deletedSecondsAgo * 1000) }),
    },
    spec: {
      containers: [main],
      ...(gpu === 'init' ? { initContainers: [{ name: 'init', resources: { limits: res } }] } : {}),
      volumes: [
        ...(o.emptyDir === true ? [{ name: 'scratch', emptyDir: {} }] : []),
        ...(o.media ?? []).map((medium, i) => ({
          name: `dir-${i}`,
          emptyDir: { medium, sizeLimit: '1Gi' },
        })),
        // Not emptyDirs: they never block.
        { name: 'config', configMap: { name: 'c' } },
      ],
    },
    status: { phase: o.phase ?? 'Running' },
  };
}

const strict: FilterOptions = {
  drainNonGpuPods: false,
  deleteEmptyDirData: false,
  evictUnmanagedPods: false,
};
const lenient: FilterOptions = {
  drainNonGpuPods: false,
  deleteEmptyDirData: true,
  evictUnmanagedPods: true,
};
const ctx: FilterContext = { now: NOW, daemonSetExists: () => true };
const noDaemonSets: FilterContext = { now: NOW, daemonSetExists: () => false };

describe('the GPU request check', () => {
  it.each([
    ['nvidia.com/gpu', true],
    ['nvidia.com/gpu.shared', true],
    ['nvidia.com/mig-1g.10gb', true],
    ['nvidia.com/mig-3g.40gb', true],
    ['nvidia.com/gpus', false],
    ['nvidia.com/rdma_shared_device_a', false],
    ['amd.com/gpu', false],
    ['cpu', false],
  ])('%s → %s', (name, want) => {
    expect(isGpuResourceName(name)).toBe(want);
  });

  it.each([
    ['requests', true],
    ['limits', true],
    ['init', true],
    ['mig', true],
    ['none', false],
  ] as const)('a pod with GPU in %s → %s', (gpu, want) => {
    expect(requestsGpu(pod({ gpu }))).toBe(want);
  });
});

describe('decide, in kubectl order', () => {
  it.each<[string, PodOpts, FilterOptions, FilterContext, ReturnType<typeof decide>]>([
    ['a GPU pod of a ReplicaSet', {}, strict, ctx, { action: 'evict' }],
    [
      'a non-GPU pod, GPU-only drain',
      { gpu: 'none' },
      strict,
      ctx,
      { action: 'skip', reason: 'NotGpu' },
    ],
    [
      'a non-GPU pod, drainNonGpuPods',
      { gpu: 'none' },
      { ...strict, drainNonGpuPods: true },
      ctx,
      { action: 'evict' },
    ],
    // Selection first: a non-GPU pod that would block kubectl does not block a GPU-only drain.
    [
      'a non-GPU unmanaged emptyDir pod',
      { gpu: 'none', owner: 'none', emptyDir: true },
      strict,
      ctx,
      { action: 'skip', reason: 'NotGpu' },
    ],
    [
      'a DaemonSet pod',
      { owner: 'DaemonSet' },
      strict,
      ctx,
      { action: 'skip', reason: 'DaemonSet', warning: 'DaemonSet-managed pod left in place' },
    ],
    [
      'a finished DaemonSet pod',
      { owner: 'DaemonSet', phase: 'Succeeded' },
      strict,
      ctx,
      { action: 'evict' },
    ],
    [
      'an orphaned DaemonSet pod',
      { owner: 'DaemonSet' },
      strict,
      noDaemonSets,
      {
        action: 'block',
        reason: 'DaemonSetMissing',
        message: expect.stringContaining('DaemonSet owner is gone') as string,
      },
    ],
    [
      'an orphaned DaemonSet pod with evictUnmanagedPods',
      { owner: 'DaemonSet' },
      lenient,
      noDaemonSets,
      { action: 'evict', warning: 'DaemonSet ns/owner not found' },
    ],
    [
      'a mirror pod',
      { mirror: true, owner: 'Node' },
      strict,
      ctx,
      { action: 'skip', reason: 'Mirror' },
    ],
    [
      'an unmanaged mirror pod',
      { mirror: true, owner: 'none' },
      strict,
      ctx,
      { action: 'skip', reason: 'Mirror' },
    ],
    [
      'an emptyDir pod',
      { emptyDir: true },
      strict,
      ctx,
      {
        action: 'block',
        reason: 'LocalStorage',
        message: expect.stringContaining('emptyDir') as string,
      },
    ],
    [
      'an emptyDir pod, deleteEmptyDirData',
      { emptyDir: true },
      lenient,
      ctx,
      { action: 'evict', warning: 'emptyDir data will be lost' },
    ],
    [
      'a finished emptyDir pod',
      { emptyDir: true, phase: 'Failed' },
      strict,
      ctx,
      { action: 'evict' },
    ],
    [
      'an unmanaged pod',
      { owner: 'none' },
      strict,
      ctx,
      {
        action: 'block',
        reason: 'Unmanaged',
        message: expect.stringContaining('not managed') as string,
      },
    ],
    [
      'an unmanaged emptyDir pod, both allowed',
      { owner: 'none', emptyDir: true },
      lenient,
      ctx,
      {
        action: 'evict',
        warning: 'emptyDir data will be lost; no controller will recreate this pod',
      },
    ],
    [
      'a finished unmanaged pod',
      { owner: 'none', phase: 'Succeeded' },
      strict,
      ctx,
      { action: 'evict' },
    ],
    ['a terminating pod', { deletedSecondsAgo: 5 }, strict, ctx, { action: 'wait' }],
    [
      'a terminating unmanaged emptyDir pod',
      { deletedSecondsAgo: 5, owner: 'none', emptyDir: true },
      strict,
      ctx,
      { action: 'wait' },
    ],
    [
      'a pod deleted longer ago than skipWaitForDeleteTimeoutSeconds',
      { deletedSecondsAgo: 120 },
      { ...strict, skipWaitForDeleteTimeoutSeconds: 60 },
      ctx,
      { action: 'skip', reason: 'DeletedLongAgo' },
    ],
    [
      'a pod deleted more recently than skipWaitForDeleteTimeoutSeconds',
      { deletedSecondsAgo: 30 },
      { ...strict, skipWaitForDeleteTimeoutSeconds: 60 },
      ctx,
      { action: 'wait' },
    ],
    [
      'a pod deleted long ago on a node that is not Ready',
      { deletedSecondsAgo: 120 },
      { ...strict, skipWaitForDeleteTimeoutSeconds: 60 },
      { ...ctx, nodeReady: false },
      { action: 'skip', reason: 'DeletedLongAgo' },
    ],
    [
      'a pod deleted long ago on a Ready node: its kubelet finishes it',
      { deletedSecondsAgo: 120 },
      { ...strict, skipWaitForDeleteTimeoutSeconds: 60 },
      { ...ctx, nodeReady: true },
      { action: 'wait' },
    ],
    [
      'a pod deleted long ago on a node that is not Ready, no limit set',
      { deletedSecondsAgo: 120 },
      strict,
      { ...ctx, nodeReady: false },
      { action: 'wait' },
    ],
  ])('%s', (_name, o, opts, c, want) => {
    expect(decide(pod(o), opts, c)).toEqual(want);
  });

  // The issue 11 scenario: inference pods mount a Memory emptyDir at /dev/shm.
  it.each<[string, PodOpts, FilterOptions, ReturnType<typeof decide>]>([
    ['a Memory emptyDir', { media: ['Memory'] }, strict, { action: 'evict' }],
    ['a HugePages emptyDir', { media: ['HugePages'] }, strict, { action: 'evict' }],
    ['a HugePages-2Mi emptyDir', { media: ['HugePages-2Mi'] }, strict, { action: 'evict' }],
    [
      'an explicit default medium',
      { media: [''] },
      strict,
      {
        action: 'block',
        reason: 'LocalStorage',
        message:
          'uses emptyDir local storage on disk (volume dir-0; set deleteEmptyDirData to evict it)',
      },
    ],
    [
      'a Memory and a disk emptyDir',
      { emptyDir: true, media: ['Memory'] },
      strict,
      {
        action: 'block',
        reason: 'LocalStorage',
        message:
          'uses emptyDir local storage on disk (volume scratch; set deleteEmptyDirData to evict it)',
      },
    ],
    [
      'a Memory and a disk emptyDir, deleteEmptyDirData',
      { emptyDir: true, media: ['Memory'] },
      { ...strict, deleteEmptyDirData: true },
      { action: 'evict', warning: 'emptyDir data will be lost' },
    ],
    [
      'five disk emptyDirs (the list is bounded)',
      { emptyDir: true, media: ['', 'Memory', '', '', ''] },
      strict,
      {
        action: 'block',
        reason: 'LocalStorage',
        message:
          'uses emptyDir local storage on disk (volumes scratch, dir-0, dir-2 and 2 more; ' +
          'set deleteEmptyDirData to evict it)',
      },
    ],
    [
      'an unmanaged pod with a Memory emptyDir',
      { owner: 'none', media: ['Memory'] },
      strict,
      {
        action: 'block',
        reason: 'Unmanaged',
        message: 'is not managed by a controller (set evictUnmanagedPods to evict it)',
      },
    ],
    [
      'an unmanaged pod with a Memory emptyDir, evictUnmanagedPods',
      { owner: 'none', media: ['Memory'] },
      { ...strict, evictUnmanagedPods: true },
      { action: 'evict', warning: 'no controller will recreate this pod' },
    ],
    [
      'a non-GPU pod with a Memory emptyDir, GPU-only drain',
      { gpu: 'none', media: ['Memory'] },
      strict,
      { action: 'skip', reason: 'NotGpu' },
    ],
    [
      'a non-GPU pod with a Memory emptyDir, all pods',
      { gpu: 'none', media: ['Memory'] },
      { ...strict, drainNonGpuPods: true },
      { action: 'evict' },
    ],
    [
      'a non-GPU pod with a disk emptyDir, all pods',
      { gpu: 'none', emptyDir: true },
      { ...strict, drainNonGpuPods: true },
      {
        action: 'block',
        reason: 'LocalStorage',
        message:
          'uses emptyDir local storage on disk (volume scratch; set deleteEmptyDirData to evict it)',
      },
    ],
  ])('emptyDir medium: %s', (_name, o, opts, want) => {
    expect(decide(pod(o), opts, ctx)).toEqual(want);
  });

  it('lists only the disk-backed emptyDirs', () => {
    expect(diskEmptyDirs(pod({ emptyDir: true, media: ['Memory', '', 'HugePages-1Gi'] }))).toEqual([
      'scratch',
      'dir-1',
    ]);
    expect(diskEmptyDirs(pod({ media: ['Memory'] }))).toEqual([]);
  });

  it('never evicts what skipPod excludes, whatever else is true of it', () => {
    const opts = { ...strict, skipPod: (p: V1Pod) => p.metadata?.name === 'coordinator' };
    expect(decide(pod({ name: 'coordinator', owner: 'none', emptyDir: true }), opts, ctx)).toEqual({
      action: 'skip',
      reason: 'Excluded',
    });
    expect(decide(pod({ name: 'other' }), opts, ctx)).toEqual({ action: 'evict' });
  });
});

describe('planDrain', () => {
  it('sorts pods and lists every blocker in the reason', () => {
    const pods = [
      pod({ name: 'a' }),
      pod({ name: 'b', gpu: 'none' }),
      pod({ name: 'c', emptyDir: true }),
      pod({ name: 'd', owner: 'none' }),
      pod({ name: 'e', deletedSecondsAgo: 1 }),
    ];
    const plan = planDrain(pods, strict, ctx);
    expect(plan.evict.map((p) => p.metadata?.name)).toEqual(['a']);
    expect(plan.wait.map((p) => p.metadata?.name)).toEqual(['e']);
    expect(plan.skipped.map((s) => [s.pod.metadata?.name, s.reason])).toEqual([['b', 'NotGpu']]);
    expect(plan.blocked.map((b) => b.reason)).toEqual(['LocalStorage', 'Unmanaged']);
    expect(blockedReason(plan.blocked)).toBe(
      'cannot drain: 2 pod(s) would block it: ns/c uses emptyDir local storage on disk (volume ' +
        'scratch; set deleteEmptyDirData to evict it); ns/d is not managed by a controller (set evictUnmanagedPods to evict it)',
    );
  });

  it('names each DaemonSet once for the existence lookup', () => {
    const pods = [
      pod({ name: 'x', owner: 'DaemonSet' }),
      pod({ name: 'y', owner: 'DaemonSet' }),
      pod({ name: 'z' }),
    ];
    expect(daemonSetRefs(pods)).toEqual([{ namespace: 'ns', name: 'owner' }]);
  });
});

describe('retryDelayMs', () => {
  const o = { baseMs: 1000, capMs: 5000, random: 0 };
  it('doubles from the base up to the cap', () => {
    expect([1, 2, 3, 4, 5, 10].map((a) => retryDelayMs(a, o))).toEqual([
      1000, 2000, 4000, 5000, 5000, 5000,
    ]);
  });
  it('adds up to 20 % jitter', () => {
    expect(retryDelayMs(1, { ...o, random: 0.5 })).toBe(1100);
    expect(retryDelayMs(4, { ...o, random: 0.999 })).toBeLessThan(6000);
  });
  it('honours a longer Retry-After, ignores a shorter one', () => {
    expect(retryDelayMs(1, o, 7)).toBe(7000);
    expect(retryDelayMs(3, o, 1)).toBe(4000);
    expect(retryDelayMs(1, o, 0)).toBe(1000);
  });
});

describe('progress', () => {
  const pdb: Blocker = { kind: 'PodDisruptionBudget', namespace: 'ns', name: 'pdb' };
  it('counts pending as total minus gone and names the oldest blocker', () => {
    const blockers = new Map<string, Blocker>([
      ['u1', pdb],
      ['u2', { kind: 'Pod', name: 'x' }],
    ]);
    expect(computeProgress(5, 2, blockers)).toEqual({
      total: 5,
      evicted: 2,
      pending: 3,
      blockedBy: pdb,
    });
    expect(computeProgress(5, 5, new Map())).toEqual({ total: 5, evicted: 5, pending: 0 });
  });
  it('tells a change from a repeat', () => {
    const a = computeProgress(3, 1, new Map([['u', pdb]]));
    expect(sameProgress(a, { ...a, blockedBy: { ...pdb } })).toBe(true);
    expect(sameProgress(a, { ...a, blockedBy: { ...pdb, message: 'new' } })).toBe(false);
    expect(sameProgress(a, { total: 3, evicted: 1, pending: 2 })).toBe(false);
    expect(sameProgress(undefined, a)).toBe(false);
  });
});

describe('reading the eviction API’s Status', () => {
  // The body kube-apiserver sends with a 429 from pods/eviction.
  const tooMany = JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    status: 'Failure',
    message: "Cannot evict pod as it would violate the pod's disruption budget.",
    reason: 'TooManyRequests',
    details: {
      causes: [
        {
          reason: 'DisruptionBudget',
          message: 'The disruption budget web-pdb needs 2 healthy pods and has 2 currently',
        },
      ],
    },
    code: 429,
  });

  it('finds the PDB named in the cause', () => {
    expect(pdbNameFromStatus(parseStatus(tooMany))).toBe('web-pdb');
  });
  it('finds nothing when the server names no PDB', () => {
    expect(
      pdbNameFromStatus(
        parseStatus(
          '{"message":"Cannot evict pod as it would violate the pod\'s disruption budget."}',
        ),
      ),
    ).toBe(undefined);
  });
  it('keeps a non-JSON body as the message and drops fields of the wrong type', () => {
    expect(parseStatus('upstream connect error')).toEqual({ message: 'upstream connect error' });
    expect(
      parseStatus({
        message: 3,
        details: { retryAfterSeconds: '2', causes: ['x', { message: 'm' }] },
      }),
    ).toEqual({
      details: { causes: [{ message: 'm' }] },
    });
    expect(parseStatus(undefined)).toBe(undefined);
  });
});

describe('selectorMatches (PDB selectors)', () => {
  const labels = { app: 'web', tier: 'gpu' };
  it.each<[string, Parameters<typeof selectorMatches>[0], boolean]>([
    ['matchLabels', { matchLabels: { app: 'web' } }, true],
    ['matchLabels mismatch', { matchLabels: { app: 'db' } }, false],
    ['In', { matchExpressions: [{ key: 'tier', operator: 'In', values: ['gpu', 'cpu'] }] }, true],
    ['NotIn', { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['gpu'] }] }, false],
    ['Exists', { matchExpressions: [{ key: 'app', operator: 'Exists' }] }, true],
    ['DoesNotExist', { matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, false],
    ['empty selects all', {}, true],
    ['missing selects none', undefined, false],
  ])('%s', (_n, sel, want) => {
    expect(selectorMatches(sel, labels)).toBe(want);
  });
});

describe('dead nodes: deletions pending on a node that is not Ready', () => {
  const deleting = (secondsAgo: number, graceS?: number): V1Pod => ({
    metadata: {
      name: 'p',
      deletionTimestamp: new Date(NOW.getTime() - secondsAgo * 1000),
      ...(graceS === undefined ? {} : { deletionGracePeriodSeconds: graceS }),
    },
  });

  it.each<[string, V1Pod, number | undefined, boolean | undefined, boolean]>([
    ['not being deleted', { metadata: { name: 'p' } }, 60, false, false],
    ['pending longer than the limit, node not Ready', deleting(61), 60, false, true],
    ['pending exactly the limit', deleting(60), 60, false, false],
    ['pending longer than the limit, node Ready', deleting(600), 60, true, false],
    [
      'pending longer than the limit, readiness unknown (kubectl)',
      deleting(61),
      60,
      undefined,
      true,
    ],
    ['no limit', deleting(600), undefined, false, false],
    ['limit 0', deleting(600), 0, false, false],
    // Evicted 5 s ago with a 30 s grace period: deletionTimestamp is 25 s in the future.
    ['grace not yet served, requested 5 s ago, limit 2 s', deleting(-25, 30), 2, false, true],
    ['grace not yet served, requested 1 s ago, limit 2 s', deleting(-29, 30), 2, false, false],
  ])('%s', (_name, p, limit, ready, want) => {
    expect(deletedLongAgo(p, limit, NOW, ready)).toBe(want);
  });

  it('dates the request as deletionTimestamp less the grace period', () => {
    expect(deletionRequestedAt(deleting(-25, 30))?.toISOString()).toBe('2025-12-31T23:59:55.000Z');
    expect(deletionRequestedAt({ metadata: {} })).toBeUndefined();
  });

  it.each<[string, Parameters<typeof isNodeReady>[0], boolean]>([
    ['no Node', undefined, false],
    ['no conditions', { metadata: { name: 'n' } }, false],
    ['Ready True', { status: { conditions: [{ type: 'Ready', status: 'True' }] } }, true],
    ['Ready False', { status: { conditions: [{ type: 'Ready', status: 'False' }] } }, false],
    ['Ready Unknown', { status: { conditions: [{ type: 'Ready', status: 'Unknown' }] } }, false],
    [
      'another condition True',
      { status: { conditions: [{ type: 'MemoryPressure', status: 'True' }] } },
      false,
    ],
  ])('node readiness: %s', (_name, node, want) => {
    expect(isNodeReady(node)).toBe(want);
  });
});
