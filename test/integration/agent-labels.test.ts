// The agent process against the real API server: labels on join, ownership, restore,
// GPU removal and broken drivers. Each test has its own simulated Node.
import { CoreV1Api, PatchStrategy, setHeaderOptions, type V1Node } from '@kubernetes/client-node';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { MANAGED_LABELS_ANNOTATION } from '../../shared/labels.js';
import { startAgent, type AgentProcess } from '../support/agent-process.js';
import {
  adminKubeConfig,
  createSimNode,
  deleteSimNode,
  uniqueName,
  waitFor,
} from '../support/kube.js';

const core = adminKubeConfig().makeApiClient(CoreV1Api);
const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

const YEEZYAI_LABELS = {
  'nvidia.com/gpu': 'true',
  'node-role.kubernetes.io/gpu-worker': 'true',
  'gpu.nvidia.present': 'true',
  'gpu.count': '2',
  'gpu.rtx5070': 'true',
  'gpu.rtx3050': 'true',
  accelerator: 'nvidia-gpu',
  'node-type': 'gpu-compute',
  'hardware.tier': 'dual-gpu',
  'noma.dev/gpu.count': '2',
  'noma.dev/gpu.product': 'mixed',
  'noma.dev/gpu.memory-mib': '8192',
  'noma.dev/gpu.driver': '570.133.07',
  'noma.dev/gpu.health': 'healthy',
};

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function node(name: string): Promise<V1Node> {
  return core.readNode({ name });
}

async function labelsOf(name: string): Promise<Record<string, string>> {
  return (await node(name)).metadata?.labels ?? {};
}

function hasAll(labels: Record<string, string>, want: Record<string, string>): boolean {
  return Object.entries(want).every(([k, v]) => labels[k] === v);
}

async function setup(
  prefix: string,
  fixture: string,
  nodeLabels: Record<string, string> = {},
  annotations: Record<string, string> = {},
  args: string[] = [],
): Promise<{ name: string; agent: AgentProcess }> {
  const name = uniqueName(prefix);
  await createSimNode(name, { labels: nodeLabels });
  cleanups.push(() => deleteSimNode(name));
  if (Object.keys(annotations).length > 0) {
    await core.patchNode({ name, body: { metadata: { annotations } } }, MERGE);
  }
  const agent = await startAgent({
    nodeName: name,
    kubeconfig: inject('kubeconfig'),
    fixture,
    args,
  });
  cleanups.push(() => agent.stop());
  return { name, agent };
}

describe('noma agent on a real API server', () => {
  it('labels its Node on start, records ownership, and leaves foreign labels alone', async () => {
    const { name, agent } = await setup('agent-join', 'rtx5070-rtx3050.csv', { team: 'ml' });
    const labels = await waitFor('GPU labels', async () => {
      const l = await labelsOf(name);
      return hasAll(l, YEEZYAI_LABELS) ? l : undefined;
    });
    expect(labels['team']).toBe('ml');
    expect(labels['kubernetes.io/hostname']).toBe(name);
    const annotation = (await node(name)).metadata?.annotations?.[MANAGED_LABELS_ANNOTATION];
    expect(annotation?.split(',')).toEqual(Object.keys(YEEZYAI_LABELS).sort());

    const ready = await waitFor('ready', async () => {
      const r = await agent.get('/readyz');
      return r.status === 200 ? r : undefined;
    });
    expect(ready.body).toMatchObject({ ready: true });
    const status = await agent.get('/status');
    expect(status.body).toMatchObject({
      node: name,
      inventory: { driver: 'present', gpus: [{ name: 'NVIDIA GeForce RTX 5070' }, { index: 1 }] },
      labels: YEEZYAI_LABELS,
      lastError: null,
    });
    const metrics = await agent.get('/metrics');
    expect(metrics.body).toMatch(/noma_agent_label_patches_total\{reason="apply"\} 1/);
    expect(metrics.body).toMatch(/noma_agent_gpus 2/);
    expect(metrics.body).toMatch(/process_resident_memory_bytes/);
    expect(await agent.get('/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
  });

  it('puts back a managed label that someone removed or changed, and records an Event', async () => {
    const { name } = await setup('agent-restore', 'rtx5070-rtx3050.csv', { team: 'ml' });
    await waitFor('GPU labels', async () => hasAll(await labelsOf(name), YEEZYAI_LABELS));

    await core.patchNode(
      {
        name,
        body: {
          metadata: { labels: { 'gpu.count': null, 'hardware.tier': 'tampered', team: 'ai' } },
        },
      },
      MERGE,
    );
    const restored = await waitFor('labels restored', async () => {
      const l = await labelsOf(name);
      return hasAll(l, YEEZYAI_LABELS) ? l : undefined;
    });
    // The foreign label's new value is someone else's business.
    expect(restored['team']).toBe('ai');

    const event = await waitFor('LabelsRestored event', async () => {
      const events = await core.listNamespacedEvent({
        namespace: 'default',
        fieldSelector: `involvedObject.name=${name},reason=LabelsRestored`,
      });
      return events.items[0];
    });
    expect(event.involvedObject.kind).toBe('Node');
    expect(event.message).toMatch(/gpu\.count=2/);
    expect(event.message).toMatch(/hardware\.tier=dual-gpu/);
  });

  it('when a GPU is pulled out and that is accepted, removes only the labels it owned and no longer produces', async () => {
    const { name, agent } = await setup('agent-gpu-out', 'rtx5070-rtx3050.csv', {
      team: 'ml',
      // Looks like ours, but the agent never owned it.
      'gpu.h100': 'true',
    });
    await waitFor('GPU labels', async () => hasAll(await labelsOf(name), YEEZYAI_LABELS));

    await agent.useFixture('rtx5070.csv');
    agent.signal('SIGHUP');
    // A GPU that stops answering is a lost GPU until an operator accepts the new inventory.
    const degraded = await waitFor('degraded', async () => {
      const l = await labelsOf(name);
      return l['noma.dev/gpu.health'] === 'degraded' ? l : undefined;
    });
    expect(degraded).toMatchObject({ ...YEEZYAI_LABELS, 'noma.dev/gpu.health': 'degraded' });
    await core.patchNode(
      { name, body: { metadata: { annotations: { 'noma.dev/accept-inventory': '1' } } } },
      MERGE,
    );
    const labels = await waitFor('one GPU left', async () => {
      const l = await labelsOf(name);
      return l['gpu.count'] === '1' && !('gpu.rtx3050' in l) ? l : undefined;
    });
    expect(labels).toMatchObject({
      'gpu.rtx5070': 'true',
      'hardware.tier': 'standard',
      'noma.dev/gpu.product': 'NVIDIA-GeForce-RTX-5070',
      'noma.dev/gpu.memory-mib': '12227',
      team: 'ml',
      'gpu.h100': 'true',
    });
    const annotation = (await node(name)).metadata?.annotations?.[MANAGED_LABELS_ANNOTATION];
    expect(annotation).not.toMatch(/rtx3050/);
  });

  it('with a broken nvidia-smi keeps every label and reports the error', async () => {
    const { name, agent } = await setup('agent-broken', 'rtx5070-rtx3050.csv');
    await waitFor('GPU labels', async () => hasAll(await labelsOf(name), YEEZYAI_LABELS));
    await waitFor('ready', async () => (await agent.get('/readyz')).status === 200);
    const before = await labelsOf(name);

    await agent.useFixture('driver-mismatch.txt');
    agent.signal('SIGHUP');
    const readyz = await waitFor('not ready', async () => {
      const r = await agent.get('/readyz');
      return r.status === 503 ? r : undefined;
    });
    expect(readyz.body).toMatchObject({
      ready: false,
      checks: {
        discovery: { ok: false, detail: expect.stringMatching(/version mismatch/) as unknown },
      },
    });
    const status = await agent.get('/status');
    expect(status.body).toMatchObject({
      lastError: { message: expect.stringMatching(/exited with status 18/) as unknown },
      inventory: { gpus: [{ index: 0 }, { index: 1 }] },
    });
    // A retry with backoff follows after about a second; it must not change anything either.
    await waitFor(
      'a retry',
      async () => {
        const m = await agent.get('/metrics');
        return /noma_agent_discovery_errors_total 2/.test(String(m.body));
      },
      10_000,
    );
    expect(await labelsOf(name)).toEqual(before);

    // Once the driver answers again the agent recovers by itself.
    await agent.useFixture('rtx5070-rtx3050.csv');
    await waitFor('ready again', async () => (await agent.get('/readyz')).status === 200, 15_000);
  });

  it('starting with a broken driver leaves labels it owned from an earlier run in place', async () => {
    const owned = { 'gpu.count': '8', 'gpu.h100': 'true', 'nvidia.com/gpu': 'true' };
    const { name, agent } = await setup(
      'agent-broken-start',
      'hang.txt',
      owned,
      { [MANAGED_LABELS_ANNOTATION]: Object.keys(owned).sort().join(',') },
      ['--nvidia-smi-timeout', '500ms'],
    );
    await waitFor(
      'a discovery error',
      async () => {
        const s = await agent.get('/status');
        return (s.body as { lastError: unknown }).lastError !== null;
      },
      30_000,
    );
    expect((await agent.get('/readyz')).status).toBe(503);
    expect(await labelsOf(name)).toMatchObject(owned);
  });

  it('on SIGTERM exits cleanly and leaves its labels', async () => {
    const { name, agent } = await setup('agent-stop', 'l4.csv');
    await waitFor('GPU labels', async () => (await labelsOf(name))['gpu.l4'] === 'true');
    expect(await agent.stop()).toBe(0);
    expect(await labelsOf(name)).toMatchObject({ 'gpu.l4': 'true', 'gpu.count': '1' });
  });

  it('labels a node without NVIDIA driver with its tier only, and is ready', async () => {
    const name = uniqueName('agent-cpu');
    await createSimNode(name);
    cleanups.push(() => deleteSimNode(name));
    const agent = await startAgent({
      nodeName: name,
      kubeconfig: inject('kubeconfig'),
      fixture: 'l4.csv',
      args: ['--nvidia-smi', '/nonexistent/nvidia-smi'],
    });
    cleanups.push(() => agent.stop());
    await waitFor('ready', async () => (await agent.get('/readyz')).status === 200);
    const labels = await labelsOf(name);
    expect(labels['hardware.tier']).toBe('standard');
    expect(Object.keys(labels).filter((k) => k.includes('gpu'))).toEqual([]);
    expect((await agent.get('/status')).body).toMatchObject({
      inventory: { driver: 'absent', gpus: [] },
    });
  });
});
