// The Helm chart (deploy/helm/noma): one source of truth with deploy/ (with default values it
// renders what `kubectl kustomize deploy/` builds, object for object), `helm lint` clean, accepted
// by the real API server (`kubectl apply --dry-run=server`), and installed: a release in a
// namespace of its own whose identities (ServiceAccounts, RBAC, admission policies, TLS
// bootstrap) carry a Reboot + Complete maintenance, the agent and the coordinator running as
// local processes with tokens of the release's ServiceAccounts, with the release's flags.
//
// Helm is built from its Go module (tools/helm, cached like test/cluster's control plane): the
// first build takes minutes, so beforeAll has a long timeout; later runs find the binary.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFailed } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { ensureHelm } from '../../tools/helm/helm.js';
import { CHART_DIR, CHART_FILES, chartFilePath, sourcePath } from '../../tools/helm/gen-chart.js';
import { startAgent, type AgentProcess } from '../support/agent-process.js';
import { agentPortFrom } from '../support/link.js';
import { startCoordinator, type CoordinatorProcess } from '../support/coordinator-process.js';
import { applyObjects, DEPLOY_DIR, deployObjects, isWorkload } from '../support/deploy.js';
import { container, GPU } from '../support/drain-fixtures.js';
import { mintToken, writeTokenKubeconfig } from '../support/identity.js';
import {
  adminKubeConfig,
  createNamespace,
  createSimNode,
  deleteSimNode,
  simulateReboot,
  uniqueName,
  waitFor,
} from '../support/kube.js';
import { SimulatedMachine } from '../support/machine.js';
import { maintenances, nodeStatus } from '../support/maintenance.js';

const run = promisify(execFile);
const BIG = { maxBuffer: 64 << 20 };

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

let helm = '';

beforeAll(async () => {
  helm = await ensureHelm();
  // What the chart is checked against and installed beside: deploy/'s namespace, CRD and
  // cluster-wide objects (another test file may not have applied them yet on a fresh cluster).
  await applyObjects(
    adminKubeConfig(),
    // Not the agent's label-key params: agent-policy.test.ts changes them for a while.
    deployObjects().filter(
      (o) =>
        !isWorkload(o) && !(o.kind === 'ConfigMap' && o.metadata.name === 'noma-agent-label-keys'),
    ),
    'noma-helm-test',
  );
}, 20 * 60_000);

/** `helm template` of the chart, parsed. */
async function render(
  values: readonly string[] = [],
  release = 'noma',
  namespace = 'noma-system',
): Promise<Manifest[]> {
  const { stdout } = await run(
    helm,
    ['template', release, CHART_DIR, '-n', namespace, ...values],
    BIG,
  );
  return parseManifests(stdout);
}

function parseManifests(text: string): Manifest[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Manifest | null)
    .filter((o): o is Manifest => o !== null);
}

/** Helm's error for values the chart refuses (stderr of a failed `helm template`). */
async function renderError(values: readonly string[]): Promise<string> {
  try {
    await render(values);
  } catch (err) {
    return String((err as { stderr?: unknown }).stderr ?? err);
  }
  throw new Error(`helm template ${values.join(' ')} succeeded`);
}

const find = (objects: readonly Manifest[], kind: string, name: string): Manifest => {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (found === undefined) throw new Error(`no ${kind} ${name} rendered`);
  return found;
};

/**
 * What the comparison leaves out, and why:
 * - metadata.namespace of cluster-scoped kinds: kustomize sets its `namespace:` on every object
 *   whose kind it does not know to be cluster-scoped, ValidatingAdmissionPolicy(Binding) among
 *   them; the API server ignores it there. The chart sets none (the API server's discovery
 *   confirms the list below: "are cluster-scoped on the real API server").
 * - Helm's bookkeeping: the labels helm.sh/chart, app.kubernetes.io/managed-by, instance and
 *   version, the CRD's helm.sh/resource-policy: keep, and the agents' pod-template annotation
 *   checksum/label-rules (new rules roll the agents; with kustomize, a rollout restart does).
 * Nothing else: every other field, label and annotation must be equal.
 */
const CLUSTER_SCOPED = [
  'Namespace',
  'CustomResourceDefinition',
  'ClusterRole',
  'ClusterRoleBinding',
  'ValidatingAdmissionPolicy',
  'ValidatingAdmissionPolicyBinding',
];
const HELM_LABELS = [
  'helm.sh/chart',
  'app.kubernetes.io/managed-by',
  'app.kubernetes.io/instance',
  'app.kubernetes.io/version',
];

function normalize(o: Manifest): Manifest {
  const copy = structuredClone(o);
  if (CLUSTER_SCOPED.includes(copy.kind)) delete copy.metadata.namespace;
  for (const key of HELM_LABELS) delete copy.metadata.labels?.[key];
  const annotations = copy.metadata.annotations;
  if (annotations !== undefined) {
    delete annotations['helm.sh/resource-policy'];
    if (Object.keys(annotations).length === 0) delete copy.metadata.annotations;
  }
  const spec = copy['spec'] as
    { template?: { metadata?: { annotations?: Record<string, string> } } } | undefined;
  delete spec?.template?.metadata?.annotations?.['checksum/label-rules'];
  return copy;
}

/** Objects by kind/namespace/name, normalized. */
function byKey(objects: readonly Manifest[]): Map<string, Manifest> {
  const map = new Map<string, Manifest>();
  for (const o of objects.map(normalize)) {
    const key = `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    if (map.has(key)) throw new Error(`${key} twice`);
    map.set(key, o);
  }
  return map;
}

async function kustomizeBase(): Promise<Manifest[]> {
  const { stdout } = await run('kubectl', ['kustomize', DEPLOY_DIR], BIG);
  return parseManifests(stdout);
}

function expectSameObjects(chart: readonly Manifest[], base: readonly Manifest[]): void {
  const a = byKey(chart);
  const b = byKey(base);
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [key, o] of a) {
    // One object at a time: a failure names the object that differs.
    expect({ key, object: o }).toEqual({ key, object: b.get(key) });
  }
}

describe('the chart with default values', () => {
  it('renders what `kubectl kustomize deploy/` builds, object for object, but the Namespace (Helm creates it)', async () => {
    const [chart, base] = await Promise.all([render(), kustomizeBase()]);
    expect(chart.length).toBeGreaterThan(30);
    expect(chart.some((o) => o.kind === 'Namespace')).toBe(false);
    expectSameObjects(
      chart,
      base.filter((o) => o.kind !== 'Namespace'),
    );
  });

  it('with namespace.create=true, the Namespace too (Pod Security privileged)', async () => {
    const [chart, base] = await Promise.all([
      render(['--set', 'namespace.create=true']),
      kustomizeBase(),
    ]);
    expectSameObjects(chart, base);
  });

  it('sets no namespace on cluster-scoped objects, and only those', async () => {
    for (const o of await render(['--set', 'namespace.create=true'])) {
      expect({ kind: o.kind, namespace: o.metadata.namespace }).toEqual({
        kind: o.kind,
        namespace: CLUSTER_SCOPED.includes(o.kind) ? undefined : 'noma-system',
      });
    }
  });

  it("reads current copies of deploy/'s generated files (`npm run gen` writes them)", () => {
    for (const { chart, source } of CHART_FILES) {
      const copy = chartFilePath(chart);
      if (!existsSync(sourcePath(source))) {
        expect(existsSync(copy), `files/${chart} without deploy/${source}`).toBe(false);
        continue;
      }
      expect(readFileSync(copy, 'utf8'), `files/${chart}`).toBe(
        readFileSync(sourcePath(source), 'utf8'),
      );
    }
  });

  it('passes `helm lint --strict`, with default values and with the options on', async () => {
    const lint = (values: string[]) =>
      run(helm, ['lint', '--strict', CHART_DIR, '-n', 'noma-system', ...values], BIG);
    const plain = await lint([]);
    expect(plain.stdout).toContain('0 chart(s) failed');
    const options = await lint([
      ...['--set', 'namespace.create=true,tls.mode=cert-manager,namePrefix=other'],
      ...['--set', 'coordinator.maxNodesInMaintenance=3,coordinator.watchNamespaces={a,b}'],
    ]);
    expect(options.stdout).toContain('0 chart(s) failed');
  });
});

interface PodSpecLike {
  nodeSelector?: Record<string, string>;
  containers: { args?: string[]; env?: { name: string; value?: string }[] }[];
}
const podSpec = (o: Manifest): PodSpecLike =>
  (o['spec'] as { template: { spec: PodSpecLike } }).template.spec;
const coordinatorArgs = (objects: readonly Manifest[], name = 'noma-coordinator'): string[] =>
  podSpec(find(objects, 'Deployment', name)).containers[0]?.args ?? [];
const kinds = (objects: readonly Manifest[]) => new Set(objects.map((o) => o.kind));

describe('values', () => {
  it("the coordinator's flags: caps, unplanned downtime, watched namespaces, webhook from a Secret", async () => {
    const objects = await render([
      ...['--set', 'coordinator.maxNodesInMaintenance=3,coordinator.maxSelectedNodes=20'],
      ...['--set', 'coordinator.watchNamespaces={team-a,team-b},coordinator.stuckAfter=3h'],
      ...['--set', 'coordinator.unplannedDowntime.after=0'],
      ...['--set-string', 'coordinator.unplannedDowntime.taint=runai=drain:NoExecute'],
      ...['--set', 'coordinator.notifyWebhook.existingSecret=slack,coordinator.replicas=1'],
    ]);
    const args = coordinatorArgs(objects);
    // After deploy/'s five flags and their values, the flags the values asked for.
    const pairs = Object.fromEntries(
      args.slice(10).flatMap((a, i, all) => (i % 2 ? [] : [[a, all[i + 1]]])),
    );
    expect(pairs).toEqual({
      '--watch-namespaces': 'team-a,team-b',
      '--max-nodes-in-maintenance': '3',
      '--max-selected-nodes': '20',
      '--unplanned-downtime-after': '0',
      '--unplanned-downtime-taint': 'runai=drain:NoExecute',
      '--stuck-after': '3h',
    });
    const env = podSpec(find(objects, 'Deployment', 'noma-coordinator')).containers[0]?.env;
    expect(env).toContainEqual({
      name: 'NOMA_NOTIFY_WEBHOOK_URL',
      valueFrom: { secretKeyRef: { name: 'slack', key: 'url' } },
    });
    // One replica: no PodDisruptionBudget, which would block every other drain of its node.
    expect(kinds(objects).has('PodDisruptionBudget')).toBe(false);
  });

  it('namePrefix renames every object and every name the objects refer to', async () => {
    const objects = await render(['--set', 'namePrefix=acme,namespace.create=true'], 'r', 'ops');
    for (const o of objects) {
      if (o.kind !== 'CustomResourceDefinition' && o.kind !== 'Namespace') {
        expect(o.metadata.name).toMatch(/^acme(-|$)/);
      }
    }
    // No default name is left, in names, selectors, CEL expressions, flags or URLs (the
    // policies' matchCondition names, is-noma-agent and is-noma-coordinator, are not names of
    // objects).
    const text = JSON.stringify(objects.filter((o) => o.kind !== 'CustomResourceDefinition'));
    const defaults = /(?<!is-)noma-(system|agent|coordinator|admin|operator|metrics|label|image)/g;
    expect(text.match(defaults) ?? []).toEqual([]);
    const args = coordinatorArgs(objects, 'acme-coordinator');
    expect(args.join(' ')).toContain(
      '--lease-name acme-coordinator --agent-service-account ops/acme-agent',
    );
    const policy = find(objects, 'ValidatingAdmissionPolicy', 'acme-agent-node-restriction');
    expect(JSON.stringify(policy)).toContain("endsWith(':acme-agent')");
    const url = podSpec(find(objects, 'DaemonSet', 'acme-agent')).containers[0]?.env?.find(
      (e) => e.name === 'NOMA_COORDINATOR_URL',
    );
    expect(url?.value).toBe('wss://acme-coordinator.ops.svc:8443');
  });

  it('TLS modes: cert-manager (its own CA, or your issuer), an existing Secret', async () => {
    const own = await render(['--set', 'tls.mode=cert-manager']);
    const cert = find(own, 'Certificate', 'noma-coordinator-tls') as Manifest & {
      spec: { secretName: string; dnsNames: string[]; issuerRef: unknown };
    };
    expect(cert.spec.secretName).toBe('noma-coordinator-tls');
    expect(cert.spec.dnsNames).toContain('noma-coordinator.noma-system.svc');
    expect(cert.spec.issuerRef).toEqual({ name: 'noma-ca', kind: 'Issuer' });
    expect(own.filter((o) => o.kind === 'Issuer').map((o) => o.metadata.name)).toEqual([
      'noma-selfsigned',
      'noma-ca',
    ]);
    const theirs = await render([
      ...['--set', 'tls.mode=cert-manager,tls.certManager.issuerRef.name=corp'],
      ...['--set', 'tls.certManager.issuerRef.kind=ClusterIssuer'],
    ]);
    expect(kinds(theirs).has('Issuer')).toBe(false);
    expect(find(theirs, 'Certificate', 'noma-coordinator-tls')['spec']).toMatchObject({
      issuerRef: { name: 'corp', kind: 'ClusterIssuer' },
    });
    const secret = await render(['--set', 'tls.mode=secret,tls.secretName=link-tls']);
    expect(coordinatorArgs(secret).join(' ')).toContain('--agent-tls-secret link-tls');
    expect(JSON.stringify(find(secret, 'Role', 'noma-coordinator'))).toContain(
      '"resourceNames":["link-tls"]',
    );
    expect(kinds(secret).has('Certificate')).toBe(false);
    expect(await renderError(['--set', 'tls.mode=secret'])).toContain('set tls.secretName');
    expect(await renderError(['--set', 'tls.mode=vault'])).toContain('tls.mode must be');
  });

  it('label rules from a file need their label keys; new rules roll the agents', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'noma-helm-rules-'));
    try {
      const rules = join(dir, 'rules.yaml');
      writeFileSync(rules, 'countLabel: gpus\nnomaLabels: false\n');
      const refused = await renderError(['--set-file', `agent.labelRules=${rules}`]);
      expect(refused).toContain('set agent.labelKeys too');
      const objects = await render([
        ...['--set-file', `agent.labelRules=${rules}`, '--set', 'agent.labelKeys.keys={gpus}'],
      ]);
      expect(find(objects, 'ConfigMap', 'noma-label-rules')['data']).toEqual({
        'rules.yaml': 'countLabel: gpus\nnomaLabels: false\n',
      });
      expect(find(objects, 'ConfigMap', 'noma-agent-label-keys')['data']).toEqual({
        keys: 'gpus\n',
        prefixes: '',
      });
      const checksum = (o: readonly Manifest[]) =>
        JSON.stringify(find(o, 'DaemonSet', 'noma-agent')).match(
          /"checksum\/label-rules":"(\w+)"/,
        )?.[1];
      expect(checksum(objects)).toMatch(/^[0-9a-f]{64}$/);
      expect(checksum(objects)).not.toBe(checksum(await render()));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('switches: NetworkPolicies, each admission policy, RBAC tiers, the CRD, monitoring', async () => {
    const off = await render([
      ...['--set', 'networkPolicy.enabled=false,rbac.tiers=false,rbac.endpoints=false'],
      ...['--set', 'admissionPolicies.agentNodeRestriction=false,crds.install=false'],
      ...['--set', 'admissionPolicies.nodeMaintenanceTiers=false'],
      ...[
        '--set',
        'admissionPolicies.stepImages=false,admissionPolicies.coordinatorStepPods=false',
      ],
    ]);
    for (const kind of [
      'NetworkPolicy',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
      'CustomResourceDefinition',
    ]) {
      expect(kinds(off).has(kind), kind).toBe(false);
    }
    expect(off.map((o) => o.metadata.name)).not.toContain('noma-admin');
    expect(off.map((o) => o.metadata.name)).not.toContain('noma-metrics-reader');
    const allowList = await render([
      '--set',
      'admissionPolicies.imageAllowList={reg.example/tools/*,busybox:1.36}',
    ]);
    expect(find(allowList, 'ConfigMap', 'noma-image-allow-list')['data']).toEqual({
      images: 'reg.example/tools/*\nbusybox:1.36',
    });
    const http = await render([
      '--set',
      'networkPolicy.coordinatorHttpFrom[0].namespaceSelector.matchLabels.team=obs',
    ]);
    expect(JSON.stringify(find(http, 'NetworkPolicy', 'noma-coordinator'))).toContain(
      '{"from":[{"namespaceSelector":{"matchLabels":{"team":"obs"}}}],"ports":[{"port":"http","protocol":"TCP"}]}',
    );
    // Monitoring is off unless asked; on, it is deploy/monitoring/'s rule in this namespace.
    expect(kinds(await render()).has('PrometheusRule')).toBe(false);
    const monitoring = await render([
      '--set',
      'monitoring.prometheusRule.enabled=true,monitoring.prometheusRule.labels.release=kps',
    ]);
    const rule = find(monitoring, 'PrometheusRule', 'noma');
    expect(rule.metadata.labels?.['release']).toBe('kps');
    const source = parseManifests(
      readFileSync(sourcePath('monitoring/prometheus-rule.yaml'), 'utf8'),
    )[0];
    expect(rule['spec']).toEqual(source?.['spec']);
    const dashboards = await render([
      ...['--set', 'monitoring.grafanaDashboard.enabled=true'],
      ...['--set', 'monitoring.grafanaDashboard.namespace=monitoring'],
    ]);
    const dashboard = find(dashboards, 'ConfigMap', 'noma-grafana-dashboard');
    expect(dashboard.metadata).toMatchObject({
      namespace: 'monitoring',
      labels: { grafana_dashboard: '1' },
    });
    expect((dashboard['data'] as Record<string, string>)['noma.json']).toBe(
      readFileSync(sourcePath('monitoring/grafana-dashboard.json'), 'utf8'),
    );
  });
});

describe('on the real API server', () => {
  const kcArg = () => ['--kubeconfig', inject('kubeconfig')];

  it('are cluster-scoped on the real API server: the kinds the comparison treats as such', async () => {
    const { stdout } = await run('kubectl', [...kcArg(), 'api-resources', '--namespaced=false']);
    // The last column of each line is the kind.
    const clusterKinds = new Set(
      stdout
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.split(/\s+/).pop()),
    );
    const rendered = [...kinds(await render(['--set', 'namespace.create=true']))];
    expect(rendered.filter((k) => clusterKinds.has(k)).sort()).toEqual([...CLUSTER_SCOPED].sort());
  });

  it('accepts the rendered chart (`kubectl apply --dry-run=server`), with defaults and with a prefix', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'noma-helm-dry-'));
    try {
      for (const [file, values] of [
        ['defaults.yaml', ['--set', 'namespace.create=true']],
        ['prefixed.yaml', ['--set', 'namePrefix=nomadry,coordinator.maxNodesInMaintenance=3']],
      ] as const) {
        const { stdout: manifest } = await run(
          helm,
          ['template', 'noma', CHART_DIR, '-n', 'noma-system', ...values],
          BIG,
        );
        writeFileSync(join(dir, file), manifest);
        const { stdout } = await run(
          'kubectl',
          [...kcArg(), 'apply', '--dry-run=server', '-f', join(dir, file)],
          BIG,
        );
        const count = parseManifests(manifest).length;
        expect(stdout.trim().split('\n'), stdout).toHaveLength(count);
        expect(stdout).toMatch(
          /daemonset\.apps\/\S*-agent (created|configured|unchanged) \(server dry run\)/,
        );
        expect(stdout).toMatch(
          /validatingadmissionpolicy\.admissionregistration\.k8s\.io\/\S*-agent-node-restriction/,
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a release installed with `helm install`, and a maintenance with its identities', () => {
  // A namespace and a name prefix of its own: the shared cluster already holds deploy/'s objects
  // (noma-system, the ClusterRoles noma-*), which Helm would refuse to take over. The CRD is
  // deploy/'s (crds.install=false: Helm would refuse to adopt it, and the other tests use it).
  // The workloads are pinned to this test's node (the DaemonSet would otherwise put a pod on
  // every simulated node of the other tests, and the PodDisruptionBudget block their drains).
  // The two policies that judge every NodeMaintenance, whoever writes it, stay off: they would
  // answer the other tests' requests beside deploy/'s copies (privilege-tiers.test.ts tests
  // those); the policies on the release's own identities are on.
  const admin = adminKubeConfig();
  const core = admin.makeApiClient(CoreV1Api);
  const suffix = uniqueName('h').slice(2);
  const prefix = `noma-h${suffix}`;
  const release = prefix;
  const PIN = 'test.noma.dev/helm';
  const node = uniqueName('helm-gpu');
  const other = uniqueName('helm-other');
  const home = mkdtempSync(join(tmpdir(), 'noma-helm-'));
  let ns: Awaited<ReturnType<typeof createNamespace>>;
  let agent: AgentProcess | undefined;
  let coordinator: CoordinatorProcess | undefined;
  let machine: SimulatedMachine | undefined;
  let installed = false;
  const kubeconfigs = { agent: '', coordinator: '' };
  const kcArg = () => ['--kubeconfig', inject('kubeconfig')];

  beforeAll(async () => {
    ns = await createNamespace('helm');
    // What README says for --create-namespace where Pod Security enforces more by default.
    await core.patchNamespace(
      {
        name: ns.name,
        body: { metadata: { labels: { 'pod-security.kubernetes.io/enforce': 'privileged' } } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await createSimNode(node, { capacity: { [GPU]: '8' }, labels: { [PIN]: suffix } });
    await createSimNode(other);
    const values = join(home, 'values.yaml');
    writeFileSync(
      values,
      stringify({
        namePrefix: prefix,
        crds: { install: false },
        coordinator: { watchNamespaces: [ns.name], nodeSelector: { [PIN]: suffix } },
        agent: { nodeSelector: { [PIN]: suffix } },
        admissionPolicies: { nodeMaintenanceTiers: false, stepImages: false },
      }),
    );
    await run(helm, ['install', release, CHART_DIR, '-n', ns.name, '-f', values, ...kcArg()], BIG);
    installed = true;
  }, 240_000);

  afterAll(async () => {
    await machine?.close();
    await agent?.stop();
    await coordinator?.kill('SIGTERM');
    if (installed) {
      await run(helm, ['uninstall', release, '-n', ns.name, ...kcArg()]).catch(() => undefined);
    }
    await ns.remove();
    await deleteSimNode(node);
    await deleteSimNode(other);
    rmSync(home, { recursive: true, force: true });
  });

  /** The release's pod of `component` on this test's node (scheduled by its controller). */
  const podOf = (component: string) =>
    waitFor(`${component} pod of the release on ${node}`, async () => {
      const pods = await core.listNamespacedPod({
        namespace: ns.name,
        labelSelector: `app.kubernetes.io/component=${component}`,
      });
      const pod = pods.items.find((p) => p.spec?.nodeName === node);
      const { name, uid } = pod?.metadata ?? {};
      return name !== undefined && uid !== undefined
        ? { name, uid, ip: pod?.status?.podIP }
        : undefined;
    });

  it("installs the release's objects; its DaemonSet and Deployment schedule pods", async () => {
    const { stdout } = await run(
      helm,
      ['get', 'manifest', release, '-n', ns.name, ...kcArg()],
      BIG,
    );
    const objects = parseManifests(stdout);
    expect(kinds(objects).has('CustomResourceDefinition')).toBe(false);
    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    const role = await rbac.readClusterRole({ name: `${prefix}-agent` });
    expect(role.metadata?.labels?.['app.kubernetes.io/managed-by']).toBe('Helm');
    const agentPod = await podOf('agent');
    const coordinatorPod = await podOf('coordinator');
    const agentToken = await mintToken(admin, ns.name, `${prefix}-agent`, { boundPod: agentPod });
    kubeconfigs.agent = writeTokenKubeconfig(
      admin,
      agentToken,
      join(home, 'agent.kubeconfig'),
      'agent',
    );
    const coordinatorToken = await mintToken(admin, ns.name, `${prefix}-coordinator`, {
      boundPod: coordinatorPod,
    });
    kubeconfigs.coordinator = writeTokenKubeconfig(
      admin,
      coordinatorToken,
      join(home, 'coordinator.kubeconfig'),
      'coordinator',
    );
  });

  it("holds the agent's identity to its own Node with the release's policies", async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigs.agent);
    const api = kc.makeApiClient(CoreV1Api);
    const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    // Server-side dry runs: admitted (or refused) like the real patch, nothing is stored.
    const attempt = async (target: string, key: string) => {
      const err = await api
        .patchNode(
          { name: target, body: { metadata: { labels: { [key]: 'x' } } }, dryRun: 'All' },
          merge,
        )
        .then(
          () => undefined,
          (e: unknown) => e as { code?: number; body?: unknown },
        );
      const body = err?.body;
      return { code: err?.code, body: typeof body === 'string' ? body : JSON.stringify(body) };
    };
    // The API server enforces a new policy once it has loaded it, a moment after the install.
    const refused = (target: string, key: string) =>
      waitFor(`the patch of ${key} on ${target} refused`, async () => {
        const r = await attempt(target, key);
        return r.code === 403 ? r : undefined;
      });
    const elsewhere = await refused(other, 'gpu.count');
    expect(elsewhere.body).toContain(`${prefix}-agent-node-restriction`);
    expect(elsewhere.body).toContain(`may not modify node ${other}`);
    const foreign = await refused(node, 'example.com/not-in-the-rules');
    expect(foreign.body).toContain(`${prefix}-agent-label-keys`);
    // A key of the chart's rules, on its own Node: allowed.
    expect(await attempt(node, 'gpu.count')).toEqual({ code: undefined, body: undefined });
  });

  /** The Deployment's container as installed: args, and the env the kubelet would give it. */
  async function installedCoordinator(): Promise<{ args: string[]; nodeOptions: string }> {
    const { stdout } = await run(
      helm,
      ['get', 'manifest', release, '-n', ns.name, ...kcArg()],
      BIG,
    );
    const c = podSpec(find(parseManifests(stdout), 'Deployment', `${prefix}-coordinator`))
      .containers[0];
    // Ports of its own: this is a process on a shared machine, not a pod.
    const args: string[] = [];
    const given = c?.args ?? [];
    for (let i = 0; i < given.length; i++) {
      const arg = given[i] ?? '';
      if (arg === '--http-port' || arg === '--agent-port') i++;
      else args.push(arg);
    }
    const nodeOptions = c?.env?.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '';
    return { args, nodeOptions };
  }

  /** A ConfigMap's key, as a pod that mounts it would read it, once it exists. */
  const configMapFile = async (name: string, key: string, file: string) => {
    const text = await waitFor(`ConfigMap ${name} with ${key}`, async () => {
      const cm = await core.readNamespacedConfigMap({ name, namespace: ns.name });
      return cm.data?.[key];
    });
    await writeFile(file, text);
    return file;
  };

  async function startLinkedAgent(
    port: number,
    caFile: string,
    rulesFile: string,
    tokenFile: string,
  ) {
    const started = await startAgent({
      nodeName: node,
      kubeconfig: kubeconfigs.agent,
      fixture: 'h100-sxm-x8.csv',
      args: [
        ...['--rules', rulesFile, '--state-dir', join(home, 'state')],
        ...['--work-dir', join(home, 'work'), '--executor', 'local'],
        // The DaemonSet's NOMA_COORDINATOR_URL names the Service; this process is local.
        ...['--coordinator-url', `wss://localhost:${port}`, '--coordinator-ca', caFile],
        ...['--token-file', tokenFile],
        ...['--boot-id-file', join(home, 'boot_id')],
        ...['--reboot-request-file', join(home, 'reboot-request')],
      ],
    });
    onTestFailed(() => {
      console.log(`--- agent ---\n${started.logs.slice(-60).join('\n')}`);
    });
    return started;
  }

  it("carries a Reboot + Complete with the release's identities, flags, Role and TLS bootstrap", async () => {
    const coordinatorPod = await podOf('coordinator');
    const agentPod = await podOf('agent');
    const { args, nodeOptions } = await installedCoordinator();
    coordinator = await startCoordinator(
      kubeconfigs.coordinator,
      [...args, '--agent-port', '0', '--lease-duration', '3s', '--status-interval', '200ms'],
      60_000,
      false,
      // The downward API's values for the pod this process stands for.
      {
        POD_NAME: coordinatorPod.name,
        POD_IP: coordinatorPod.ip ?? '10.0.0.7',
        POD_NAMESPACE: ns.name,
        NODE_OPTIONS: nodeOptions,
      },
    );
    onTestFailed(() => {
      console.log(`--- coordinator ---\n${coordinator?.logs.slice(-80).join('\n') ?? ''}`);
    });
    const port = agentPortFrom(coordinator.logs) ?? 0;
    // What the DaemonSet mounts: the CA the coordinator published, the chart's rules, and a
    // token for the audience noma.dev bound to the release's agent pod.
    const caFile = await configMapFile(`${prefix}-coordinator-ca`, 'ca.crt', join(home, 'ca.crt'));
    const rulesFile = await configMapFile(
      `${prefix}-label-rules`,
      'rules.yaml',
      join(home, 'rules.yaml'),
    );
    const tokenFile = join(home, 'link-token');
    await writeFile(
      tokenFile,
      await mintToken(admin, ns.name, `${prefix}-agent`, {
        audiences: ['noma.dev'],
        boundPod: agentPod,
      }),
    );
    await mkdir(join(home, 'work'), { recursive: true });
    const before = (await core.readNode({ name: node })).status?.nodeInfo?.bootID ?? '';
    machine = new SimulatedMachine({
      bootIdFile: join(home, 'boot_id'),
      rebootRequestFile: join(home, 'reboot-request'),
      reportBootID: (bootID) => simulateReboot(node, bootID),
      stopAgent: () => agent?.stop() ?? Promise.resolve(),
      startAgent: async () => {
        agent = await startLinkedAgent(port, caFile, rulesFile, tokenFile);
      },
      pollMs: 100,
      downMs: 200,
    });
    await machine.start(before);
    agent = await startLinkedAgent(port, caFile, rulesFile, tokenFile);
    await waitFor('the agent on the link', async () => {
      const res = await fetch(`${coordinator?.baseUrl ?? ''}/agents`);
      const body = (await res.json()) as { agents: { node: string }[] };
      return body.agents.some((a) => a.node === node);
    });
    const labeled = await waitFor('the chart rules’ labels', async () => {
      const n = await core.readNode({ name: node });
      return n.metadata?.labels?.['hardware.tier'] === 'high-performance' ? n : undefined;
    });
    expect(labeled.metadata?.labels?.['gpu.h100']).toBe('true');

    const rs = uniqueName('gpu-job');
    await admin.makeApiClient(AppsV1Api).createNamespacedReplicaSet({
      namespace: ns.name,
      body: {
        metadata: { name: rs },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: rs } },
          template: {
            metadata: { labels: { app: rs } },
            spec: { nodeSelector: { 'kubernetes.io/hostname': node }, containers: [container(1)] },
          },
        },
      },
    });
    await waitFor('the GPU pod running', async () => {
      const pods = await core.listNamespacedPod({ namespace: ns.name, labelSelector: `app=${rs}` });
      return pods.items.some((p) => p.spec?.nodeName === node && p.status?.phase === 'Running');
    });

    const nms = maintenances(admin, ns.name);
    const name = uniqueName('helm-reboot');
    await nms.create(name, {
      nodeSelector: `kubernetes.io/hostname in (${node})`,
      actions: [{ type: 'Reboot', timeout: '1m' }, { type: 'Complete' }],
    });
    const done = await nms.waitPhase(name, ['Completed', 'Failed'], 90_000);
    const status = nodeStatus(done, node);
    expect({ phase: done.status?.phase, node: status?.phase }).toEqual({
      phase: 'Completed',
      node: 'Succeeded',
    });
    expect(status?.drain?.evicted).toBe(1);
    expect(status?.bootIDBeforeReboot).toBe(before);
    expect((await core.readNode({ name: node })).status?.nodeInfo?.bootID).not.toBe(before);
    expect(machine.reboots).toBe(1);
    const after = await core.readNode({ name: node });
    expect(after.spec?.unschedulable ?? false).toBe(false);
    // The drain left the release's own pods: the agent's (DaemonSet) and the coordinator's
    // (its label, in its namespace).
    expect((await podOf('agent')).uid).toBe(agentPod.uid);
    expect((await podOf('coordinator')).uid).toBe(coordinatorPod.uid);

    // What the release's Role let the coordinator's identity do in its namespace.
    const lease = await admin
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ name: `${prefix}-coordinator`, namespace: ns.name });
    expect(lease.spec?.holderIdentity).toBe(coordinatorPod.name);
    const secret = await core.readNamespacedSecret({
      name: `${prefix}-coordinator-tls`,
      namespace: ns.name,
    });
    expect(secret.type).toBe('kubernetes.io/tls');
    const slice = await admin
      .makeApiClient(DiscoveryV1Api)
      .readNamespacedEndpointSlice({ name: `${prefix}-coordinator-leader`, namespace: ns.name });
    expect(slice.metadata?.labels?.['kubernetes.io/service-name']).toBe(`${prefix}-coordinator`);
  }, 180_000);

  it("`helm uninstall` removes the release's cluster-scoped objects", async () => {
    await machine?.close();
    await agent?.stop();
    await coordinator?.kill('SIGTERM');
    await run(helm, ['uninstall', release, '-n', ns.name, ...kcArg()]);
    installed = false;
    const { stdout } = await run('kubectl', [
      ...kcArg(),
      'get',
      'clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings',
      '-l',
      `app.kubernetes.io/instance=${release}`,
      '-o',
      'name',
    ]);
    expect(stdout.trim()).toBe('');
  });
});
