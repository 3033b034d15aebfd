// The drain engine against the real API server, disruption controller, ReplicaSet and DaemonSet
// controllers, with KWOK playing the kubelet (pods go away within their grace period).
import type { V1Pod } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import {
  drainNode,
  type DrainOptions,
  type DrainProgress,
  type DrainResult,
} from '../../coordinator/drain/drain.js';
import { createLogger } from '../../shared/log.js';
import { DrainFixture, podName, uidsOf } from '../support/drain-fixtures.js';
import {
  adminKubeConfig,
  createNamespace,
  createSimNode,
  deleteSimNode,
  uniqueName,
  waitFor,
} from '../support/kube.js';

const log = createLogger('drain-test', 'silent');

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(prefix: string): Promise<DrainFixture> {
  const ns = await createNamespace(prefix);
  cleanups.push(ns.remove);
  const node = uniqueName(prefix);
  await createSimNode(node, { capacity: { 'nvidia.com/gpu': '8' } });
  cleanups.push(() => deleteSimNode(node));
  return new DrainFixture(adminKubeConfig(), ns.name, node);
}

interface Recorded {
  progress: DrainProgress[];
  events: { type: string; reason: string; message: string; pod: string | undefined }[];
}

function startDrain(
  f: DrainFixture,
  opts: Partial<DrainOptions>,
  signal: AbortSignal = new AbortController().signal,
): { result: Promise<DrainResult>; rec: Recorded } {
  const rec: Recorded = { progress: [], events: [] };
  const result = drainNode(
    {
      kc: adminKubeConfig(),
      log,
      events: (type, reason, message, pod?: V1Pod) => {
        rec.events.push({ type, reason, message, pod: pod?.metadata?.name });
        return Promise.resolve();
      },
    },
    f.node,
    {
      drainNonGpuPods: false,
      deleteEmptyDirData: false,
      evictUnmanagedPods: false,
      timeoutMs: 60_000,
      forceDrain: false,
      ...opts,
    },
    (p) => rec.progress.push(p),
    signal,
  );
  return { result, rec };
}

/** GPU and non-GPU pods, a DaemonSet pod, a mirror pod, an emptyDir pod, an unmanaged pod and a
 * pod behind a PDB that allows no disruption. */
async function fullNode(f: DrainFixture): Promise<V1Pod[]> {
  await f.replicaSet('gpu', 2, { gpus: 1 });
  await f.replicaSet('cpu', 1);
  await f.daemonSet('agent', { gpus: 1 });
  await f.mirrorPod('static', { gpus: 1 });
  await f.replicaSet('scratch', 1, { gpus: 1, emptyDir: true });
  await f.barePod('lonely', { gpus: 1 });
  await f.replicaSet('guarded', 1, { gpus: 1 });
  const pods = await f.waitRunning(8);
  await f.pdb('guarded-pdb', 'guarded', 1);
  await f.cordon();
  return pods;
}

const byPrefix = (pods: readonly V1Pod[], prefix: string): V1Pod[] =>
  pods.filter((p) => podName(p).startsWith(prefix));

describe('drainNode', () => {
  it('refuses, before evicting anything, a node with emptyDir and unmanaged pods', async () => {
    const f = await setup('drain-refuse');
    const before = await fullNode(f);

    const { result, rec } = startDrain(f, {});
    const r = await result;

    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reason).toMatch(/scratch-\S+ uses emptyDir/);
    expect(r.reason).toContain(`${f.namespace}/lonely is not managed by a controller`);
    expect(r.reason).not.toMatch(/guarded|gpu-|cpu-|agent-|static-/);
    expect(r.progress.evicted).toBe(0);
    expect(r.progress.blockedBy?.kind).toBe('Pod');
    expect(rec.events.map((e) => e.reason)).toEqual(['DrainBlocked']);
    const after = await f.pods();
    expect(uidsOf(after)).toEqual(uidsOf(before));
    expect(after.filter((p) => p.metadata?.deletionTimestamp !== undefined)).toEqual([]);
  });

  it('evicts GPU pods only, names the PDB that blocks, and finishes once the PDB allows it', async () => {
    const f = await setup('drain-full');
    const before = await fullNode(f);
    const evictable = [
      ...byPrefix(before, 'gpu-'),
      ...byPrefix(before, 'scratch-'),
      ...byPrefix(before, 'lonely'),
      ...byPrefix(before, 'guarded-'),
    ];
    const staying = [
      ...byPrefix(before, 'cpu-'),
      ...byPrefix(before, 'agent-'),
      ...byPrefix(before, 'static-'),
    ];
    expect(evictable).toHaveLength(5);
    expect(staying).toHaveLength(3);

    const { result, rec } = startDrain(f, { deleteEmptyDirData: true, evictUnmanagedPods: true });

    const blocked = await waitFor('drain blocked by the PDB', () =>
      Promise.resolve(rec.progress.find((p) => p.evicted === 4 && p.blockedBy !== undefined)),
    );
    expect(blocked).toMatchObject({
      total: 5,
      evicted: 4,
      pending: 1,
      blockedBy: { kind: 'PodDisruptionBudget', namespace: f.namespace, name: 'guarded-pdb' },
    });
    expect(blocked.blockedBy?.message).toMatch(/guarded-pdb needs 1 healthy pods/);
    const event = rec.events.find((e) => e.reason === 'DrainBlocked');
    expect(event?.type).toBe('Warning');
    expect(event?.message).toContain(`PodDisruptionBudget ${f.namespace}/guarded-pdb`);
    expect(event?.pod).toMatch(/^guarded-/);

    const mid = uidsOf(await f.pods());
    for (const p of byPrefix(before, 'guarded-')) expect(mid.has(p.metadata?.uid ?? '')).toBe(true);

    await f.setPdbMinAvailable('guarded-pdb', 0);
    const r = await result;

    expect(r).toEqual({ ok: true, progress: { total: 5, evicted: 5, pending: 0 } });
    const after = uidsOf(await f.pods());
    for (const p of evictable) expect(after.has(p.metadata?.uid ?? '')).toBe(false);
    for (const p of staying) expect(after.has(p.metadata?.uid ?? '')).toBe(true);
    const last = rec.progress.at(-1);
    expect(last).toEqual({ total: 5, evicted: 5, pending: 0 });
    // Every change was reported, one pod at a time.
    expect(rec.progress.map((p) => p.evicted)).toEqual(expect.arrayContaining([0, 1, 2, 3, 4, 5]));
  });

  it('fails after drainTimeout when a PDB never allows the eviction, leaving the pod', async () => {
    const f = await setup('drain-timeout');
    await f.replicaSet('guarded', 1, { gpus: 1 });
    const [guarded] = await f.waitRunning(1);
    await f.pdb('guarded-pdb', 'guarded', 1);
    await f.cordon();

    const started = Date.now();
    const { result } = startDrain(f, { timeoutMs: 3000 });
    const r = await result;

    expect(Date.now() - started).toBeLessThan(10_000);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reason).toMatch(/timed out after 3000 ms/);
    expect(r.reason).toContain(`blocked by PodDisruptionBudget ${f.namespace}/guarded-pdb`);
    expect(r.progress).toMatchObject({
      total: 1,
      evicted: 0,
      pending: 1,
      blockedBy: { kind: 'PodDisruptionBudget', name: 'guarded-pdb' },
    });
    const after = await f.pods();
    expect(uidsOf(after).has(guarded?.metadata?.uid ?? '')).toBe(true);
    expect(after.every((p) => p.metadata?.deletionTimestamp === undefined)).toBe(true);
  });

  it('with forceDrain deletes what the PDB still protects after drainTimeout', async () => {
    const f = await setup('drain-force');
    await f.replicaSet('guarded', 1, { gpus: 1, graceSeconds: 1 });
    await f.replicaSet('cpu', 1);
    const before = await f.waitRunning(2);
    await f.pdb('guarded-pdb', 'guarded', 1);
    await f.cordon();

    const { result, rec } = startDrain(f, {
      timeoutMs: 2000,
      forceDrain: true,
      drainNonGpuPods: true,
    });
    const r = await result;

    expect(r).toEqual({ ok: true, progress: { total: 2, evicted: 2, pending: 0 } });
    expect(rec.progress.some((p) => p.blockedBy?.name === 'guarded-pdb')).toBe(true);
    expect(rec.events.map((e) => e.reason)).toEqual(['DrainBlocked', 'ForceDrain']);
    const after = uidsOf(await f.pods());
    for (const p of before) expect(after.has(p.metadata?.uid ?? '')).toBe(false);
  });

  it('names the pod when more than one PDB covers it, which the Eviction API refuses', async () => {
    const f = await setup('drain-twopdb');
    await f.replicaSet('guarded', 1, { gpus: 1 });
    await f.waitRunning(1);
    await f.pdb('pdb-a', 'guarded', 0);
    await f.pdb('pdb-b', 'guarded', 0);
    await f.cordon();

    const { result, rec } = startDrain(f, { timeoutMs: 2500 });
    const r = await result;

    expect(r.ok).toBe(false);
    expect(r.progress.blockedBy).toMatchObject({ kind: 'Pod', namespace: f.namespace });
    expect(r.progress.blockedBy?.name).toMatch(/^guarded-/);
    expect(r.progress.blockedBy?.message).toMatch(/more than one PodDisruptionBudget/);
    expect(rec.events.filter((e) => e.reason === 'DrainBlocked')).toHaveLength(1);
  });

  it('stops when its signal aborts', async () => {
    const f = await setup('drain-abort');
    await f.replicaSet('guarded', 1, { gpus: 1 });
    await f.waitRunning(1);
    await f.pdb('guarded-pdb', 'guarded', 1);
    await f.cordon();

    const ac = new AbortController();
    const { result, rec } = startDrain(f, { timeoutMs: 0 }, ac.signal);
    await waitFor('drain blocked', () =>
      Promise.resolve(rec.progress.some((p) => p.blockedBy !== undefined)),
    );
    ac.abort();
    const r = await result;
    expect(r).toMatchObject({ ok: false, reason: 'cancelled' });
  });
});
