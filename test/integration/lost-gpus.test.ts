// Lost GPUs on a real API server with real agent processes and the fake nvidia-smi: an 8-GPU
// node whose nvidia-smi then shows 7 keeps its labels and is marked degraded with a GPULost
// Event; `noma nodes accept-inventory` makes it take 7; a repaired node is healthy again; the
// coordinator with --degraded-gpu-taint taints a degraded node and untaints it when healthy.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import {
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type CoreV1Event,
  type V1Node,
} from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  ACCEPT_INVENTORY_ANNOTATION,
  GPU_HEALTH_DETAIL_ANNOTATION,
  GPU_HEALTH_LABEL,
} from '../../shared/labels.js';
import { DEGRADED_GPU_TAINT_ANNOTATION } from '../../shared/maintenance-keys.js';
import { startAgent, type AgentProcess } from '../support/agent-process.js';
import { runNoma } from '../support/cli.js';
import { startCoordinator, type CoordinatorProcess } from '../support/coordinator-process.js';
import { installCRD } from '../support/crd.js';
import {
  AGENT_SERVICE_ACCOUNT,
  applyObjects,
  deployObjects,
  isWorkload,
  NOMA_NAMESPACE,
} from '../support/deploy.js';
import { mintToken, writeTokenKubeconfig } from '../support/identity.js';
import {
  adminKubeConfig,
  createNamespace,
  createSimNode,
  deleteSimNode,
  uniqueName,
  waitFor,
} from '../support/kube.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const SCOPE_LABEL = 'noma.dev/test-lost-gpus';
const SCOPE = uniqueName('scope');
const TAINT = { key: 'noma.dev/gpu-degraded', effect: 'NoSchedule' };

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let rulesDir = '';
let rulesFile = '';
beforeAll(async () => {
  // A tier that only a full 8-GPU node reaches shows that the tier, too, is kept.
  rulesDir = await mkdtemp(join(tmpdir(), 'noma-lost-gpus-'));
  rulesFile = join(rulesDir, 'rules.yaml');
  await writeFile(
    rulesFile,
    [
      'tier:',
      '  label: hardware.tier',
      '  default: standard',
      '  rules:',
      '    - value: hgx-8',
      '      minGpus: 8',
      'tierLabels: {}',
      '',
    ].join('\n'),
  );
});
afterAll(async () => {
  await rm(rulesDir, { recursive: true, force: true });
});

const node = (name: string): Promise<V1Node> => core.readNode({ name });
const labelsOf = async (name: string) => (await node(name)).metadata?.labels ?? {};

async function eventsOf(name: string, reason: string): Promise<CoreV1Event[]> {
  const list = await core.listNamespacedEvent({
    namespace: 'default',
    fieldSelector: `involvedObject.name=${name},reason=${reason}`,
  });
  return list.items;
}

async function gpuNode(prefix: string): Promise<{ name: string; agent: AgentProcess }> {
  const name = uniqueName(prefix);
  await createSimNode(name, { labels: { [SCOPE_LABEL]: SCOPE } });
  cleanups.push(() => deleteSimNode(name));
  const agent = await startAgent({
    nodeName: name,
    kubeconfig: inject('kubeconfig'),
    fixture: 'h100-sxm-x8.csv',
    args: ['--rules', rulesFile],
  });
  cleanups.push(() => agent.stop());
  await waitFor('8 GPUs, healthy', async () => {
    const l = await labelsOf(name);
    return l['gpu.count'] === '8' && l[GPU_HEALTH_LABEL] === 'healthy';
  });
  return { name, agent };
}

async function degrade(agent: AgentProcess, name: string, fixture: string): Promise<V1Node> {
  await agent.useFixture(fixture);
  agent.signal('SIGHUP');
  return waitFor('degraded', async () => {
    const n = await node(name);
    return n.metadata?.labels?.[GPU_HEALTH_LABEL] === 'degraded' ? n : undefined;
  });
}

describe('lost GPUs', () => {
  it('one GPU gone: keeps count and tier, degraded, GPULost; accept-inventory takes 7', async () => {
    const { name, agent } = await gpuNode('lost-gone');
    const degraded = await degrade(agent, name, 'h100-sxm-x8-one-gone.csv');
    expect(degraded.metadata?.labels).toMatchObject({
      'gpu.count': '8',
      'noma.dev/gpu.count': '8',
      'hardware.tier': 'hgx-8',
      [GPU_HEALTH_LABEL]: 'degraded',
    });
    const detail = JSON.parse(
      degraded.metadata?.annotations?.[GPU_HEALTH_DETAIL_ANNOTATION] ?? '{}',
    ) as Record<string, unknown>;
    expect(detail).toMatchObject({
      expected: 8,
      answering: 7,
      lost: [{ pciBusId: '00000000:5D:00.0', uuid: 'GPU-9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c43' }],
    });
    const [lost] = await waitFor('GPULost event', async () => {
      const e = await eventsOf(name, 'GPULost');
      return e.length > 0 ? e : undefined;
    });
    expect(lost?.type).toBe('Warning');
    expect(lost?.involvedObject.kind).toBe('Node');
    expect(lost?.message).toMatch(/^7 of 8 GPUs answer/);
    expect(String((await agent.get('/metrics')).body)).toMatch(/^noma_agent_gpus_lost 1$/m);
    expect((await agent.get('/status')).body).toMatchObject({
      gpuHealth: { health: 'degraded', expected: 8, answering: 7, lost: 1 },
    });
    // The loss is announced once, not at every discovery.
    agent.signal('SIGHUP');
    await waitFor('a third discovery', async () =>
      /^noma_agent_discovery_duration_seconds_count [3-9]/m.test(
        String((await agent.get('/metrics')).body),
      ),
    );
    expect(await eventsOf(name, 'GPULost')).toHaveLength(1);

    const run = await runNoma([
      ...['nodes', 'accept-inventory', name],
      ...['--kubeconfig', inject('kubeconfig'), '--wait', '--timeout', '30s'],
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('accept 7 GPUs (it remembers 8)');
    const after = await node(name);
    expect(after.metadata?.labels).toMatchObject({
      'gpu.count': '7',
      'hardware.tier': 'standard',
      [GPU_HEALTH_LABEL]: 'healthy',
    });
    expect(after.metadata?.annotations?.[ACCEPT_INVENTORY_ANNOTATION]).toBeUndefined();
    expect(after.metadata?.annotations?.[GPU_HEALTH_DETAIL_ANNOTATION]).toBeUndefined();
    await waitFor('InventoryAccepted event', async () => {
      return (await eventsOf(name, 'InventoryAccepted')).length === 1;
    });
    expect(String((await agent.get('/metrics')).body)).toMatch(/^noma_agent_gpus_lost 0$/m);
  });

  it('a device that answers with an error: degraded with the error; repaired: healthy', async () => {
    const { name, agent } = await gpuNode('lost-error');
    const degraded = await degrade(agent, name, 'h100-sxm-x8-device-error.txt');
    expect(degraded.metadata?.labels?.['gpu.count']).toBe('8');
    expect(degraded.metadata?.annotations?.[GPU_HEALTH_DETAIL_ANNOTATION]).toContain(
      'Unknown Error',
    );
    // A partial answer is still a discovery: the agent stays ready.
    expect((await agent.get('/readyz')).status).toBe(200);

    // An accept that does not match what answers is refused and changes nothing.
    await core.patchNode(
      { name, body: { metadata: { annotations: { [ACCEPT_INVENTORY_ANNOTATION]: '6' } } } },
      MERGE,
    );
    await waitFor('refusal', async () => (await eventsOf(name, 'InventoryAcceptRefused')).length);
    // The Event and the removal of the annotation are two writes; either may land first.
    const refused = await waitFor('the refused annotation removed', async () => {
      const n = await node(name);
      return n.metadata?.annotations?.[ACCEPT_INVENTORY_ANNOTATION] === undefined ? n : undefined;
    });
    expect(refused.metadata?.labels?.[GPU_HEALTH_LABEL]).toBe('degraded');

    await agent.useFixture('h100-sxm-x8.csv');
    agent.signal('SIGHUP');
    await waitFor('healthy again', async () => {
      const l = await labelsOf(name);
      return l[GPU_HEALTH_LABEL] === 'healthy' && l['gpu.count'] === '8';
    });
    await waitFor('GPUsRecovered event', async () => {
      return (await eventsOf(name, 'GPUsRecovered')).length === 1;
    });
  });

  it('a GPU lost while the agent was down is noticed from the state dir, and announced once', async () => {
    const name = uniqueName('lost-restart');
    await createSimNode(name, { labels: { [SCOPE_LABEL]: SCOPE } });
    cleanups.push(() => deleteSimNode(name));
    const stateDir = join(rulesDir, name);
    const start = (fixture: string) =>
      startAgent({
        nodeName: name,
        kubeconfig: inject('kubeconfig'),
        fixture,
        // Later flags win: every run of the agent shares one state dir, as on a real host.
        args: ['--rules', rulesFile, '--state-dir', stateDir],
      });
    const first = await start('h100-sxm-x8.csv');
    await waitFor('8 GPUs', async () => (await labelsOf(name))[GPU_HEALTH_LABEL] === 'healthy');
    expect(await first.stop()).toBe(0);

    const second = await start('h100-sxm-x8-one-gone.csv');
    cleanups.push(() => second.stop());
    await waitFor('degraded after the restart', async () => {
      const l = await labelsOf(name);
      return l[GPU_HEALTH_LABEL] === 'degraded' && l['gpu.count'] === '8';
    });
    await waitFor('GPULost event', async () => (await eventsOf(name, 'GPULost')).length === 1);
    expect(second.logs.join('\n')).toContain('"reason":"GPULost"');
    expect(await second.stop()).toBe(0);

    const third = await start('h100-sxm-x8-one-gone.csv');
    cleanups.push(() => third.stop());
    await waitFor('ready', async () => (await third.get('/readyz')).status === 200);
    expect((await third.get('/status')).body).toMatchObject({
      gpuHealth: { health: 'degraded', expected: 8, lost: 1 },
    });
    // A repeated Event would be written right after the decision; give it the time to show.
    await sleep(1_000);
    expect(await eventsOf(name, 'GPULost')).toHaveLength(1);
    expect(third.logs.join('\n')).not.toContain('"reason":"GPULost"');
  });

  it("under deploy/'s agent identity (RBAC, admission policy) it may write all of this on its Node", async () => {
    await applyObjects(
      kc,
      deployObjects().filter((o) => !isWorkload(o)),
      'noma-deploy-test',
    );
    const name = uniqueName('lost-identity');
    await createSimNode(name, { labels: { [SCOPE_LABEL]: SCOPE } });
    cleanups.push(() => deleteSimNode(name));
    // The DaemonSet's pod on that node, as far as identity goes.
    const podName = uniqueName('agent-lost');
    const pod = await core.createNamespacedPod({
      namespace: NOMA_NAMESPACE,
      body: {
        metadata: { name: podName, labels: { 'noma.dev/test': 'lost-gpus' } },
        spec: {
          nodeName: name,
          serviceAccountName: AGENT_SERVICE_ACCOUNT,
          tolerations: [{ operator: 'Exists' }],
          containers: [{ name: 'agent', image: 'noma:test' }],
        },
      },
    });
    cleanups.push(() =>
      core
        .deleteNamespacedPod({ name: podName, namespace: NOMA_NAMESPACE, gracePeriodSeconds: 0 })
        .catch(() => undefined),
    );
    const token = await mintToken(kc, NOMA_NAMESPACE, AGENT_SERVICE_ACCOUNT, {
      boundPod: { name: podName, uid: pod.metadata?.uid ?? '' },
    });
    const agent = await startAgent({
      nodeName: name,
      kubeconfig: writeTokenKubeconfig(kc, token, join(rulesDir, `${name}.kubeconfig`), 'agent'),
      fixture: 'h100-sxm-x8.csv',
    });
    cleanups.push(() => agent.stop());
    await waitFor('healthy', async () => (await labelsOf(name))[GPU_HEALTH_LABEL] === 'healthy');
    const degraded = await degrade(agent, name, 'h100-sxm-x8-device-error.txt');
    expect(degraded.metadata?.annotations?.[GPU_HEALTH_DETAIL_ANNOTATION]).toContain(
      '"answering":7',
    );
    await waitFor('GPULost event', async () => (await eventsOf(name, 'GPULost')).length === 1);
    await core.patchNode(
      { name, body: { metadata: { annotations: { [ACCEPT_INVENTORY_ANNOTATION]: '7' } } } },
      MERGE,
    );
    const accepted = await waitFor('accepted', async () => {
      const n = await node(name);
      return n.metadata?.labels?.[GPU_HEALTH_LABEL] === 'healthy' ? n : undefined;
    });
    expect(accepted.metadata?.labels?.['gpu.count']).toBe('7');
    expect(accepted.metadata?.annotations?.[ACCEPT_INVENTORY_ANNOTATION]).toBeUndefined();
    expect(accepted.metadata?.annotations?.[GPU_HEALTH_DETAIL_ANNOTATION]).toBeUndefined();
    expect(agent.logs.join('\n')).not.toMatch(/could not (label the node|record the Event)/);
  });

  describe('with the coordinator started with --degraded-gpu-taint', () => {
    let coordinator: CoordinatorProcess;
    let ns: Awaited<ReturnType<typeof createNamespace>>;
    beforeAll(async () => {
      await installCRD(kc);
      ns = await createNamespace('lost-gpus');
      coordinator = await startCoordinator(
        inject('kubeconfig'),
        [
          ...['--namespace', ns.name, '--watch-namespace', ns.name],
          ...['--lease-name', uniqueName('lease-gpu'), '--identity', 'gpu-health-under-test'],
          ...['--lease-duration', '2s'],
          ...['--degraded-gpu-taint', `${TAINT.key}:${TAINT.effect}`],
        ],
        30_000,
        false,
        { NOMA_DEGRADED_GPU_NODE_SELECTOR: `${SCOPE_LABEL}=${SCOPE}` },
      );
    });
    afterAll(async () => {
      await coordinator.kill('SIGTERM');
      await ns.remove();
    });

    it('taints the degraded node and removes only its own taint when healthy', async () => {
      const { name, agent } = await gpuNode('lost-taint');
      const foreign = { key: 'team/hold', value: 'x', effect: 'NoSchedule' };
      await core.patchNode({ name, body: { spec: { taints: [foreign] } } }, MERGE);
      await degrade(agent, name, 'h100-sxm-x8-one-gone.csv');
      const tainted = await waitFor('taint', async () => {
        const n = await node(name);
        return n.spec?.taints?.some((t) => t.key === TAINT.key) === true ? n : undefined;
      });
      expect(tainted.spec?.taints).toEqual([foreign, TAINT]);
      expect(tainted.metadata?.annotations?.[DEGRADED_GPU_TAINT_ANNOTATION]).toBe(
        `${TAINT.key}:${TAINT.effect}`,
      );
      await waitFor('DegradedGpuTainted event', async () =>
        (await eventsOf(name, 'DegradedGpuTainted')).length === 1 ? true : undefined,
      );

      await agent.useFixture('h100-sxm-x8.csv');
      agent.signal('SIGHUP');
      const untainted = await waitFor('untainted', async () => {
        const n = await node(name);
        return n.spec?.taints?.some((t) => t.key === TAINT.key) === false ? n : undefined;
      });
      expect(untainted.metadata?.labels?.[GPU_HEALTH_LABEL]).toBe('healthy');
      expect(untainted.spec?.taints).toEqual([foreign]);
      expect(untainted.metadata?.annotations?.[DEGRADED_GPU_TAINT_ANNOTATION]).toBeUndefined();
      expect(coordinator.logs.join('\n')).toContain('tainting nodes whose GPUs are degraded');
    });
  });
});
