// The coordinator's HTTP endpoints on the real API server, the coordinator running as deploy/'s
// own ServiceAccount (its ClusterRole is what reviews tokens): /metrics and /agents need a
// bearer token that passes a TokenReview and a SubjectAccessReview for the path (ClusterRole
// noma-metrics-reader), the probes stay open, /agents carries no output, and `noma nodes` still
// reads it (through the API server's pod proxy, as a user with only deploy/'s noma-nodes-viewer
// rules, and by URL). deploy/'s endpoints-rbac.yaml and network-policy.yaml are applied as
// they are (no CNI here enforces the policies: the API server accepting them is what is tested).
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CoreV1Api,
  NetworkingV1Api,
  PatchStrategy,
  RbacAuthorizationV1Api,
  loadAllYaml,
  setHeaderOptions,
  type V1PolicyRule,
} from '@kubernetes/client-node';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFailed } from 'vitest';
import { AGENT_LINK_PATH, COORDINATOR_SENDS, decodeFrame, encode } from '../../shared/protocol.js';
import { runNoma } from '../support/cli.js';
import { startCoordinator, type CoordinatorProcess } from '../support/coordinator-process.js';
import { installCRD } from '../support/crd.js';
import { daemonSetBoundTokens } from '../support/agent-daemonset.js';
import {
  COORDINATOR_SERVICE_ACCOUNT,
  DEPLOY_DIR,
  NOMA_NAMESPACE,
  applyObjects,
  type ManifestObject,
} from '../support/deploy.js';
import { mintToken, writeTokenKubeconfig } from '../support/identity.js';
import {
  adminKubeConfig,
  createNamespace,
  createNotReadyNode,
  createSimNode,
  deleteSimNode,
  mintServiceAccountToken,
  uniqueName,
  waitFor,
} from '../support/kube.js';
import { maintenances } from '../support/maintenance.js';
import { AGENT_SA, freePort, writeLinkTls } from '../support/link.js';

const admin = adminKubeConfig();
const core = admin.makeApiClient(CoreV1Api);
const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** The Lease and the coordinator's identity (its pod's name), as deploy/ names them. */
const LEASE = 'noma-coordinator';
const identity = uniqueName('noma-coordinator');
const node = uniqueName('endpoints-gpu');
/** A node no kubelet plays, for the Pod that stands for the coordinator. */
const podNode = uniqueName('endpoints-host');
/** What the step printed, as the agent reports it while the step runs; never on /agents. */
const SECRET = 'export TOKEN=s3cr3t-output';
let ns: Awaited<ReturnType<typeof createNamespace>>;
let dir: string;
let coordinator: CoordinatorProcess | undefined;
let agent: WebSocket | undefined;
const tokens = { reader: '', nobody: '', viewerKubeconfig: '' };
const cleanups: (() => Promise<unknown>)[] = [];

/** deploy/'s objects of one file, as written. */
function fileObjects(file: string): ManifestObject[] {
  return (
    loadAllYaml(readFileSync(join(DEPLOY_DIR, file), 'utf8')) as (ManifestObject | null)[]
  ).filter((o): o is ManifestObject => o !== null);
}

function rulesOf(file: string, kind: string, name: string): V1PolicyRule[] {
  const found = fileObjects(file).find((o) => o.kind === kind && o.metadata.name === name);
  if (found === undefined) throw new Error(`deploy/${file} has no ${kind} ${name}`);
  return (found as { rules?: V1PolicyRule[] }).rules ?? [];
}

const get = (path: string, headers: Record<string, string> = {}) =>
  fetch(`${coordinator?.baseUrl ?? ''}${path}`, { headers });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/**
 * deploy/'s noma-nodes-viewer rules in the test namespace (where the Lease is) plus `list
 * nodes`, for a ServiceAccount `viewer`; and the reader ServiceAccount there, bound to
 * noma-metrics-reader as deploy/ binds noma-system's. Returns the viewer's kubeconfig.
 */
async function viewerFixtures(): Promise<string> {
  const namespace = ns.name;
  for (const name of ['viewer', 'noma-metrics-reader']) {
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  }
  await rbac.createNamespacedRole({
    namespace,
    body: {
      metadata: { name: 'noma-nodes-viewer' },
      rules: rulesOf('endpoints-rbac.yaml', 'Role', 'noma-nodes-viewer'),
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: 'viewer' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'noma-nodes-viewer' },
      subjects: [{ kind: 'ServiceAccount', name: 'viewer', namespace }],
    },
  });
  const lister = `${namespace}-node-lister`;
  await rbac.createClusterRole({
    body: {
      metadata: { name: lister },
      rules: [{ apiGroups: [''], resources: ['nodes'], verbs: ['list'] }],
    },
  });
  cleanups.push(() => rbac.deleteClusterRole({ name: lister }));
  const bindings = [
    { name: lister, role: lister, sa: 'viewer' },
    { name: `${namespace}-metrics-reader`, role: 'noma-metrics-reader', sa: 'noma-metrics-reader' },
  ];
  for (const b of bindings) {
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: b.name },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: b.role },
        subjects: [{ kind: 'ServiceAccount', name: b.sa, namespace }],
      },
    });
    cleanups.push(() => rbac.deleteClusterRoleBinding({ name: b.name }));
  }
  return writeTokenKubeconfig(
    admin,
    await mintToken(admin, namespace, 'viewer'),
    join(dir, 'viewer.kubeconfig'),
    'viewer',
  );
}

/** The coordinator's identity from deploy/, plus the Lease it leads with in the test namespace. */
async function coordinatorKubeconfig(): Promise<string> {
  const sa = {
    kind: 'ServiceAccount',
    name: COORDINATOR_SERVICE_ACCOUNT,
    namespace: NOMA_NAMESPACE,
  };
  await rbac.createNamespacedRole({
    namespace: ns.name,
    body: {
      metadata: { name: 'lease' },
      rules: [
        { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
        {
          apiGroups: ['coordination.k8s.io'],
          resources: ['leases'],
          resourceNames: [LEASE],
          verbs: ['get', 'update'],
        },
      ],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace: ns.name,
    body: {
      metadata: { name: 'lease' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'lease' },
      subjects: [sa],
    },
  });
  return writeTokenKubeconfig(
    admin,
    await mintToken(admin, NOMA_NAMESPACE, COORDINATOR_SERVICE_ACCOUNT),
    join(dir, 'coordinator.kubeconfig'),
    'noma-coordinator',
  );
}

/**
 * Plays `node`'s agent on the link: a token bound to a DaemonSet pod on the node, the hello,
 * and, for each action.start, an action.progress that carries the step's output.
 */
async function connectAgent(agentPort: number, caFile: string): Promise<WebSocket> {
  const linkTokens = await daemonSetBoundTokens(
    admin,
    ns.name,
    'agent',
    {
      'kubernetes.io/hostname': node,
    },
    [node],
  );
  const ws = new WebSocket(`wss://localhost:${agentPort}${AGENT_LINK_PATH}`, {
    ca: await readFile(caFile),
    headers: { authorization: `Bearer ${linkTokens.get(node) ?? ''}` },
  });
  ws.on('error', () => undefined);
  ws.on('message', (data: Buffer) => {
    const frame = decodeFrame(data, COORDINATOR_SENDS);
    if (!frame.ok || frame.message.type !== 'action.start') return;
    ws.send(
      encode('action.progress', { id: frame.message.id, state: 'running', outputTail: SECRET }),
    );
  });
  await new Promise((r) => ws.once('open', r));
  ws.send(encode('hello', { node, bootID: 'b', version: 'test', inventory: null, actions: [] }));
  return ws;
}

/** A non-loopback address of this machine: the API server's pod proxy refuses loopback. */
function hostAddress(): string {
  const found = Object.values(networkInterfaces())
    .flat()
    .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;
  if (found === undefined) throw new Error('no non-loopback IPv4 address on this machine');
  return found;
}

/**
 * The coordinator runs here, not in a pod: a Pod named as its identity, on a node no kubelet
 * plays, whose status gives this machine's address and whose `http` port is the coordinator's.
 */
async function standInPod(): Promise<void> {
  const port = Number(new URL(coordinator?.baseUrl ?? '').port);
  await core.createNamespacedPod({
    namespace: ns.name,
    body: {
      metadata: { name: identity },
      spec: {
        nodeName: podNode,
        containers: [{ name: 'c', image: 'noma', ports: [{ name: 'http', containerPort: port }] }],
      },
    },
  });
  const address = hostAddress();
  await core.patchNamespacedPodStatus(
    {
      namespace: ns.name,
      name: identity,
      body: { status: { phase: 'Running', podIP: address, podIPs: [{ ip: address }] } },
    },
    MERGE,
  );
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'noma-endpoints-'));
  await applyObjects(
    admin,
    [
      'namespace.yaml',
      'coordinator-rbac.yaml',
      'endpoints-rbac.yaml',
      'network-policy.yaml',
    ].flatMap(fileObjects),
    'noma-endpoints-test',
  );
  await installCRD(admin);
  ns = await createNamespace('endpoints');
  await createSimNode(node, { capacity: { 'nvidia.com/gpu': '8' } });
  await createNotReadyNode(podNode);
  cleanups.push(
    () => deleteSimNode(node),
    () => deleteSimNode(podNode),
  );
  tokens.reader = await mintToken(admin, NOMA_NAMESPACE, 'noma-metrics-reader');
  tokens.nobody = await mintServiceAccountToken(ns.name, 'nobody');
  tokens.viewerKubeconfig = await viewerFixtures();
  const tls = await writeLinkTls();
  const agentPort = await freePort();
  coordinator = await startCoordinator(await coordinatorKubeconfig(), [
    ...['--namespace', ns.name, '--watch-namespace', ns.name, '--status-interval', '200ms'],
    ...['--lease-name', LEASE, '--identity', identity, '--lease-duration', '2s'],
    ...['--agent-port', String(agentPort), '--agent-tls-cert', tls.certFile],
    ...['--agent-tls-key', tls.keyFile, '--agent-service-account', `${ns.name}/${AGENT_SA}`],
    ...['--endpoint-auth', 'on'],
  ]);
  agent = await connectAgent(agentPort, tls.caFile);
  await standInPod();
}, 120_000);

afterAll(async () => {
  agent?.terminate();
  await coordinator?.kill('SIGTERM');
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await ns.remove();
});

describe("the coordinator's endpoints", () => {
  it('/healthz and /readyz answer without a token', async () => {
    expect((await get('/healthz')).status).toBe(200);
    const ready = await get('/readyz');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ role: 'leader' });
  });

  it.each(['/agents', '/metrics'])(
    '%s without a token, or with one not accepted: 401',
    async (path) => {
      const none = await get(path);
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toBe('Bearer');
      expect((await get(path, bearer('not-a-token'))).status).toBe(401);
      expect((await get(path, { 'x-noma-authorization': 'Bearer not-a-token' })).status).toBe(401);
      // Credentials are not passed on in query strings or Basic auth.
      expect((await get(`${path}?access_token=${tokens.reader}`)).status).toBe(401);
    },
  );

  it.each(['/agents', '/metrics'])(
    '%s with the token of a ServiceAccount not bound to noma-metrics-reader: 403, naming it',
    async (path) => {
      const res = await get(path, bearer(tokens.nobody));
      expect(res.status).toBe(403);
      expect(await res.json()).toEqual({
        error: expect.stringContaining(
          `system:serviceaccount:${ns.name}:nobody may not get ${path}`,
        ) as unknown,
      });
    },
  );

  it("an agent's link token (audience noma.dev) does not open them: 401", async () => {
    const link = await mintToken(admin, ns.name, AGENT_SA, { audiences: ['noma.dev'] });
    expect((await get('/metrics', bearer(link))).status).toBe(401);
  });

  it("noma-metrics-reader's token reads both, in Authorization or X-Noma-Authorization", async () => {
    const metrics = await get('/metrics', bearer(tokens.reader));
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^noma_agents_connected 1$/m);
    const agents = await get('/agents', { 'x-noma-authorization': `Bearer ${tokens.reader}` });
    expect(agents.status).toBe(200);
    expect(await agents.json()).toMatchObject({ agents: [{ node }] });
  });

  it('scrapes reuse the decision: 20 scrapes, one review', async () => {
    const reviews = async (): Promise<number> => {
      const text = await (await get('/metrics', bearer(tokens.reader))).text();
      return Number(/^noma_endpoint_reviews_total\{result="allowed"\} (\d+)$/m.exec(text)?.[1]);
    };
    const before = await reviews();
    for (let i = 0; i < 20; i++)
      expect((await get('/metrics', bearer(tokens.reader))).status).toBe(200);
    // The TTL is 10 s: a renewal may fall in between, never 20.
    expect((await reviews()) - before).toBeLessThanOrEqual(1);
  });

  it("/agents shows a running step's state, never its output", async () => {
    onTestFailed(() => {
      console.log(`--- coordinator ---\n${coordinator?.logs.slice(-60).join('\n') ?? ''}`);
    });
    await maintenances(admin, ns.name).create('script', {
      nodeSelector: `kubernetes.io/hostname=${node}`,
      actions: [{ type: 'Script', name: 'print', timeout: '10m', script: { script: 'echo hi' } }],
    });
    // The agent's progress frame for the step carries its output; /agents shows the step.
    const text = await waitFor('the running step on /agents', async () => {
      const body = await (await get('/agents', bearer(tokens.reader))).text();
      return body.includes('"state":"running"') ? body : undefined;
    });
    const body = JSON.parse(text) as {
      agents: { node: string; running: Record<string, unknown> }[];
    };
    const running = Object.values(body.agents.find((a) => a.node === node)?.running ?? {});
    expect(running).toEqual([{ state: 'running' }]);
    expect(text).not.toContain('s3cr3t');
    expect(text).not.toContain('outputTail');
  });
});

describe('deploy/ network-policy.yaml', () => {
  it('is accepted by the API server as written', async () => {
    const net = admin.makeApiClient(NetworkingV1Api);
    const names = (await net.listNamespacedNetworkPolicy({ namespace: NOMA_NAMESPACE })).items.map(
      (p) => p.metadata?.name,
    );
    expect(names).toEqual(
      expect.arrayContaining(['noma-default-deny-ingress', 'noma-coordinator', 'noma-agent']),
    );
  });
});

describe('noma nodes with the endpoints behind a token', () => {
  const agentColumn = (stdout: string, name: string): string | undefined =>
    new RegExp(`^${name} .* (\\S+)$`, 'm').exec(stdout)?.[1];

  it("through the pod proxy, as a user with only deploy/'s noma-nodes-viewer rules: a minted token", async () => {
    const run = await runNoma([
      ...['nodes', '--kubeconfig', tokens.viewerKubeconfig, node],
      ...['--coordinator', `${ns.name}/${LEASE}`],
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(agentColumn(run.stdout, node)).toBe('yes');
  });

  it('by URL, with --token: yes with a reader token; with another, a warning that says what to do', async () => {
    const url = coordinator?.baseUrl ?? '';
    const ok = await runNoma([
      ...['nodes', '--kubeconfig', inject('kubeconfig'), node],
      ...['--coordinator', url, '--token', tokens.reader],
    ]);
    expect(ok.stderr).toBe('');
    expect(agentColumn(ok.stdout, node)).toBe('yes');
    const refused = await runNoma([
      ...['nodes', '--kubeconfig', inject('kubeconfig'), node],
      ...['--coordinator', url, '--token', tokens.nobody],
    ]);
    expect(refused.code).toBe(0);
    expect(refused.stderr).toContain(
      `${url}/agents: HTTP 403: system:serviceaccount:${ns.name}:nobody may not get /agents`,
    );
    expect(refused.stderr).toContain(
      "bind the token's identity to the ClusterRole noma-metrics-reader",
    );
    expect(agentColumn(refused.stdout, node)).toBe('-');
  });

  it('without a token it may mint: the warning names the ServiceAccount and --token', async () => {
    // The viewer may mint tokens for the reader of its namespace only, not noma-system's (the
    // one a URL asks for).
    const url = coordinator?.baseUrl ?? '';
    const run = await runNoma([
      ...['nodes', '--kubeconfig', tokens.viewerKubeconfig, node, '--coordinator', url],
    ]);
    expect(run.code).toBe(0);
    expect(run.stderr).toContain(`${url}/agents: HTTP 401: a bearer token is needed`);
    expect(run.stderr).toContain(`no token for ${NOMA_NAMESPACE}/noma-metrics-reader: HTTP 403`);
    expect(run.stderr).toContain(
      `pass --token (e.g. \`kubectl create token -n ${NOMA_NAMESPACE} noma-metrics-reader\`)`,
    );
    const invalid = await runNoma([
      ...['nodes', '--kubeconfig', tokens.viewerKubeconfig, node],
      ...['--coordinator', `${ns.name}/${LEASE}`, '--token', 'not-a-token'],
    ]);
    expect(invalid.stderr).toMatch(/agent connections unknown: .*HTTP 401: token not accepted/);
    expect(invalid.stderr).toContain('pass a valid --token');
  });
});
