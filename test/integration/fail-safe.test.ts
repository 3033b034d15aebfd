// Issue 11's fail-safe behaviour against the real API server and the coordinator process: the
// failure budget (Halted), restore and retry, pause, unavailable nodes counting against
// maxUnavailable, node claims across a restart, left-by marks, NoExecute taints after the drain.
// Steps are image-based Runs, so they run as pods that KWOK starts and the test ends (the
// kubelet's part): the pods the coordinator creates are the executor whose side effects the test
// counts from outside, with every version of the Nodes (a watch) and the webhook's POSTs.
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  PolicyV1Api,
  setHeaderOptions,
  type CoreV1Event,
  type V1Node,
  type V1Pod,
} from '@kubernetes/client-node';
import {
  afterAll,
  afterEach,
  beforeAll,
  beforeEach,
  describe,
  expect,
  inject,
  it,
  onTestFailed,
} from 'vitest';
import { GROUP, PLURAL, VERSION, type NodeMaintenance } from '../../shared/api/index.js';
import { runNoma } from '../support/cli.js';
import {
  startCoordinator,
  testCoordinatorArgs,
  type CoordinatorProcess,
} from '../support/coordinator-process.js';
import { installCRD } from '../support/crd.js';
import { startWebhookRecorder, type WebhookRecorder } from '../support/webhook.js';
import {
  adminKubeConfig,
  createNamespace,
  createNotReadyNode,
  createSimNode,
  deleteSimNode,
  uniqueName,
  waitFor,
  type SimNodeOptions,
} from '../support/kube.js';
import { maintenances, nodeStatus } from '../support/maintenance.js';
import {
  podExecutor,
  recordNodes,
  recordWatch,
  type ActionPod,
  type NodeRecorder,
  type PodExecutor,
  type Verdict,
} from '../support/observers.js';

const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const IMAGE = 'maintenance-tools:test';
const CLAIM = 'noma.dev/claim';
const LEFT_BY = 'noma.dev/left-by';
const NOMA_TAINT = 'noma.dev/maintenance';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);
let ns: Awaited<ReturnType<typeof createNamespace>>;
let coordinator: CoordinatorProcess;
const nodes: string[] = [];
let webhook: WebhookRecorder;
const leaseName = uniqueName('lease');
const coordinatorArgs = () => [
  ...testCoordinatorArgs(ns.name, leaseName, 'fail-safe-under-test'),
  '--notify-webhook-url',
  webhook.url,
];

/** What a test started and the next one must not inherit: recorders, executors, maintenances. */
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  await installCRD(kc);
  ns = await createNamespace('failsafe');
  webhook = await startWebhookRecorder();
  coordinator = await startCoordinator(inject('kubeconfig'), coordinatorArgs());
});

afterAll(async () => {
  await coordinator.kill('SIGTERM');
  await webhook.close();
  await ns.remove();
  await Promise.all(nodes.map(deleteSimNode));
});

/** Simulated GPU nodes labelled with `group` (the maintenance's selector). */
async function simNodes(group: string, count: number, opts: SimNodeOptions = {}) {
  return Promise.all(Array.from({ length: count }, () => simNode(group, opts)));
}

async function simNode(group: string, opts: SimNodeOptions = {}): Promise<string> {
  const name = uniqueName(group);
  nodes.push(name);
  await createSimNode(name, {
    capacity: { 'nvidia.com/gpu': '8' },
    ...opts,
    labels: { 'noma.dev/test-group': group, ...opts.labels },
  });
  return name;
}

const nm = () => maintenances(kc, ns.name);
const getMaintenance = (name: string) => nm().get(name);
const waitPhase = (name: string, phase: string | readonly string[], timeoutMs?: number) =>
  nm().waitPhase(name, phase, timeoutMs);

/** Creates a maintenance (deleted after the test, which returns the nodes it holds); its uid. */
async function createMaintenance(name: string, spec: Record<string, unknown>): Promise<string> {
  await nm().create(name, spec);
  cleanups.push(async () => {
    await nm()
      .remove(name)
      .catch(() => undefined);
    await waitFor(`${name} gone`, async () => (await getMaintenance(name)) === undefined);
  });
  const m = await getMaintenance(name);
  return m?.metadata.uid ?? '';
}

async function patchMaintenance(name: string, body: object): Promise<void> {
  await custom.patchNamespacedCustomObject(
    { group: GROUP, version: VERSION, plural: PLURAL, namespace: ns.name, name, body },
    MERGE,
  );
}

async function mustGet(name: string): Promise<NodeMaintenance> {
  const m = await getMaintenance(name);
  if (m === undefined) throw new Error(`${name} is gone`);
  return m;
}

async function nodesRecorder(group: string): Promise<NodeRecorder> {
  const rec = await recordNodes(kc, `noma.dev/test-group=${group}`);
  cleanups.push(() => rec.stop());
  return rec;
}

async function executor(
  decide: (pod: ActionPod) => Verdict,
  startsAnyway?: (pod: ActionPod) => boolean,
): Promise<PodExecutor> {
  const exec = await podExecutor(kc, ns.name, decide, startsAnyway);
  cleanups.push(() => exec.stop());
  return exec;
}

/** The action pods of one maintenance (optionally one node, one step). */
const podsOf = (exec: PodExecutor, uid: string, node?: string, index?: number): ActionPod[] =>
  exec.created.filter(
    (p) =>
      p.maintenanceUid === uid &&
      (node === undefined || p.node === node) &&
      (index === undefined || p.index === index),
  );

const readNode = (name: string): Promise<V1Node> => core.readNode({ name });

/** Taints other than the node lifecycle controller's (node.kubernetes.io/*). */
const taintKeys = (node: V1Node): string[] =>
  (node.spec?.taints ?? []).map((t) => t.key).filter((k) => !k.startsWith('node.kubernetes.io/'));

const annotation = (node: V1Node, key: string): string | undefined =>
  node.metadata?.annotations?.[key];

interface ClaimMark {
  maintenance?: string;
  uid?: string;
  phase?: string;
}

/** The Node's claim annotation, parsed here rather than by the coordinator's own code. */
const claimOf = (raw: string | undefined): ClaimMark =>
  raw === undefined ? {} : (JSON.parse(raw) as ClaimMark);

/** Back in service as before noma: schedulable, none of noma's taints or marks. */
async function expectReturned(name: string): Promise<void> {
  const node = await readNode(name);
  expect(node.spec?.unschedulable, `${name} unschedulable`).toBeFalsy();
  expect(taintKeys(node), `${name} taints`).toEqual([]);
  expect(annotation(node, CLAIM), `${name} claim`).toBeUndefined();
  expect(annotation(node, LEFT_BY), `${name} left-by`).toBeUndefined();
  expect(node.metadata?.labels?.['noma.dev/maintenance'], `${name} label`).toBeUndefined();
}

async function eventsFor(maintenance: string): Promise<CoreV1Event[]> {
  const list = await core.listNamespacedEvent({ namespace: ns.name });
  return list.items.filter((e) => e.involvedObject.name === maintenance);
}

/** How many Events of `reason` (and `type`) the maintenance has, repeats counted. */
async function countEvents(maintenance: string, reason: string, type = 'Normal'): Promise<number> {
  return (await eventsFor(maintenance))
    .filter((e) => e.reason === reason && e.type === type)
    .reduce((n, e) => n + (e.count ?? 1), 0);
}

const waitEvent = (maintenance: string, reason: string, type = 'Normal', count = 1) =>
  waitFor(`${count} ${type} ${reason} event(s) on ${maintenance}`, async () =>
    (await countEvents(maintenance, reason, type)) >= count ? true : undefined,
  );

const step = (name: string) => ({ type: 'Run', name, run: { command: ['true'], image: IMAGE } });

describe('fail-safe maintenance', () => {
  beforeEach(() => {
    onTestFailed(() => {
      console.log(coordinator.logs.slice(-80).join('\n'));
    });
  });

  afterEach(async () => {
    // Maintenances first (their deletion returns the nodes), then the observers.
    const errors: unknown[] = [];
    for (const c of cleanups.splice(0).reverse()) await c().catch((e: unknown) => errors.push(e));
    if (errors.length > 0) throw errors[0];
  });

  it('halts at the first failure, restores the node on request, and retries only the failed step', async () => {
    const group = uniqueName('budget');
    const names = await simNodes(group, 4);
    const rec = await nodesRecorder(group);
    // ok-step succeeds everywhere; fail-step fails (attempt 1) until the fault is "fixed";
    // a retried fail-step (attempt 2) is held so that its status can be read while it runs.
    const fault = { fixed: false };
    const exec = await executor((p) => {
      if (p.index === 0) return { exit: 0, message: 'ok\n' };
      if (p.attempt >= 2) return 'hold';
      return fault.fixed ? { exit: 0 } : { exit: 2, message: 'ECC errors on GPU 3\n' };
    });
    const uid = await createMaintenance('budget', {
      nodeSelector: `noma.dev/test-group=${group}`,
      options: { maxUnavailable: 1 },
      actions: [step('ok-step'), step('fail-step'), { type: 'Complete' }],
    });

    const halted = await waitPhase('budget', 'Halted');
    const failed = halted.status?.nodes?.filter((n) => n.phase === 'Failed') ?? [];
    expect(failed).toHaveLength(1);
    const first = failed[0]?.name ?? '';
    expect(nodeStatus(halted, first)).toMatchObject({ currentActionIndex: 1, lastExitCode: 2 });
    expect(halted.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'FailureBudgetExceeded',
    });
    // Time for a wrong coordinator to march on; then nothing but the failed node was touched.
    await sleep(1_500);
    const others = names.filter((n) => n !== first);
    const waiting = await waitFor('the other nodes waiting, halted', async () => {
      const m = await mustGet('budget');
      const rest = others.map((n) => nodeStatus(m, n));
      return rest.every((n) => n?.message?.startsWith('waiting: halted') === true) ? rest : false;
    });
    for (const n of waiting) expect(n).toMatchObject({ phase: 'Pending' });
    for (const n of waiting) expect(n?.initialState).toBeUndefined();
    expect(rec.everUnschedulable()).toEqual([first]);
    expect(podsOf(exec, uid).map((p) => `${p.node}/${p.index}/${p.attempt}`)).toEqual([
      `${first}/0/1`,
      `${first}/1/1`,
    ]);
    expect((await mustGet('budget')).status?.phase).toBe('Halted');
    const held = await readNode(first);
    expect(held.spec?.unschedulable).toBe(true);
    expect(taintKeys(held)).toContain(NOMA_TAINT);
    expect(claimOf(annotation(held, CLAIM))).toEqual({
      maintenance: `${ns.name}/budget`,
      uid,
      phase: 'Failed',
    });
    await waitEvent('budget', 'FailureBudgetExceeded', 'Warning');
    const halt = await waitFor('the halt notified on the webhook', () =>
      Promise.resolve(webhook.posts.find((p) => p.text.includes(`${ns.name}/budget`))),
    );
    expect(halt.channel).toBe('noma');
    expect(halt.text).toContain('halted');
    expect(halt.text).toContain(first);

    // `noma restore`: the failed node goes back to service and gives its slot back.
    const restore = await runNoma([
      'restore',
      'budget',
      '--node',
      first,
      '-n',
      ns.name,
      '--kubeconfig',
      inject('kubeconfig'),
    ]);
    expect(restore.code, restore.stderr).toBe(0);
    const restored = await waitFor('the node Restored and the request cleared', async () => {
      const m = await mustGet('budget');
      const done =
        nodeStatus(m, first)?.phase === 'Restored' &&
        m.metadata.annotations?.['noma.dev/restore'] === undefined;
      return done ? m : undefined;
    });
    expect(nodeStatus(restored, first)?.message).toContain('restored on request');
    await expectReturned(first);

    // The slot is free again: the next node starts, and the same step fails there.
    const rehalted = await waitFor('a second node failed', async () => {
      const m = await mustGet('budget');
      const f = m.status?.nodes?.filter((n) => n.phase === 'Failed') ?? [];
      return m.status?.phase === 'Halted' && f.length === 1 && f[0]?.name !== first ? m : false;
    });
    const second = rehalted.status?.nodes?.find((n) => n.phase === 'Failed')?.name ?? '';
    expect(podsOf(exec, uid, second).map((p) => `${p.index}/${p.attempt}`)).toEqual(['0/1', '1/1']);
    // Each halt is announced: resumed after the restore, halted again now.
    const announced = (probe: () => Promise<boolean>) =>
      waitFor('an announcement', probe, 10_000).catch(() => false);
    expect(
      await announced(async () => (await countEvents('budget', 'Resumed')) >= 1),
      'a Resumed event after the restore',
    ).toBe(true);
    expect(
      await announced(
        async () => (await countEvents('budget', 'FailureBudgetExceeded', 'Warning')) >= 2,
      ),
      'a second FailureBudgetExceeded event',
    ).toBe(true);
    expect(
      await announced(() => Promise.resolve(webhook.posts.some((p) => p.text.includes(second)))),
      'the second halt on the webhook',
    ).toBe(true);

    // Retry with plain kubectl's equivalent (the annotation): only the failed step runs again.
    await patchMaintenance('budget', { metadata: { annotations: { 'noma.dev/retry': second } } });
    const retryPod = await exec.waitPod(
      'the retried step',
      (p) => p.node === second && p.attempt === 2,
    );
    expect(retryPod.index).toBe(1);
    expect(retryPod.actionId).toBe(`${uid}/${second}/1/2`);
    const running = await waitFor('attempt 2 in status, the request cleared', async () => {
      const m = await mustGet('budget');
      const s = nodeStatus(m, second);
      const ok =
        s?.phase === 'InAction' &&
        s.attempt === 2 &&
        m.metadata.annotations?.['noma.dev/retry'] === undefined;
      return ok ? s : undefined;
    });
    expect(running).toMatchObject({ currentActionIndex: 1, actionID: `${uid}/${second}/1/2` });
    expect((await readNode(second)).spec?.unschedulable).toBe(true);

    // The fault is fixed: the retry and the remaining nodes succeed.
    fault.fixed = true;
    await exec.end(retryPod, 0);
    const done = await waitPhase('budget', 'Completed', 60_000);
    expect(nodeStatus(done, first)?.phase).toBe('Restored');
    for (const n of others) expect(nodeStatus(done, n)?.phase).toBe('Succeeded');
    for (const n of names) await expectReturned(n);
    // One pod per node and step, plus the one retry: the ok-step never ran twice anywhere.
    for (const n of names) {
      expect(podsOf(exec, uid, n, 0), `${n} ok-step pods`).toHaveLength(1);
      expect(podsOf(exec, uid, n, 1), `${n} fail-step pods`).toHaveLength(n === second ? 2 : 1);
    }
    expect(rec.maxUnschedulable()).toBe(1);
    // Both requests were carried out: none of them was refused.
    expect(await countEvents('budget', 'RequestRefused', 'Warning'), 'RequestRefused events').toBe(
      0,
    );
  }, 150_000);

  it('halts after the first failure with maxUnavailable 2: the in-flight node ends its step and stops', async () => {
    const group = uniqueName('inflight');
    const names = await simNodes(group, 4);
    const rec = await nodesRecorder(group);
    // Every step-a pod is held: the test decides which fails and which finishes, once both of
    // the nodes maxUnavailable 2 admits are in their step. step-b succeeds (it must not run).
    const exec = await executor((p) => (p.index === 0 ? 'hold' : { exit: 0 }));
    const uid = await createMaintenance('inflight', {
      nodeSelector: `noma.dev/test-group=${group}`,
      options: { maxUnavailable: 2, maxFailedNodes: 1 },
      actions: [step('step-a'), step('step-b'), { type: 'Complete' }],
    });
    await waitFor('two nodes in step-a', () =>
      Promise.resolve(podsOf(exec, uid, undefined, 0).length === 2),
    );
    const [failing, inFlight] = podsOf(exec, uid, undefined, 0);
    if (failing === undefined || inFlight === undefined) throw new Error('two pods expected');
    await exec.end(failing, 1, 'GPU fell off the bus\n');
    const halted = await waitPhase('inflight', 'Halted');
    expect(nodeStatus(halted, failing.node)?.phase).toBe('Failed');
    expect(nodeStatus(halted, inFlight.node)?.phase).toBe('InAction');

    // The node in flight finishes its step (the pod ends) and does not begin the next one.
    await exec.end(inFlight, 0);
    const stopped = await waitFor('the in-flight node between steps, halted', async () => {
      const s = nodeStatus(await mustGet('inflight'), inFlight.node);
      return s?.currentActionIndex === 1 && s.message?.startsWith('waiting: halted') === true
        ? s
        : undefined;
    });
    expect(stopped.phase).toBe('InAction');
    expect(stopped.actionID).toBeUndefined();
    await sleep(2_000);
    const m = await mustGet('inflight');
    expect(m.status?.phase).toBe('Halted');
    expect(m.status?.nodes?.filter((n) => n.phase === 'Failed').map((n) => n.name)).toEqual([
      failing.node,
    ]);
    expect(podsOf(exec, uid, undefined, 1)).toEqual([]);
    expect(podsOf(exec, uid)).toHaveLength(2);
    expect(rec.everUnschedulable()).toEqual([failing.node, inFlight.node].sort());
    const untouched = names.filter((n) => n !== failing.node && n !== inFlight.node);
    for (const n of untouched) expect(nodeStatus(m, n)?.initialState).toBeUndefined();

    // Deleting the maintenance returns every node it holds, the failed one included.
    await nm().remove('inflight');
    await waitFor('inflight gone', async () => (await getMaintenance('inflight')) === undefined);
    for (const n of names) await expectReturned(n);
  }, 90_000);

  it('pauses between steps and resumes', async () => {
    const group = uniqueName('pause');
    const names = await simNodes(group, 2);
    const rec = await nodesRecorder(group);
    const auto = { on: false };
    const exec = await executor(() => (auto.on ? { exit: 0 } : 'hold'));
    const uid = await createMaintenance('pause', {
      nodeSelector: `noma.dev/test-group=${group}`,
      options: { maxUnavailable: 1 },
      actions: [step('step-a'), step('step-b'), { type: 'Complete' }],
    });
    const a = await exec.waitPod('step-a running', (p) => p.maintenanceUid === uid);
    await patchMaintenance('pause', { spec: { paused: true } });
    await waitPhase('pause', 'Paused');
    await waitEvent('pause', 'Paused');

    // The step in flight finishes; the next one does not begin while paused.
    await exec.end(a, 0);
    const between = await waitFor('the node between steps, paused', async () => {
      const s = nodeStatus(await mustGet('pause'), a.node);
      return s?.currentActionIndex === 1 && s.message?.startsWith('waiting: paused') === true
        ? s
        : undefined;
    });
    expect(between).toMatchObject({ phase: 'InAction' });
    expect(between.actionID).toBeUndefined();
    await sleep(2_000);
    expect((await mustGet('pause')).status?.phase).toBe('Paused');
    expect(podsOf(exec, uid).map((p) => `${p.node}/${p.index}`)).toEqual([`${a.node}/0`]);
    expect(rec.everUnschedulable()).toEqual([a.node]);
    expect((await readNode(a.node)).spec?.unschedulable).toBe(true);

    auto.on = true;
    await patchMaintenance('pause', { spec: { paused: false } });
    const done = await waitPhase('pause', 'Completed');
    await waitEvent('pause', 'Resumed');
    for (const n of names) {
      expect(nodeStatus(done, n)?.phase).toBe('Succeeded');
      expect(podsOf(exec, uid, n).map((p) => p.index)).toEqual([0, 1]);
      await expectReturned(n);
    }
    expect(rec.maxUnschedulable()).toBe(1);
  });

  it.each([
    ['NotReady', 'notready'],
    ['cordoned by an admin', 'admincordon'],
  ] as const)(
    'counts a selected node that is %s against maxUnavailable',
    async (_what, prefix) => {
      const group = uniqueName(prefix);
      const healthy = await simNodes(group, 3);
      const unavailable = uniqueName(group);
      nodes.push(unavailable);
      if (prefix === 'notready') {
        await createNotReadyNode(unavailable, {
          labels: { 'noma.dev/test-group': group },
          capacity: { 'nvidia.com/gpu': '8' },
        });
      } else {
        await createSimNode(unavailable, {
          labels: { 'noma.dev/test-group': group },
          capacity: { 'nvidia.com/gpu': '8' },
          unschedulable: true,
        });
      }
      const rec = await nodesRecorder(group);
      // The unavailable node's step is held while the others are watched; the rest succeed.
      // A NotReady node has no kubelet (nor KWOK): its pod never runs, the test ends it.
      const exec = await executor(
        (p) => (p.node === unavailable ? 'hold' : { exit: 0 }),
        (p) => p.node === unavailable && prefix === 'notready',
      );
      const uid = await createMaintenance(prefix, {
        nodeSelector: `noma.dev/test-group=${group}`,
        options: { maxUnavailable: 1 },
        actions: [step('step'), { type: 'Complete' }],
      });
      // The unavailable node already takes the one slot: it is the only one that may start.
      const pod = await exec.waitPod(
        'the unavailable node in its step',
        (p) => p.maintenanceUid === uid,
      );
      expect(pod.node).toBe(unavailable);
      const m = await waitFor('the healthy nodes waiting for the slot', async () => {
        const got = await mustGet(prefix);
        const msgs = healthy.map((n) => nodeStatus(got, n)?.message ?? '');
        return msgs.every((t) => t.includes('maxUnavailable (1) reached')) ? got : undefined;
      });
      for (const n of healthy) expect(nodeStatus(m, n)?.initialState).toBeUndefined();
      await sleep(1_500);
      expect(rec.everUnschedulable(healthy)).toEqual([]);
      expect(podsOf(exec, uid).map((p) => p.node)).toEqual([unavailable]);

      await exec.end(pod, 0);
      const done = await waitPhase(prefix, 'Completed', 60_000);
      for (const n of [...healthy, unavailable])
        expect(nodeStatus(done, n)?.phase).toBe('Succeeded');
      for (const n of healthy) await expectReturned(n);
      expect(rec.maxUnschedulable(healthy)).toBe(1);
      // An admin's cordon is not noma's to undo.
      const after = await readNode(unavailable);
      expect(after.spec?.unschedulable ?? false).toBe(prefix === 'admincordon');
      expect(taintKeys(after)).toEqual([]);
      expect(annotation(after, CLAIM)).toBeUndefined();
    },
    90_000,
  );

  it('keeps a node claimed across a coordinator restart: the waiting maintenance, listed first, waits', async () => {
    const group = uniqueName('race');
    const [node = ''] = await simNodes(group, 1);
    const rec = await nodesRecorder(group);
    // The holder's step is held until the test ends it; the waiter's (if it ever runs) succeeds.
    const ids = { waiter: '' };
    const exec = await executor((p) => (p.maintenanceUid === ids.waiter ? { exit: 0 } : 'hold'));
    // Listed in name order: `a-waits` comes before `z-holds` after the restart.
    const holderUid = await createMaintenance('z-holds', {
      nodeSelector: `kubernetes.io/hostname=${node}`,
      actions: [step('long-step'), { type: 'Complete' }],
    });
    const held = await exec.waitPod('z-holds in its step', (p) => p.maintenanceUid === holderUid);
    const waiterUid = await createMaintenance('a-waits', {
      nodeSelector: `kubernetes.io/hostname=${node}`,
      actions: [step('other-step'), { type: 'Complete' }],
    });
    ids.waiter = waiterUid;
    const waitsFor = new RegExp(
      `^waiting: (node is in maintenance|node is claimed by maintenance) ${ns.name}/z-holds`,
    );
    await waitFor('a-waits waiting for the node', async () =>
      waitsFor.test(nodeStatus(await getMaintenance('a-waits'), node)?.message ?? ''),
    );

    await coordinator.kill('SIGKILL');
    coordinator = await startCoordinator(inject('kubeconfig'), coordinatorArgs());
    await sleep(3_000);
    const waiting = nodeStatus(await mustGet('a-waits'), node);
    expect(waiting?.phase).toBe('Pending');
    expect(waiting?.initialState).toBeUndefined();
    expect(waiting?.message).toMatch(waitsFor);
    expect(podsOf(exec, waiterUid)).toEqual([]);
    // Every version of the Node since the holder cordoned it names the holder.
    const claims = rec.versions
      .map((v) => v.annotations[CLAIM])
      .filter((c) => c !== undefined)
      .map((c) => claimOf(c).uid);
    expect(claims.length).toBeGreaterThan(0);
    expect(new Set(claims)).toEqual(new Set([holderUid]));
    expect(podsOf(exec, holderUid).map((p) => p.uid)).toEqual([held.uid]);

    // The holder finishes; then, and only then, the waiting one takes the node.
    await exec.end(held, 0);
    const holderDone = await waitPhase('z-holds', 'Completed');
    await waitPhase('a-waits', 'Completed');
    const waiterPod = podsOf(exec, waiterUid);
    expect(waiterPod).toHaveLength(1);
    const holderEnd = nodeStatus(holderDone, node)?.completedAt ?? '';
    const waiterStart = nodeStatus(await mustGet('a-waits'), node)?.startedAt ?? '';
    expect(Date.parse(waiterStart)).toBeGreaterThanOrEqual(Date.parse(holderEnd) - 1_000);
    // The claims in order: the holder's, none, the waiter's, none.
    const sequence = rec.versions
      .map((v) => claimOf(v.annotations[CLAIM]).uid ?? '-')
      .filter((c, i, all) => i === 0 || all[i - 1] !== c);
    expect(sequence).toEqual(['-', holderUid, '-', waiterUid, '-']);
    await expectReturned(node);
  }, 90_000);

  it('returns a node an earlier maintenance left cordoned, and leaves an admin cordon', async () => {
    const group = uniqueName('leftby');
    const [left = ''] = await simNodes(group, 1);
    const [admin = ''] = await simNodes(group, 1, { unschedulable: true });
    const m1Taint = { key: 'example.com/m1', value: 'x', effect: 'NoSchedule' };
    await createMaintenance('leaves', {
      nodeSelector: `noma.dev/test-group=${group}`,
      options: { taints: [m1Taint] },
      actions: [],
    });
    await waitPhase('leaves', 'Completed');
    for (const n of [left, admin]) {
      // The result is in status first; the claim gives way to the left-by mark right after.
      const node = await waitFor(`${n} released`, async () => {
        const v = await readNode(n);
        return annotation(v, LEFT_BY) === undefined ? undefined : v;
      });
      expect(node.spec?.unschedulable, n).toBe(true);
      expect(taintKeys(node).sort(), n).toEqual(['example.com/m1', NOMA_TAINT]);
      expect(annotation(node, CLAIM), n).toBeUndefined();
      expect(JSON.parse(annotation(node, LEFT_BY) ?? '{}'), n).toMatchObject({
        maintenance: `${ns.name}/leaves`,
        unschedulable: n === left,
      });
    }

    await createMaintenance('returns', {
      nodeSelector: `noma.dev/test-group=${group}`,
      actions: [{ type: 'Complete' }],
    });
    const done = await waitPhase('returns', 'Completed');
    expect(nodeStatus(done, left)?.initialState?.unschedulable).toBe(false);
    expect(nodeStatus(done, admin)?.initialState?.unschedulable).toBe(true);
    await expectReturned(left);
    const stays = await readNode(admin);
    expect(stays.spec?.unschedulable).toBe(true);
    expect(taintKeys(stays)).toEqual([]);
    expect(annotation(stays, LEFT_BY)).toBeUndefined();
    expect(annotation(stays, CLAIM)).toBeUndefined();
  });

  it('adds a NoExecute taint of options.taints only after the drain', async () => {
    const group = uniqueName('noexec');
    const [node = ''] = await simNodes(group, 1);
    const rec = await nodesRecorder(group);
    const app = uniqueName('guarded');
    const guarded: V1Pod = {
      metadata: { name: app, labels: { app } },
      spec: {
        nodeName: node,
        terminationGracePeriodSeconds: 1,
        containers: [
          {
            name: 'main',
            image: 'registry.invalid/app:1',
            resources: { limits: { 'nvidia.com/gpu': '1' } },
          },
        ],
      },
    };
    await core.createNamespacedPod({ namespace: ns.name, body: guarded });
    const pods = await recordWatch<V1Pod>(
      kc,
      `/api/v1/namespaces/${ns.name}/pods`,
      () => core.listNamespacedPod({ namespace: ns.name, labelSelector: `app=${app}` }),
      { labelSelector: `app=${app}` },
    );
    cleanups.push(() => pods.stop());
    const policy = kc.makeApiClient(PolicyV1Api);
    await policy.createNamespacedPodDisruptionBudget({
      namespace: ns.name,
      body: {
        metadata: { name: app },
        spec: { minAvailable: 1, selector: { matchLabels: { app } } },
      },
    });
    const exec = await executor(() => 'hold');
    const uid = await createMaintenance('noexec', {
      nodeSelector: `noma.dev/test-group=${group}`,
      options: {
        evictUnmanagedPods: true,
        taints: [{ key: 'runai', value: 'drain', effect: 'NoExecute' }],
      },
      actions: [step('step'), { type: 'Complete' }],
    });
    const hasNoExecute = (v: { taints: readonly { key: string; effect: string }[] }) =>
      v.taints.some((t) => t.key === 'runai' && t.effect === 'NoExecute');

    // The PDB holds the drain: cordoned, the pod still there, and no NoExecute taint that
    // would make the taint-eviction controller end the pod around its PDB.
    const blocked = await waitFor('the drain blocked by the PDB', async () => {
      const s = nodeStatus(await getMaintenance('noexec'), node);
      return s?.phase === 'Draining' && s.drain?.blockedBy?.name === app ? s : undefined;
    });
    expect(blocked.drain?.scope).toBe('AllPods');
    await sleep(2_000);
    expect(nodeStatus(await mustGet('noexec'), node)?.phase).toBe('Draining');
    expect(rec.versions.filter(hasNoExecute)).toEqual([]);
    expect(rec.latest(node)?.unschedulable).toBe(true);
    const still = await core.readNamespacedPod({ name: app, namespace: ns.name });
    expect(still.metadata?.deletionTimestamp).toBeUndefined();

    await policy.deleteNamespacedPodDisruptionBudget({ name: app, namespace: ns.name });
    const pod = await exec.waitPod(
      'the step after the drain',
      (p) => p.maintenanceUid === uid,
      45_000,
    );
    await waitFor('the NoExecute taint on the node', async () =>
      taintKeys(await readNode(node)).includes('runai'),
    );
    // The taint came after the pod was gone: compare etcd revisions, not arrival times.
    const gone = pods.seen.find((s) => s.type === 'DELETED');
    const tainted = rec.versions.find(hasNoExecute);
    expect(gone, 'the drained pod deleted').toBeDefined();
    expect(tainted?.rv ?? 0).toBeGreaterThan(gone?.rv ?? Infinity);
    expect(nodeStatus(await mustGet('noexec'), node)?.drain).toMatchObject({
      scope: 'AllPods',
      evicted: 1,
      pending: 0,
    });

    await exec.end(pod, 0);
    await waitPhase('noexec', 'Completed');
    await expectReturned(node);
  }, 90_000);
});
