// What the agent may change on its Node, on the real API server: deploy/'s admission policies
// (agent-node-restriction.yaml) with their params (agent-label-keys.yaml, generated from
// deploy/label-rules.yaml), and deploy/'s noma-agent ServiceAccount with a token bound to a pod
// on the Node, as the DaemonSet's pod has. Its rules' labels and its own annotations: yes;
// NodeRestriction's labels, anyone else's labels and annotations, ownerReferences, finalizers,
// other Nodes: no. Then the real agent, with deploy/'s rules and with custom ones.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type V1Node } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ACCEPT_INVENTORY_ANNOTATION,
  GPU_HEALTH_DETAIL_ANNOTATION,
  GPU_HEALTH_LABEL,
  MANAGED_LABELS_ANNOTATION,
} from '../../shared/labels.js';
import { startAgent, type AgentProcess } from '../support/agent-process.js';
import { runNoma } from '../support/cli.js';
import {
  AGENT_SERVICE_ACCOUNT,
  NOMA_NAMESPACE,
  applyObjects,
  deployObject,
  deployObjects,
  isWorkload,
  labelRulesText,
  type ManifestObject,
} from '../support/deploy.js';
import { mintToken, writeTokenKubeconfig } from '../support/identity.js';
import {
  adminKubeConfig,
  createSimNode,
  deleteSimNode,
  kubeConfigWithToken,
  uniqueName,
  waitFor,
} from '../support/kube.js';

const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const admin = adminKubeConfig();
const core = admin.makeApiClient(CoreV1Api);
const FIELD_MANAGER = 'noma-deploy-test';
const PARAMS = 'noma-agent-label-keys';

const own = uniqueName('policy-own');
const other = uniqueName('policy-other');
const labelled = uniqueName('policy-agent');
const FOREIGN = { labels: { team: 'ml' }, annotations: { 'example.com/owner': 'infra' } };
const cleanups: (() => Promise<unknown>)[] = [];
let dir = '';
let agentApi: CoreV1Api;

/**
 * A pod of deploy/'s agent ServiceAccount on `node` (the DaemonSet's, as far as identity goes)
 * and an API token bound to it: the token carries the node's name.
 */
async function agentToken(node: string): Promise<string> {
  const name = uniqueName('agent-policy');
  const pod = await core.createNamespacedPod({
    namespace: NOMA_NAMESPACE,
    body: {
      metadata: { name, labels: { 'noma.dev/test': 'agent-policy' } },
      spec: {
        nodeName: node,
        serviceAccountName: AGENT_SERVICE_ACCOUNT,
        tolerations: [{ operator: 'Exists' }],
        containers: [{ name: 'agent', image: 'noma:test' }],
      },
    },
  });
  cleanups.push(() =>
    core
      .deleteNamespacedPod({ name, namespace: NOMA_NAMESPACE, gracePeriodSeconds: 0 })
      .catch(() => undefined),
  );
  return mintToken(admin, NOMA_NAMESPACE, AGENT_SERVICE_ACCOUNT, {
    boundPod: { name, uid: pod.metadata?.uid ?? '' },
  });
}

async function simNode(name: string): Promise<void> {
  await createSimNode(name, { labels: FOREIGN.labels });
  await core.patchNode({ name, body: { metadata: { annotations: FOREIGN.annotations } } }, MERGE);
  cleanups.push(async () => {
    // A finalizer let through by a broken policy must not keep the Node around.
    await core
      .patchNode({ name, body: { metadata: { finalizers: null } } }, MERGE)
      .catch(() => undefined);
    await deleteSimNode(name);
  });
}

/** The status and body of a refused call (client-node's ApiException carries `code`). */
async function refusal(call: Promise<unknown>): Promise<{ code: number; body: string }> {
  try {
    await call;
  } catch (err) {
    const e = err as { code?: number; body?: unknown };
    return {
      code: e.code ?? 0,
      body: typeof e.body === 'string' ? e.body : JSON.stringify(e.body),
    };
  }
  throw new Error('the call was allowed');
}

/** What the policy guards, to compare before and after a refused call. */
const guarded = (n: V1Node) => ({
  labels: n.metadata?.labels,
  annotations: n.metadata?.annotations,
  ownerReferences: n.metadata?.ownerReferences,
  finalizers: n.metadata?.finalizers,
  // The node lifecycle controller's own taints (node.kubernetes.io/not-ready while a fresh
  // simulated node turns Ready) come and go on their own: not the agent's doing.
  spec: {
    unschedulable: n.spec?.unschedulable,
    podCIDR: n.spec?.podCIDR,
    providerID: n.spec?.providerID,
    taints: n.spec?.taints?.filter((t) => !t.key.startsWith('node.kubernetes.io/')) ?? [],
  },
});

/** Applies a ConfigMap as deploy/'s params (same field manager as the other tests). */
async function applyParams(cm: ManifestObject): Promise<void> {
  await applyObjects(admin, [cm], FIELD_MANAGER);
}

beforeAll(async () => {
  await applyObjects(
    admin,
    deployObjects().filter((o) => !isWorkload(o)),
    FIELD_MANAGER,
  );
  dir = await mkdtemp(join(tmpdir(), 'noma-agent-policy-'));
  await simNode(own);
  await simNode(other);
  agentApi = kubeConfigWithToken(await agentToken(own), 'noma-agent').makeApiClient(CoreV1Api);
  // On a fresh API server the policies and their params take a moment to be in effect.
  await waitFor(
    'the label-key policy in effect',
    () =>
      agentApi
        .patchNode(
          { name: own, body: { metadata: { labels: { 'noma-probe': 'x' } } } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        )
        .then(
          () => false,
          (err: unknown) => (err as { code?: number }).code === 403,
        ),
    120_000,
  );
}, 180_000);

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  // Back to deploy/'s params, whatever a test left.
  await applyParams(deployObject('ConfigMap', PARAMS));
  await rm(dir, { recursive: true, force: true });
});

describe("deploy/'s agent identity on its own Node", () => {
  it("may set its rules' labels (exact keys and SKU keys) and its annotations, and remove them", async () => {
    const rules = {
      'gpu.count': '2',
      'gpu.rtx5070': 'true',
      'nvidia.com/gpu': 'true',
      'noma.dev/gpu.product': 'NVIDIA-GeForce-RTX-5070',
      [GPU_HEALTH_LABEL]: 'healthy',
    };
    const set = await agentApi.patchNode(
      {
        name: own,
        body: {
          metadata: {
            labels: rules,
            annotations: {
              [MANAGED_LABELS_ANNOTATION]: Object.keys(rules).sort().join(','),
              [GPU_HEALTH_DETAIL_ANNOTATION]: '{"expected":2,"answering":2,"lost":[]}',
            },
          },
        },
      },
      MERGE,
    );
    expect(set.metadata?.labels).toMatchObject({ ...rules, ...FOREIGN.labels });
    expect(set.metadata?.annotations?.[MANAGED_LABELS_ANNOTATION]).toContain('gpu.rtx5070');

    const removed = await agentApi.patchNode(
      {
        name: own,
        body: {
          metadata: {
            labels: { 'gpu.rtx5070': null },
            annotations: { [GPU_HEALTH_DETAIL_ANNOTATION]: null },
          },
        },
      },
      MERGE,
    );
    expect(removed.metadata?.labels?.['gpu.rtx5070']).toBeUndefined();
    expect(removed.metadata?.labels?.['gpu.count']).toBe('2');
    expect(removed.metadata?.annotations?.[GPU_HEALTH_DETAIL_ANNOTATION]).toBeUndefined();

    // An operator's accept-inventory request: the agent removes it once honoured.
    await core.patchNode(
      { name: own, body: { metadata: { annotations: { [ACCEPT_INVENTORY_ANNOTATION]: '2' } } } },
      MERGE,
    );
    const honoured = await agentApi.patchNode(
      { name: own, body: { metadata: { annotations: { [ACCEPT_INVENTORY_ANNOTATION]: null } } } },
      MERGE,
    );
    expect(honoured.metadata?.annotations?.[ACCEPT_INVENTORY_ANNOTATION]).toBeUndefined();
    expect(honoured.metadata?.annotations).toMatchObject(FOREIGN.annotations);
  });

  const LABELS = 'noma-agent-node-restriction';
  // Kubernetes' labels are refused by both policies; either may be the one that answers.
  const BOTH = '';
  it.each<[string, Record<string, unknown>, string, string]>([
    [
      'a node-restriction.kubernetes.io/ label',
      { labels: { 'node-restriction.kubernetes.io/secure-workloads': 'true' } },
      BOTH,
      'node-restriction.kubernetes.io/secure-workloads',
    ],
    [
      'a label of a node-restriction.kubernetes.io subdomain',
      { labels: { 'pci.node-restriction.kubernetes.io/dss': 'true' } },
      BOTH,
      'pci.node-restriction.kubernetes.io/dss',
    ],
    [
      "another of Kubernetes' labels",
      { labels: { 'topology.kubernetes.io/zone': 'secure-zone' } },
      BOTH,
      'topology.kubernetes.io/zone',
    ],
    ['a foreign label', { labels: { team: 'a' } }, PARAMS, 'not team'],
    [
      'a new foreign label',
      { labels: { 'example.com/steer': 'here' } },
      PARAMS,
      'example.com/steer',
    ],
    ['removing a foreign label', { labels: { team: null } }, PARAMS, 'not team'],
    [
      'a key under a SKU prefix that is no SKU',
      { labels: { 'gpu.nvidia.evil': 'true' } },
      PARAMS,
      'gpu.nvidia.evil',
    ],
    [
      "a foreign label in one patch with a rule's label",
      { labels: { 'gpu.count': '8', team: 'b' } },
      PARAMS,
      'not team',
    ],
    [
      'an ownerReference',
      {
        ownerReferences: [
          {
            apiVersion: 'v1',
            kind: 'Namespace',
            name: 'default',
            uid: '6a0d1f7c-0000-4000-8000-000000000001',
          },
        ],
      },
      LABELS,
      'may not change the ownerReferences',
    ],
    ['a finalizer', { finalizers: ['example.com/hold'] }, LABELS, 'may not change the finalizers'],
    [
      'changing a foreign annotation',
      { annotations: { 'example.com/owner': 'me' } },
      LABELS,
      'not change example.com/owner',
    ],
    [
      "forging the coordinator's record of its taint (it would remove that taint)",
      { annotations: { 'noma.dev/degraded-gpu-taint': 'dedicated=secure:NoSchedule' } },
      LABELS,
      'not change noma.dev/degraded-gpu-taint',
    ],
    [
      'setting accept-inventory (the operator sets it; the agent only removes it)',
      { annotations: { [ACCEPT_INVENTORY_ANNOTATION]: '0' } },
      LABELS,
      `not change ${ACCEPT_INVENTORY_ANNOTATION}`,
    ],
  ])('is refused %s, and the Node stays as it was', async (_what, metadata, policy, message) => {
    const before = await core.readNode({ name: own });
    const { code, body } = await refusal(
      agentApi.patchNode({ name: own, body: { metadata } }, MERGE),
    );
    expect(code).toBe(403);
    expect(body).toContain(`ValidatingAdmissionPolicy '${policy}`);
    expect(body).toContain(message);
    expect(guarded(await core.readNode({ name: own }))).toEqual(guarded(before));
  });

  it("is refused any change to another Node, even a rule's label", async () => {
    const { code, body } = await refusal(
      agentApi.patchNode(
        { name: other, body: { metadata: { labels: { 'gpu.count': '8' } } } },
        MERGE,
      ),
    );
    expect(code).toBe(403);
    expect(body).toContain(`may not modify node ${other}`);
    expect((await core.readNode({ name: other })).metadata?.labels?.['gpu.count']).toBeUndefined();
  });
});

describe('the real agent under the policy', () => {
  let agent: AgentProcess | undefined;
  let rulesFile = '';
  const status = async () =>
    (await agent?.get('/status'))?.body as { lastError: { message: string } | null } | undefined;

  beforeAll(async () => {
    await simNode(labelled);
    rulesFile = join(dir, 'rules.yaml');
    await writeFile(rulesFile, labelRulesText());
    const kubeconfig = writeTokenKubeconfig(
      admin,
      await agentToken(labelled),
      join(dir, 'agent.kubeconfig'),
      'noma-agent',
    );
    agent = await startAgent({
      nodeName: labelled,
      kubeconfig,
      fixture: 'rtx5070-rtx3050.csv',
      args: ['--rules', rulesFile, '--discovery-interval', '1s'],
    });
    cleanups.push(() => agent?.stop() ?? Promise.resolve());
  });

  it("labels its Node with deploy/'s rules and params, leaving foreign labels alone", async () => {
    const labels = await waitFor("the rules' labels", async () => {
      const l = (await core.readNode({ name: labelled })).metadata?.labels ?? {};
      return l[GPU_HEALTH_LABEL] === 'healthy' ? l : undefined;
    });
    expect(labels).toMatchObject({
      'gpu.count': '2',
      'gpu.rtx5070': 'true',
      'gpu.rtx3050': 'true',
      'hardware.tier': 'dual-gpu',
      'noma.dev/gpu.product': 'mixed',
      ...FOREIGN.labels,
    });
    await waitFor('ready', async () => (await agent?.get('/readyz'))?.status === 200);
    expect((await status())?.lastError).toBeNull();
  });

  it('with custom rules: refused until `noma rules keys` puts their keys in the params, then labels', async () => {
    await writeFile(
      rulesFile,
      [
        "gpuLabels: {example.com/gpu: 'true'}",
        'countLabel: example.com/gpu-count',
        "skuLabel: {prefix: model.example.com/, value: 'true'}",
        "tier: {label: '', default: standard, rules: []}",
        'tierLabels: {}',
        'nomaLabels: false',
        '',
      ].join('\n'),
    );
    agent?.signal('SIGHUP');
    const refused = await waitFor('the refusal in /status', async () => {
      const message = (await status())?.lastError?.message ?? '';
      return message.includes(PARAMS) ? message : undefined;
    });
    expect(refused).toContain('example.com/');
    const kept = (await core.readNode({ name: labelled })).metadata?.labels ?? {};
    expect(kept['gpu.count']).toBe('2');
    expect(kept['example.com/gpu-count']).toBeUndefined();

    // Old and new rules while agents roll over: the new keys, and the old ones to remove.
    const deployRules = join(dir, 'deploy-rules.yaml');
    await writeFile(deployRules, labelRulesText());
    const run = await runNoma(['rules', 'keys', '-f', deployRules, '-f', rulesFile]);
    expect(run.code).toBe(0);
    await applyParams(parse(run.stdout) as ManifestObject);

    const labels = await waitFor("the custom rules' labels", async () => {
      const l = (await core.readNode({ name: labelled })).metadata?.labels ?? {};
      return l['example.com/gpu-count'] === '2' && !('gpu.count' in l) ? l : undefined;
    });
    expect(labels).toMatchObject({
      'example.com/gpu': 'true',
      'model.example.com/rtx5070': 'true',
      'model.example.com/rtx3050': 'true',
      [GPU_HEALTH_LABEL]: 'healthy',
      ...FOREIGN.labels,
    });
    // The old rules' keys it owned are gone: it could remove them.
    for (const k of ['gpu.rtx5070', 'hardware.tier', 'noma.dev/gpu.product', 'nvidia.com/gpu']) {
      expect(labels).not.toHaveProperty([k]);
    }
    await waitFor('no error', async () => (await status())?.lastError === null);
  });
});
