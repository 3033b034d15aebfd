// A cancelled pod step (its maintenance deleted) is confirmed only once its pod is gone or had
// terminated, never while it is Terminating: the PodActionRunner against the real API server,
// with KWOK as the kubelet. KWOK removes a Terminating pod on its own at some point within the
// grace period, so the tests hold the pod there with a finalizer of their own, which plays a
// container that takes its whole grace period (a `trap` in a real kubelet's container), and
// then finish the deletion as the kubelet would when the grace period ends.
import { CoreV1Api, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Action } from '../../shared/api/index.js';
import { createLogger } from '../../shared/log.js';
import type { NodeActionOutcome, NodeActionRequest } from '../../coordinator/actions/dispatcher.js';
import { podName } from '../../coordinator/actions/pod-job.js';
import { PodActionRunner } from '../../coordinator/actions/pod-runner.js';
import {
  adminKubeConfig,
  createNamespace,
  createSimNode,
  deleteSimNode,
  uniqueName,
  waitFor,
} from '../support/kube.js';

const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const HOLD = 'test.noma.dev/hold';
const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const log = createLogger('pod-cancel-test', 'silent');
let ns: Awaited<ReturnType<typeof createNamespace>>;
let node: string;
const runners: PodActionRunner[] = [];

beforeAll(async () => {
  ns = await createNamespace('podcancel');
  node = uniqueName('pc');
  await createSimNode(node);
});

afterAll(async () => {
  for (const r of runners) r.detach();
  const pods = await core.listNamespacedPod({ namespace: ns.name });
  await Promise.all(pods.items.map((p) => release(p.metadata?.name ?? '')));
  await ns.remove();
  await deleteSimNode(node);
});

const action: Action = { type: 'Run', run: { command: ['sleep', '3600'], image: 'tools:test' } };

function runner(cancelConfirmMs: number): PodActionRunner {
  const r = new PodActionRunner({ kc, log, namespace: ns.name, resyncMs: 1_000, cancelConfirmMs });
  runners.push(r);
  return r;
}

function request(id: string, signal: AbortSignal): NodeActionRequest {
  return {
    actionId: id,
    node,
    index: 0,
    action,
    signal,
    maintenance: { namespace: ns.name, name: 'm', uid: 'uid-cancel' },
    report: () => Promise.resolve(),
    annotations: () => ({}),
    maintenanceChanged: (s) =>
      new Promise((r) => {
        s.addEventListener(
          'abort',
          () => {
            r();
          },
          { once: true },
        );
      }),
  };
}

const readPod = (name: string): Promise<V1Pod | undefined> =>
  core.readNamespacedPod({ name, namespace: ns.name }).catch((err: unknown) => {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  });

const runningPod = (name: string): Promise<V1Pod> =>
  waitFor(`pod ${name} Running`, async () => {
    const p = await readPod(name);
    return p?.status?.phase === 'Running' ? p : undefined;
  });

/** Holds the pod in Terminating once it is deleted (its containers still in their grace period). */
const hold = (name: string) =>
  core.patchNamespacedPod(
    { name, namespace: ns.name, body: { metadata: { finalizers: [HOLD] } } },
    MERGE,
  );

/** The grace period is over: the kubelet is done with the pod, the API server removes it. */
async function release(name: string): Promise<void> {
  await core
    .patchNamespacedPod(
      { name, namespace: ns.name, body: { metadata: { finalizers: null } } },
      MERGE,
    )
    .catch(() => undefined);
  await core
    .deleteNamespacedPod({ name, namespace: ns.name, gracePeriodSeconds: 0 })
    .catch(() => undefined);
}

/** Whether `p` settled within `ms`. */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setTimeout(r, ms));
  return done;
}

describe('cancel of a pod step', () => {
  it('is confirmed only when the pod is gone, not while it is Terminating', async () => {
    const id = `uid-cancel/${node}/0/${uniqueName('a')}`;
    const name = podName(id, node, 0);
    const ac = new AbortController();
    const outcome = runner(60_000).run(request(id, ac.signal));
    await runningPod(name);
    await hold(name);
    ac.abort();
    await waitFor('pod deleted by the runner', async () => {
      const p = await readPod(name);
      return p?.metadata?.deletionTimestamp !== undefined;
    });
    // Terminating (deletionTimestamp set) is not gone: the step may still run.
    expect(await settledWithin(outcome, 2_500)).toBe(false);
    expect((await readPod(name))?.metadata?.deletionTimestamp).toBeDefined();
    await release(name);
    expect(await outcome).toEqual<NodeActionOutcome>({
      kind: 'cancelled',
      confirmed: true,
      message: `pod ${ns.name}/${name} is gone`,
    });
    expect(await readPod(name)).toBeUndefined();
  });

  it('is not confirmed when the pod is still Terminating at the bound', async () => {
    const id = `uid-cancel/${node}/0/${uniqueName('b')}`;
    const name = podName(id, node, 0);
    const ac = new AbortController();
    const outcome = runner(3_000).run(request(id, ac.signal));
    await runningPod(name);
    await hold(name);
    const t0 = Date.now();
    ac.abort();
    const o = await outcome;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2_900);
    expect(o).toMatchObject({ kind: 'cancelled', confirmed: false });
    expect(o.message).toMatch(/^cancel not confirmed within 3 s: pod .* is still terminating/);
    expect((await readPod(name))?.metadata?.deletionTimestamp).toBeDefined();
    await release(name);
  });

  it('cancels a pod an earlier leader left running (run() with an aborted signal); a terminated one at once', async () => {
    const id = `uid-cancel/${node}/0/${uniqueName('c')}`;
    const name = podName(id, node, 0);
    // The earlier leader: it created the pod, then shut down (detach), leaving it running.
    const earlier = runner(60_000);
    const ac = new AbortController();
    const first = earlier.run(request(id, ac.signal));
    await runningPod(name);
    earlier.detach();
    ac.abort();
    expect(await first).toEqual({ kind: 'unavailable', message: 'stopped' });
    expect((await readPod(name))?.metadata?.deletionTimestamp).toBeUndefined();
    // The container exited meanwhile (the kubelet's part).
    await core.patchNamespacedPodStatus(
      { name, namespace: ns.name, body: { status: { phase: 'Succeeded' } } },
      MERGE,
    );
    const next = runner(60_000);
    const aborted = new AbortController();
    aborted.abort();
    expect(await next.run(request(id, aborted.signal))).toEqual({
      kind: 'cancelled',
      confirmed: true,
      message: `pod ${ns.name}/${name} had terminated`,
    });
    await waitFor('terminated pod deleted', async () => {
      const p = await readPod(name);
      return p === undefined || p.metadata?.deletionTimestamp !== undefined;
    });
    // A step whose pod never existed: nothing runs, confirmed at once.
    const never = `uid-cancel/${node}/0/${uniqueName('d')}`;
    expect(await next.run(request(never, aborted.signal))).toEqual({
      kind: 'cancelled',
      confirmed: true,
      message: `pod ${ns.name}/${podName(never, node, 0)} is gone`,
    });
  });
});
