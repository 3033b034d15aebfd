// Issue 12 items 4 and 5 against the real API server and the coordinator process: the states
// other controllers watch (per-node state times, SLAExpired at drainTimeout, the claim
// annotation following the node's phase, the per-phase histogram) and Stuck nodes
// (--stuck-after). Drains are blocked by real PodDisruptionBudgets; the step that never ends is
// an image-based Run whose pod KWOK starts and nobody ends.
import { createGuardedPod } from '../support/drain-fixtures.js';
import { CoreV1Api, type CoreV1Event, type V1Node } from '@kubernetes/client-node';
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
import type { NodeMaintenance } from '../../shared/api/index.js';
import { runNoma } from '../support/cli.js';
import {
  startCoordinator,
  testCoordinatorArgs,
  type CoordinatorProcess,
} from '../support/coordinator-process.js';
import { installCRD } from '../support/crd.js';
import {
  adminKubeConfig,
  createNamespace,
  createSimNode,
  deleteSimNode,
  uniqueName,
  waitFor,
} from '../support/kube.js';
import { maintenances, nodeStatus } from '../support/maintenance.js';
import { recordNodes, type NodeRecorder } from '../support/observers.js';
import { startWebhookRecorder, type WebhookRecorder } from '../support/webhook.js';

const CLAIM = 'noma.dev/claim';
const IMAGE = 'maintenance-tools:test';
const ISO_SECONDS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
let ns: Awaited<ReturnType<typeof createNamespace>>;
let coordinator: CoordinatorProcess;
let webhook: WebhookRecorder;
const nodes: string[] = [];
const leaseName = uniqueName('lease');
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  await installCRD(kc);
  ns = await createNamespace('states');
  webhook = await startWebhookRecorder();
  coordinator = await startCoordinator(inject('kubeconfig'), [
    ...testCoordinatorArgs(ns.name, leaseName, 'states-under-test'),
    '--notify-webhook-url',
    webhook.url,
    '--stuck-after',
    '2s',
  ]);
});

afterAll(async () => {
  await coordinator.kill('SIGTERM');
  await webhook.close();
  await ns.remove();
  await Promise.all(nodes.map(deleteSimNode));
});

beforeEach(() => {
  onTestFailed(() => {
    console.log(coordinator.logs.slice(-60).join('\n'));
  });
});

afterEach(async () => {
  const errors: unknown[] = [];
  for (const c of cleanups.splice(0).reverse()) await c().catch((e: unknown) => errors.push(e));
  if (errors.length > 0) throw errors[0];
});

const nm = () => maintenances(kc, ns.name);

async function simNode(group: string): Promise<string> {
  const name = uniqueName(group);
  nodes.push(name);
  await createSimNode(name, {
    capacity: { 'nvidia.com/gpu': '8' },
    labels: { 'noma.dev/test-group': group },
  });
  return name;
}

async function createMaintenance(name: string, spec: Record<string, unknown>): Promise<string> {
  await nm().create(name, spec);
  cleanups.push(async () => {
    await nm()
      .remove(name)
      .catch(() => undefined);
    await waitFor(`${name} gone`, async () => (await nm().get(name)) === undefined);
  });
  return (await nm().get(name))?.metadata.uid ?? '';
}

async function nodesRecorder(group: string): Promise<NodeRecorder> {
  const rec = await recordNodes(kc, `noma.dev/test-group=${group}`);
  cleanups.push(() => rec.stop());
  return rec;
}

/** A GPU pod on `node` that a PDB (minAvailable 1) keeps from being evicted. */
const guardedPod = (name: string, node: string) =>
  createGuardedPod(kc, { namespace: ns.name, name, node });

/** The claim's phases as the Node's versions showed them, repeats folded; '-' for none. */
function claimPhases(rec: NodeRecorder, node: string): string[] {
  const phases = rec.versions
    .filter((v) => v.name === node)
    .map((v) => {
      const raw = v.annotations[CLAIM];
      return raw === undefined ? '-' : ((JSON.parse(raw) as { phase?: string }).phase ?? '?');
    });
  return phases.filter((p, i) => i === 0 || phases[i - 1] !== p);
}

async function eventsFor(object: string): Promise<CoreV1Event[]> {
  const list = await core.listEventForAllNamespaces({
    fieldSelector: `involvedObject.name=${object}`,
  });
  return list.items;
}

const waitEvent = (object: string, reason: string) =>
  waitFor(`a ${reason} event on ${object}`, async () =>
    (await eventsFor(object)).find((e) => e.reason === reason && e.type === 'Warning'),
  );

const condition = (m: NodeMaintenance | undefined, type: string) =>
  m?.status?.conditions?.find((c) => c.type === type);

async function metrics(): Promise<string> {
  const res = await fetch(`${coordinator.baseUrl}/metrics`);
  return res.text();
}

describe('states for other controllers', () => {
  it('a drain blocked by a PDB past drainTimeout records SLAExpired (condition, Event, webhook) and the node fails', async () => {
    const group = uniqueName('sla');
    const node = await simNode(group);
    await guardedPod('sla-guarded', node);
    const rec = await nodesRecorder(group);
    const uid = await createMaintenance('sla', {
      nodeSelector: `noma.dev/test-group=${group}`,
      options: { drainTimeout: '2s', evictUnmanagedPods: true },
      actions: [{ type: 'Complete' }],
    });

    const done = await nm().waitPhase('sla', 'Failed', 30_000);
    const n = nodeStatus(done, node);
    expect(n).toMatchObject({ phase: 'Failed' });
    expect(Object.keys(n?.phaseTimes ?? {}).sort()).toEqual([
      'cordoned',
      'failed',
      'scheduled',
      'slaExpired',
    ]);
    for (const t of Object.values(n?.phaseTimes ?? {})) expect(t).toMatch(ISO_SECONDS);
    const slaAfter =
      Date.parse(n?.phaseTimes?.slaExpired ?? '') - Date.parse(n?.phaseTimes?.cordoned ?? '');
    expect(slaAfter).toBeGreaterThanOrEqual(1_000);
    expect(slaAfter).toBeLessThanOrEqual(4_000);
    const sla = await waitFor('the SLAExpired condition', async () =>
      condition(await nm().get('sla'), 'SLAExpired'),
    );
    expect(sla).toMatchObject({ status: 'True', reason: 'DrainTimeoutPassed' });
    expect(sla.message).toContain(`1 node(s): ${node}`);
    const event = await waitEvent('sla', 'SLAExpired');
    expect(event.message).toContain(`drainTimeout (2s) passed while draining ${node}`);
    await waitEvent(node, 'SLAExpired');
    const post = await waitFor('the webhook POST', () =>
      Promise.resolve(webhook.posts.find((p) => p.text.includes(`${ns.name}/sla: drainTimeout`))),
    );
    expect(post.text).toContain('the node fails unless its pods go');

    // The claim told schedulers each phase as it came, and stays on the failed node.
    await waitFor('claim Failed', () =>
      Promise.resolve(claimPhases(rec, node).at(-1) === 'Failed' ? true : undefined),
    );
    expect(claimPhases(rec, node)).toEqual(['-', 'Cordoned', 'Draining', 'Failed']);
    const held: V1Node = await core.readNode({ name: node });
    expect(JSON.parse(held.metadata?.annotations?.[CLAIM] ?? '{}')).toEqual({
      maintenance: `${ns.name}/sla`,
      uid,
      phase: 'Failed',
    });
  });

  it('with forceDrain SLAExpired is recorded too, the node goes on, and its claim follows until it returns', async () => {
    const group = uniqueName('force');
    const node = await simNode(group);
    await guardedPod('force-guarded', node);
    const rec = await nodesRecorder(group);
    await createMaintenance('force', {
      nodeSelector: `noma.dev/test-group=${group}`,
      options: { drainTimeout: '2s', forceDrain: true, evictUnmanagedPods: true },
      actions: [{ type: 'Complete' }],
    });

    const done = await nm().waitPhase('force', 'Completed', 30_000);
    const times = nodeStatus(done, node)?.phaseTimes ?? {};
    expect(Object.keys(times).sort()).toEqual([
      'actionStarted',
      'completed',
      'cordoned',
      'drained',
      'scheduled',
      'slaExpired',
    ]);
    expect(Date.parse(times.slaExpired ?? '')).toBeLessThanOrEqual(Date.parse(times.drained ?? ''));
    expect(condition(done, 'SLAExpired')).toMatchObject({ status: 'True' });
    await waitEvent('force', 'SLAExpired');
    expect(webhook.posts.some((p) => p.text.includes(`${ns.name}/force: drainTimeout (2s)`))).toBe(
      true,
    );
    // Phases in order (a quick one may be folded into the next), the claim gone at the end.
    const seen = claimPhases(rec, node);
    expect(seen.slice(0, 3)).toEqual(['-', 'Cordoned', 'Draining']);
    expect(seen.at(-1)).toBe('-');
    const order = ['-', 'Cordoned', 'Draining', 'Drained', 'InAction', '-'];
    let at = 0;
    for (const p of seen.slice(1)) {
      const next = order.indexOf(p, at + 1);
      expect(next, `claim phases ${seen.join(' → ')}`).toBeGreaterThan(at);
      at = next;
    }
    const text = await metrics();
    expect(text).toMatch(/noma_node_phase_duration_seconds_count\{phase="Draining"\} [1-9]/);
    expect(text).toMatch(/noma_node_phase_duration_seconds_bucket\{le="1",phase="Draining"\} 0/);
  });

  it('a node whose step never ends is Stuck after --stuck-after, and noma status says so', async () => {
    const group = uniqueName('stuck');
    const node = await simNode(group);
    await createMaintenance('stuck', {
      nodeSelector: `noma.dev/test-group=${group}`,
      actions: [
        { type: 'Run', name: 'never-ends', run: { command: ['sleep', 'inf'], image: IMAGE } },
      ],
    });
    const m = await waitFor(
      'the Stuck condition',
      async () => {
        const got = await nm().get('stuck');
        return condition(got, 'Stuck')?.status === 'True' ? got : undefined;
      },
      30_000,
    );
    expect(nodeStatus(m, node)?.phase).toBe('InAction');
    expect(condition(m, 'Stuck')).toMatchObject({ reason: 'NodesStuck' });
    expect(condition(m, 'Stuck')?.message).toMatch(
      new RegExp(
        `^1 node\\(s\\) stuck: ${node}: step 0 \\(never-ends\\) for \\d+s without progress$`,
      ),
    );
    const event = await waitEvent(node, 'Stuck');
    expect(event.message).toContain('step 0 (never-ends)');
    expect(await metrics()).toMatch(/^noma_nodes_stuck [1-9]/m);

    const status = await runNoma([
      'status',
      'stuck',
      '-n',
      ns.name,
      '--kubeconfig',
      inject('kubeconfig'),
    ]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`STUCK: 1 node(s) stuck: ${node}: step 0 (never-ends)`);
    expect(status.stdout).toMatch(new RegExp(`${node} +InAction STUCK`));
  });
});
