// `noma init` against the real API server: every golden manifest passes a server-side dry run
// (the CRD's schema and CEL rules), --node-count picks and labels the most available simulated
// GPU nodes, and --preview reports what a selector matches and what the drain would do with the
// pods on each node (the coordinator's decisions, the PDBs' allowed disruptions). init never
// creates a NodeMaintenance.
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  RbacAuthorizationV1Api,
  type KubeConfig,
  type V1Pod,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { parse } from 'yaml';
import { GROUP, PLURAL, VERSION } from '../../shared/api/index.js';
import { GOLDEN_DIR, INIT_CASES } from '../fixtures/cli/init-cases.js';
import { runNoma } from '../support/cli.js';
import { installCRD } from '../support/crd.js';
import { DrainFixture, container } from '../support/drain-fixtures.js';
import {
  adminKubeConfig,
  createNamespace,
  createSimNode,
  deleteSimNode,
  kubeConfigWithToken,
  mintServiceAccountToken,
  uniqueName,
  waitFor,
} from '../support/kube.js';

let kc: KubeConfig;
let core: CoreV1Api;
let custom: CustomObjectsApi;
let ns: Awaited<ReturnType<typeof createNamespace>>;
const kubeconfig = () => inject('kubeconfig');
const created: string[] = [];

beforeAll(async () => {
  kc = adminKubeConfig();
  await installCRD(kc);
  core = kc.makeApiClient(CoreV1Api);
  custom = kc.makeApiClient(CustomObjectsApi);
  ns = await createNamespace('cli-init');
});

afterAll(async () => {
  await Promise.all(created.map(deleteSimNode));
  await ns.remove();
});

async function simNode(name: string, opts: Parameters<typeof createSimNode>[1]): Promise<void> {
  created.push(name);
  await createSimNode(name, opts);
}

async function gpuPod(node: string, gpus: number): Promise<void> {
  const pod: V1Pod = {
    metadata: { name: uniqueName(`gpu-${node}`).slice(-63) },
    spec: {
      nodeName: node,
      containers: [
        {
          name: 'work',
          image: 'inference:1',
          resources: { limits: { 'nvidia.com/gpu': String(gpus) } },
        },
      ],
    },
  };
  const made = await core.createNamespacedPod({ namespace: ns.name, body: pod });
  await waitFor(`pod on ${node} Running`, async () => {
    const p = await core.readNamespacedPod({ name: made.metadata?.name ?? '', namespace: ns.name });
    return p.status?.phase === 'Running';
  });
}

const labelsOf = async (name: string) => (await core.readNode({ name })).metadata?.labels ?? {};

describe('golden manifests on the API server', () => {
  it.each(INIT_CASES)('$name.yaml passes a server-side dry run', async ({ name }) => {
    const obj = parse(readFileSync(join(GOLDEN_DIR, `${name}.yaml`), 'utf8')) as {
      metadata: { name: string; namespace?: string };
    };
    obj.metadata.namespace = ns.name;
    const ref = { group: GROUP, version: VERSION, plural: PLURAL, namespace: ns.name };
    const res = (await custom.createNamespacedCustomObject({
      ...ref,
      body: obj,
      dryRun: 'All',
    })) as {
      metadata?: { name?: string };
    };
    expect(res.metadata?.name).toBe(obj.metadata.name);
    // A dry run persists nothing.
    await expect(
      custom.getNamespacedCustomObject({ ...ref, name: obj.metadata.name }),
    ).rejects.toMatchObject({
      code: 404,
    });
  });
});

describe('--node-count on the real API server', () => {
  const pool = uniqueName('pool');
  const n = (s: string) => `${pool}-${s}`;
  const gpu = { 'nvidia.com/gpu': '8' };
  const labels = { 'noma.dev/test-pool': pool };

  beforeAll(async () => {
    await Promise.all([
      simNode(n('busy'), { labels, capacity: gpu }),
      simNode(n('half'), { labels, capacity: gpu }),
      simNode(n('free-b'), { labels, capacity: gpu }),
      simNode(n('free-a'), { labels, capacity: gpu }),
      simNode(n('cordoned'), { labels, capacity: gpu, unschedulable: true }),
      simNode(n('maint'), {
        labels,
        capacity: gpu,
        taints: [{ key: 'noma.dev/maintenance', effect: 'NoSchedule' }],
      }),
      simNode(n('cpu'), { labels }),
    ]);
    await Promise.all([gpuPod(n('busy'), 8), gpuPod(n('half'), 4), gpuPod(n('free-b'), 0)]);
  });

  const init = (name: string, count: number, ...extra: string[]) =>
    runNoma([
      'init',
      'reboot',
      '--name',
      name,
      '--ticket',
      'ENG-42',
      '--node-count',
      String(count),
      '-l',
      `noma.dev/test-pool=${pool}`,
      '--kubeconfig',
      kubeconfig(),
      ...extra,
    ]);

  it('--dry-run shows the choice and labels nothing', async () => {
    const run = await init('free-two', 2, '--dry-run');
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(new RegExp(`^${n('free-a')} +picked +8 +0 `, 'm'));
    expect(run.stderr).toMatch(new RegExp(`^${n('free-b')} +picked +8 +0 `, 'm'));
    expect(run.stderr).toMatch(new RegExp(`^${n('half')} +candidate +8 +4 `, 'm'));
    expect(run.stderr).toMatch(new RegExp(`^${n('maint')} +skipped .*in maintenance`, 'm'));
    expect(run.stderr).toContain('dry run: nothing labeled');
    for (const s of ['free-a', 'free-b', 'half']) {
      expect(await labelsOf(n(s))).not.toHaveProperty(['noma.dev/selected-for']);
    }
  });

  it('labels the most available GPU nodes and selects on the label', async () => {
    const run = await init('free-two', 2);
    expect(run.code).toBe(0);
    const manifest = parse(run.stdout) as { spec: { nodeSelector: string } };
    expect(manifest.spec.nodeSelector).toBe('noma.dev/selected-for=free-two');
    const selected = await core.listNode({ labelSelector: manifest.spec.nodeSelector });
    expect(selected.items.map((x) => x.metadata?.name).sort()).toEqual([n('free-a'), n('free-b')]);
  });

  it('passes over nodes another maintenance picked, and moves its own label on a rerun', async () => {
    const other = await init('other-one', 1);
    expect(other.code).toBe(0);
    expect(await labelsOf(n('half'))).toHaveProperty(['noma.dev/selected-for'], 'other-one');

    const rerun = await init('free-two', 1);
    expect(rerun.code).toBe(0);
    expect(rerun.stderr).toContain(`removed it from ${n('free-b')}`);
    const selected = await core.listNode({ labelSelector: 'noma.dev/selected-for=free-two' });
    expect(selected.items.map((x) => x.metadata?.name)).toEqual([n('free-a')]);
  });

  it('fails, naming --node-count, when too few nodes are available', async () => {
    const run = await init('too-many', 5);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--node-count: only 4 GPU node(s) are available, 5 requested');
    expect(run.stdout).toBe('');
  });

  it('--preview lists the nodes, GPU pods and warnings', async () => {
    const run = await runNoma([
      'init',
      'reboot',
      '--name',
      'look',
      '--ticket',
      'ENG-42',
      '--preview',
      '--kubeconfig',
      kubeconfig(),
      '--nodes',
      [n('half'), n('maint'), n('missing')].join(','),
    ]);
    expect(run.code).toBe(0);
    expect(run.stderr).toContain('matches 2 node(s) now');
    expect(run.stderr).toMatch(new RegExp(`^${n('half')} +- +- +8 +1 +yes +yes +unknown$`, 'm'));
    expect(run.stderr).toContain(`warning: node ${n('maint')} is already in maintenance`);
    expect(run.stderr).toContain(`warning: node ${n('missing')} does not exist in this cluster`);
    expect(run.stdout).toContain('kind: NodeMaintenance');
  });

  it('--preview warns about control-plane nodes', async () => {
    await simNode(n('cp'), { labels: { ...labels, 'node-role.kubernetes.io/control-plane': '' } });
    const run = await runNoma([
      'init',
      '--name',
      'look',
      '--ticket',
      'ENG-42',
      '--preview',
      '--kubeconfig',
      kubeconfig(),
      '-l',
      'node-role.kubernetes.io/control-plane,noma.dev/test-pool=' + pool,
    ]);
    expect(run.code).toBe(0);
    expect(run.stderr).toContain(`warning: node ${n('cp')} is a control-plane node`);
  });

  it('never created a NodeMaintenance', async () => {
    const list = (await custom.listClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
    })) as {
      items: { metadata: { name: string } }[];
    };
    const names = list.items.map((i) => i.metadata.name);
    for (const name of ['free-two', 'other-one', 'too-many', 'look'])
      expect(names).not.toContain(name);
  });
});

describe('--preview shows what the drain would do on each node', () => {
  const node = uniqueName('drain-preview');
  let f: DrainFixture;

  // The issue-11 node: inference pods with a Memory emptyDir at /dev/shm behind a PDB, a CPU
  // router, a GPU pod with disk scratch space, and a pod no controller manages.
  beforeAll(async () => {
    await simNode(node, { capacity: { 'nvidia.com/gpu': '8' } });
    f = new DrainFixture(kc, ns.name, node);
    const labels = { app: 'vllm' };
    await kc.makeApiClient(AppsV1Api).createNamespacedReplicaSet({
      namespace: ns.name,
      body: {
        metadata: { name: 'vllm' },
        spec: {
          replicas: 2,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: {
              nodeSelector: { 'kubernetes.io/hostname': node },
              terminationGracePeriodSeconds: 0,
              containers: [container(1, [{ name: 'dshm', mountPath: '/dev/shm' }])],
              volumes: [{ name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: '8Gi' } }],
            },
          },
        },
      },
    });
    await f.replicaSet('router', 1);
    await f.replicaSet('scratch', 1, { gpus: 1, emptyDir: true });
    await f.barePod('debug');
    await f.waitRunning(5);
    await f.pdb('vllm', 'vllm', 1);
  });

  const preview = (action: string, ...extra: string[]) =>
    runNoma([
      'init',
      action,
      '--name',
      'look-drain',
      '--ticket',
      'ENG-11',
      '--preview',
      '--kubeconfig',
      kubeconfig(),
      '--nodes',
      node,
      ...extra,
    ]);
  const row = (pod: string, drain: string, decision: string, detail: string) =>
    new RegExp(`^${ns.name}/${pod} +${drain} +${decision} +${detail}$`, 'm');

  it('reboot: GPU pods at the start, every pod before Reboot; blockers and the PDB named', async () => {
    const run = await preview('reboot', '--complete');
    expect(run.code).toBe(0);
    const out = run.stderr;
    expect(out).toContain(
      `node ${node}: drains GPU pods at the start, then every pod before step 1 (Reboot)`,
    );
    // The Memory emptyDir does not block; the disk one does, and says which volume.
    expect(out).toMatch(row('vllm-\\S+', 'start', 'evict', `PDB ${ns.name}/vllm`));
    expect(out.match(new RegExp(`^${ns.name}/vllm-\\S+ +start +evict`, 'gm'))).toHaveLength(2);
    expect(out).toMatch(
      row(
        'scratch-\\S+',
        'start',
        'BLOCKS',
        'uses emptyDir local storage on disk \\(volume scratch;.*',
      ),
    );
    expect(out).toMatch(row('router-\\S+', 'before Reboot', 'evict', '-'));
    expect(out).toMatch(
      row('debug', 'before Reboot', 'BLOCKS', 'is not managed by a controller.*'),
    );
    // minAvailable 1 of 2 healthy: one disruption allowed now, both pods are on this node.
    expect(out).toMatch(new RegExp(`^${ns.name}/vllm +1 +2$`, 'm'));
    expect(out).toContain(
      `warning: node ${node}: 1 pod blocks the drain at the start: the node would fail before ` +
        'its first step (--delete-emptydir-data would evict it)',
    );
    expect(out).toContain(`warning: node ${node}: PDB ${ns.name}/vllm allows 1 disruption now`);
    expect(run.stdout).toContain('kind: NodeMaintenance');
  });

  it('the manifest’s options change the decisions', async () => {
    const run = await preview(
      'run',
      '--delete-emptydir-data',
      '--evict-unmanaged-pods',
      '--drain-non-gpu-pods',
      '--',
      'true',
    );
    expect(run.code).toBe(0);
    const out = run.stderr;
    expect(out).toContain(`node ${node}: drains every pod at the start\n`);
    expect(out).toMatch(row('scratch-\\S+', 'start', 'evict', 'emptyDir data will be lost'));
    expect(out).toMatch(row('debug', 'start', 'evict', 'no controller will recreate this pod'));
    expect(out).toMatch(row('router-\\S+', 'start', 'evict', '-'));
    expect(out).not.toContain('BLOCKS');
    expect(parse(run.stdout)).toMatchObject({
      spec: { options: { deleteEmptyDirData: true, evictUnmanagedPods: true } },
    });
  });

  it('a Run without --drain-non-gpu-pods leaves the CPU pods in place', async () => {
    const run = await preview('run', '--', 'true');
    expect(run.code).toBe(0);
    expect(run.stderr).toContain(`node ${node}: drains GPU pods at the start\n`);
    expect(run.stderr).toContain('left in place: 2 non-GPU (2 pods)');
    expect(run.stderr).not.toMatch(/router-|debug/);
  });

  it('without the right to list PDBs, still shows the pods and says what is missing', async () => {
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    const name = uniqueName('cli-init-no-pdb');
    await rbac.createClusterRole({
      body: {
        metadata: { name },
        rules: [
          { apiGroups: [''], resources: ['nodes', 'pods'], verbs: ['list'] },
          { apiGroups: ['apps'], resources: ['daemonsets'], verbs: ['get'] },
        ],
      },
    });
    try {
      await rbac.createClusterRoleBinding({
        body: {
          metadata: { name },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
          subjects: [{ kind: 'ServiceAccount', name: 'previewer', namespace: ns.name }],
        },
      });
      const token = await mintServiceAccountToken(ns.name, 'previewer');
      const dir = await mkdtemp(join(tmpdir(), 'noma-preview-'));
      const file = join(dir, 'kubeconfig');
      await writeFile(file, kubeConfigWithToken(token).exportConfig());
      const run = await runNoma([
        'init',
        'reboot',
        '--name',
        'look-drain',
        '--ticket',
        'ENG-11',
        '--preview',
        '--kubeconfig',
        file,
        '--nodes',
        node,
      ]);
      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(row('vllm-\\S+', 'start', 'evict', '-'));
      expect(run.stderr).toContain('warning: cannot list PodDisruptionBudgets (HTTP 403');
    } finally {
      await rbac.deleteClusterRoleBinding({ name }).catch(() => undefined);
      await rbac.deleteClusterRole({ name });
    }
  });

  it('reads the PDB’s allowed disruptions as they are now', async () => {
    await f.setPdbMinAvailable('vllm', 2);
    await f.pdbSettled('vllm', 2);
    const run = await preview('reboot');
    expect(run.stderr).toMatch(new RegExp(`^${ns.name}/vllm +0 +2$`, 'm'));
    expect(run.stderr).toContain(`PDB ${ns.name}/vllm allows no disruption now`);
  });
});
