// deploy/ on the real API server: its CRD, RBAC and admission policy are applied, then the
// agent and the coordinator run as local processes with tokens of deploy/'s own
// ServiceAccounts (not admin) through a maintenance. The agent's identity is held to its own
// Node by the ValidatingAdmissionPolicy, like NodeRestriction holds a kubelet.
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { promisify } from 'node:util';
import {
  AppsV1Api,
  AuthorizationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Node,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateServingCert } from '../../shared/certs.js';
import { startAgent, type AgentProcess } from '../support/agent-process.js';
import { startCoordinator, type CoordinatorProcess } from '../support/coordinator-process.js';
import {
  AGENT_SERVICE_ACCOUNT,
  COORDINATOR_SERVICE_ACCOUNT,
  DEPLOY_DIR,
  NOMA_NAMESPACE,
  applyObjects,
  deployObjects,
  isWorkload,
  labelRulesText,
} from '../support/deploy.js';
import { container, GPU } from '../support/drain-fixtures.js';
import { mintToken, writeTokenKubeconfig } from '../support/identity.js';
import { maintenances } from '../support/maintenance.js';
import { agentPortFrom, writeLinkTls } from '../support/link.js';
import {
  adminKubeConfig,
  createNamespace,
  createSimNode,
  deleteSimNode,
  uniqueName,
  waitFor,
} from '../support/kube.js';

const run = promisify(execFile);
const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

const admin = adminKubeConfig();
const core = admin.makeApiClient(CoreV1Api);
const dir = mkdtempSync(join(tmpdir(), 'noma-deploy-'));
let ns: Awaited<ReturnType<typeof createNamespace>>;
const nodeA = uniqueName('deploy-gpu');
const nodeB = uniqueName('deploy-other');
const agentPod = uniqueName('noma-agent');
const kubeconfigs = { agent: '', agentUnbound: '', coordinator: '' };
let agent: AgentProcess | undefined;
let coordinator: CoordinatorProcess | undefined;

function client(file: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  return kc;
}

/** The HTTP status of a refused call (client-node's ApiException carries `code`). */
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

/** The EndpointSlice by which the leader points the agent link Service at itself. */
const LEADER_SLICE = 'noma-coordinator-leader';

const labelPatch = (key: string) => ({ metadata: { labels: { [key]: 'x' } } });

/** The link's TLS Secret and CA ConfigMap, as deploy/ names them (flags and Role). */
const TLS_SECRET = 'noma-coordinator-tls';
const CA_CONFIGMAP = 'noma-coordinator-ca';

async function deleteLinkTls(): Promise<void> {
  await core
    .deleteNamespacedSecret({ name: TLS_SECRET, namespace: NOMA_NAMESPACE })
    .catch(() => undefined);
  await core
    .deleteNamespacedConfigMap({ name: CA_CONFIGMAP, namespace: NOMA_NAMESPACE })
    .catch(() => undefined);
}

const unb64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString('utf8');

/** The certificate a TLS server presents to a client that trusts `ca` and asks for `name`. */
async function servedCert(port: number, ca: string, name: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: name }, () => {
      const raw = socket.getPeerX509Certificate();
      socket.destroy();
      if (raw === undefined) reject(new Error('no peer certificate'));
      else resolve(raw);
    });
    socket.once('error', reject);
  });
}

beforeAll(async () => {
  await applyObjects(
    admin,
    deployObjects().filter((o) => !isWorkload(o)),
    'noma-deploy-test',
  );
  ns = await createNamespace('deploy');
  await createSimNode(nodeA, { capacity: { [GPU]: '8' } });
  await createSimNode(nodeB);
  // The DaemonSet's pod on nodeA, as far as identity goes: the agent's ServiceAccount, on nodeA.
  const pod = await core.createNamespacedPod({
    namespace: NOMA_NAMESPACE,
    body: {
      metadata: { name: agentPod, labels: { 'noma.dev/test': 'deploy-identity' } },
      spec: {
        nodeName: nodeA,
        serviceAccountName: AGENT_SERVICE_ACCOUNT,
        tolerations: [{ operator: 'Exists' }],
        containers: [{ name: 'agent', image: 'noma:test' }],
      },
    },
  });
  const boundPod = { name: agentPod, uid: pod.metadata?.uid ?? '' };
  kubeconfigs.agent = writeTokenKubeconfig(
    admin,
    await mintToken(admin, NOMA_NAMESPACE, AGENT_SERVICE_ACCOUNT, { boundPod }),
    join(dir, 'agent.kubeconfig'),
    'noma-agent',
  );
  kubeconfigs.agentUnbound = writeTokenKubeconfig(
    admin,
    await mintToken(admin, NOMA_NAMESPACE, AGENT_SERVICE_ACCOUNT),
    join(dir, 'agent-unbound.kubeconfig'),
    'noma-agent-unbound',
  );
  kubeconfigs.coordinator = writeTokenKubeconfig(
    admin,
    await mintToken(admin, NOMA_NAMESPACE, COORDINATOR_SERVICE_ACCOUNT),
    join(dir, 'coordinator.kubeconfig'),
    'noma-coordinator',
  );
});

afterAll(async () => {
  await agent?.stop();
  await coordinator?.kill('SIGTERM');
  await core
    .deleteNamespacedPod({ name: agentPod, namespace: NOMA_NAMESPACE, gracePeriodSeconds: 0 })
    .catch(() => undefined);
  await admin
    .makeApiClient(DiscoveryV1Api)
    .deleteNamespacedEndpointSlice({ name: LEADER_SLICE, namespace: NOMA_NAMESPACE })
    .catch(() => undefined);
  await deleteLinkTls();
  await deleteSimNode(nodeA);
  await deleteSimNode(nodeB);
  await ns.remove();
  rmSync(dir, { recursive: true, force: true });
});

describe('deploy/', () => {
  it('passes `kubectl apply --dry-run=server -k deploy/`, and the tests load what kustomize builds', async () => {
    const kubectl = await run('kubectl', ['version', '--client']).catch(() => undefined);
    if (kubectl === undefined) {
      throw new Error('kubectl is needed for this test (it runs `kubectl apply -k deploy/`)');
    }
    const kcArg = ['--kubeconfig', inject('kubeconfig')];
    const { stdout } = await run('kubectl', [
      ...kcArg,
      'apply',
      '--dry-run=server',
      '-k',
      DEPLOY_DIR,
    ]);
    for (const kind of ['daemonset.apps/noma-agent', 'deployment.apps/noma-coordinator']) {
      expect(stdout).toContain(`${kind} created (server dry run)`);
    }
    expect(stdout).toContain(
      'validatingadmissionpolicy.admissionregistration.k8s.io/noma-agent-node-restriction',
    );
    const built = await run('kubectl', ['kustomize', DEPLOY_DIR], { maxBuffer: 16 << 20 });
    const kinds = (text: string) =>
      text
        .split(/^---$/m)
        .map((doc) => {
          const kind = /^kind: (\S+)$/m.exec(doc)?.[1];
          const name = /^ {2}name: (\S+)$/m.exec(doc)?.[1];
          return `${kind ?? '?'}/${name ?? '?'}`;
        })
        .sort();
    expect(
      deployObjects()
        .map((o) => `${o.kind}/${o.metadata.name}`)
        .sort(),
    ).toEqual(kinds(built.stdout));
  });
});

describe("the agent's identity (deploy/'s noma-agent ServiceAccount, token bound to a pod on its node)", () => {
  it('may label its own node (with a key of its rules: test/integration/agent-policy.test.ts)', async () => {
    const api = client(kubeconfigs.agent).makeApiClient(CoreV1Api);
    const node = await api.patchNode({ name: nodeA, body: labelPatch('gpu.a100') }, MERGE);
    expect(node.metadata?.labels?.['gpu.a100']).toBe('x');
  });

  it('may not label another node (ValidatingAdmissionPolicy)', async () => {
    const api = client(kubeconfigs.agent).makeApiClient(CoreV1Api);
    const { code, body } = await refusal(
      api.patchNode({ name: nodeB, body: labelPatch('example.com/other') }, MERGE),
    );
    expect(code).toBe(403);
    expect(body).toContain('noma-agent-node-restriction');
    expect(body).toContain(`may not modify node ${nodeB}`);
    const other = await core.readNode({ name: nodeB });
    expect(other.metadata?.labels?.['example.com/other']).toBeUndefined();
  });

  it('may not cordon, taint or change the status of its own node', async () => {
    const api = client(kubeconfigs.agent).makeApiClient(CoreV1Api);
    const cordon = await refusal(
      api.patchNode({ name: nodeA, body: { spec: { unschedulable: true } } }, MERGE),
    );
    expect(cordon.code).toBe(403);
    expect(cordon.body).toContain('only the labels and annotations');
    const status = await refusal(
      api.patchNodeStatus(
        { name: nodeA, body: { status: { nodeInfo: { bootID: 'forged' } } } },
        MERGE,
      ),
    );
    expect(status.code).toBe(403);
    expect((await core.readNode({ name: nodeA })).spec?.unschedulable).not.toBe(true);
  });

  it('may modify no node with a token that is not bound to a pod on a node', async () => {
    const api = client(kubeconfigs.agentUnbound).makeApiClient(CoreV1Api);
    const { code, body } = await refusal(
      api.patchNode({ name: nodeA, body: labelPatch('example.com/unbound') }, MERGE),
    );
    expect(code).toBe(403);
    expect(body).toContain('not bound to a pod on a node');
  });

  it('may not read Secrets, create pods or delete nodes', async () => {
    const api = client(kubeconfigs.agent).makeApiClient(CoreV1Api);
    expect((await refusal(api.listNamespacedSecret({ namespace: NOMA_NAMESPACE }))).code).toBe(403);
    expect((await refusal(api.listSecretForAllNamespaces())).code).toBe(403);
    expect((await refusal(api.readNamespacedSecret({ name: 'x', namespace: ns.name }))).code).toBe(
      403,
    );
    const pod = {
      metadata: { name: 'sneaky' },
      spec: { nodeName: nodeB, containers: [{ name: 'c', image: 'noma:test' }] },
    };
    expect((await refusal(api.createNamespacedPod({ namespace: ns.name, body: pod }))).code).toBe(
      403,
    );
    expect((await refusal(api.deleteNode({ name: nodeA }))).code).toBe(403);
  });
});

describe("the coordinator's identity (deploy/'s noma-coordinator ServiceAccount)", () => {
  it('may not read Secrets outside its TLS Secret, create pods outside noma-system, or take Leases elsewhere', async () => {
    const kc = client(kubeconfigs.coordinator);
    const api = kc.makeApiClient(CoreV1Api);
    expect((await refusal(api.listSecretForAllNamespaces())).code).toBe(403);
    expect((await refusal(api.listNamespacedSecret({ namespace: NOMA_NAMESPACE }))).code).toBe(403);
    expect((await refusal(api.readNamespacedSecret({ name: 'x', namespace: ns.name }))).code).toBe(
      403,
    );
    // In its own namespace, a Secret that exists but is not its TLS Secret stays unreadable
    // (create is namespace-wide in RBAC; get and update are by name).
    const other = uniqueName('other-secret');
    await core.createNamespacedSecret({
      namespace: NOMA_NAMESPACE,
      body: { metadata: { name: other }, stringData: { password: 'x' } },
    });
    try {
      const read = await refusal(
        api.readNamespacedSecret({ name: other, namespace: NOMA_NAMESPACE }),
      );
      expect(read.code).toBe(403);
      const update = await refusal(
        api.replaceNamespacedSecret({
          name: other,
          namespace: NOMA_NAMESPACE,
          body: { metadata: { name: other }, stringData: { password: 'y' } },
        }),
      );
      expect(update.code).toBe(403);
    } finally {
      await core.deleteNamespacedSecret({ name: other, namespace: NOMA_NAMESPACE });
    }
    expect(
      (
        await refusal(
          api.readNamespacedConfigMap({ name: 'noma-label-rules', namespace: NOMA_NAMESPACE }),
        )
      ).code,
    ).toBe(403);
    expect(
      (
        await refusal(
          api.createNamespacedSecret({ namespace: ns.name, body: { metadata: { name: 'x' } } }),
        )
      ).code,
    ).toBe(403);
    const pod = { metadata: { name: 'sneaky' }, spec: { containers: [{ name: 'c', image: 'x' }] } };
    expect((await refusal(api.createNamespacedPod({ namespace: ns.name, body: pod }))).code).toBe(
      403,
    );
    const leases = kc.makeApiClient(CoordinationV1Api);
    const lease = { metadata: { name: 'noma-coordinator' }, spec: {} };
    expect(
      (await refusal(leases.createNamespacedLease({ namespace: ns.name, body: lease }))).code,
    ).toBe(403);
  });
});

describe("the coordinator's action pods (deploy/'s Role in noma-system)", () => {
  it('may create pods and read their logs in noma-system, and neither elsewhere', async () => {
    const api = client(kubeconfigs.coordinator).makeApiClient(CoreV1Api);
    // Without a ServiceAccount token, as step pods are (deploy/nodemaintenance-policy.yaml).
    const pod = (name: string) => ({
      metadata: { name },
      spec: {
        nodeName: nodeB,
        automountServiceAccountToken: false,
        containers: [{ name: 'c', image: 'noma:test' }],
      },
    });
    // Server-side dry run: authorized and admitted like a real create, nothing is stored.
    const created = await api.createNamespacedPod({
      namespace: NOMA_NAMESPACE,
      body: pod(uniqueName('action')),
      dryRun: 'All',
    });
    expect(created.metadata?.namespace).toBe(NOMA_NAMESPACE);
    const elsewhere = await refusal(
      api.createNamespacedPod({ namespace: ns.name, body: pod('action'), dryRun: 'All' }),
    );
    expect(elsewhere.code).toBe(403);
    // pods/log, asked of the real authorizer for the coordinator's ServiceAccount.
    const authz = admin.makeApiClient(AuthorizationV1Api);
    const mayReadLogs = async (namespace: string) =>
      (
        await authz.createSubjectAccessReview({
          body: {
            spec: {
              user: `system:serviceaccount:${NOMA_NAMESPACE}:${COORDINATOR_SERVICE_ACCOUNT}`,
              groups: ['system:serviceaccounts', `system:serviceaccounts:${NOMA_NAMESPACE}`],
              resourceAttributes: {
                namespace,
                verb: 'get',
                resource: 'pods',
                subresource: 'log',
              },
            },
          },
        })
      ).status?.allowed;
    expect(await mayReadLogs(NOMA_NAMESPACE)).toBe(true);
    expect(await mayReadLogs(ns.name)).toBe(false);
  });
});

describe("the agent link's TLS, bootstrapped with the coordinator's own identity", () => {
  const start = (identity: string) =>
    startCoordinator(kubeconfigs.coordinator, [
      '--namespace',
      NOMA_NAMESPACE,
      '--watch-namespace',
      ns.name,
      '--identity',
      identity,
      '--lease-duration',
      '3s',
      '--agent-port',
      '0',
      // As deploy/'s Deployment passes them (names in --namespace).
      '--agent-tls-secret',
      TLS_SECRET,
      '--agent-ca-configmap',
      CA_CONFIGMAP,
    ]);
  const readBoth = async () => ({
    secret: await core.readNamespacedSecret({ name: TLS_SECRET, namespace: NOMA_NAMESPACE }),
    cm: await core.readNamespacedConfigMap({ name: CA_CONFIGMAP, namespace: NOMA_NAMESPACE }),
  });
  const SERVICE_NAME = `noma-coordinator.${NOMA_NAMESPACE}.svc`;

  it('creates the Secret and the CA ConfigMap on first start, serves with them, and reuses them on the next', async () => {
    await deleteLinkTls();
    const first = await start(uniqueName('tls-first'));
    let created;
    try {
      created = await readBoth();
      const port = agentPortFrom(first.logs) ?? 0;
      const data = created.secret.data ?? {};
      expect(created.secret.type).toBe('kubernetes.io/tls');
      const caCert = unb64(data['ca.crt']);
      expect(created.cm.data?.['ca.crt']).toBe(caCert);
      const cert = new X509Certificate(unb64(data['tls.crt']));
      expect(cert.subjectAltName).toContain(`DNS:${SERVICE_NAME}`);
      expect(cert.subjectAltName).toContain(`DNS:${SERVICE_NAME}.cluster.local`);
      expect(cert.verify(new X509Certificate(caCert).publicKey)).toBe(true);
      // What an agent does: trust only the published CA, ask for the Service's name.
      const served = await servedCert(port, caCert, SERVICE_NAME);
      expect(served.fingerprint256).toBe(cert.fingerprint256);
    } finally {
      expect(await first.kill('SIGTERM')).toBe(0);
    }

    const second = await start(uniqueName('tls-second'));
    try {
      const again = await readBoth();
      expect(again.secret.metadata?.resourceVersion).toBe(created.secret.metadata?.resourceVersion);
      expect(again.cm.metadata?.resourceVersion).toBe(created.cm.metadata?.resourceVersion);
      const caCert = unb64(again.secret.data?.['ca.crt']);
      const served = await servedCert(agentPortFrom(second.logs) ?? 0, caCert, SERVICE_NAME);
      expect(served.fingerprint256).toBe(
        new X509Certificate(unb64(again.secret.data?.['tls.crt'])).fingerprint256,
      );
    } finally {
      expect(await second.kill('SIGTERM')).toBe(0);
    }
  });

  it('renews a certificate that expires within 30 days, signed by the same CA', async () => {
    const { secret, cm } = await readBoth();
    const data = secret.data ?? {};
    const ca = { cert: unb64(data['ca.crt']), key: unb64(data['ca.key']) };
    // Ten days left: inside the renewal window.
    const short = await generateServingCert(ca, [SERVICE_NAME], 10);
    await core.replaceNamespacedSecret({
      name: TLS_SECRET,
      namespace: NOMA_NAMESPACE,
      body: {
        metadata: { name: TLS_SECRET, resourceVersion: secret.metadata?.resourceVersion ?? '' },
        type: 'kubernetes.io/tls',
        data: {
          ...data,
          'tls.crt': Buffer.from(short.cert).toString('base64'),
          'tls.key': Buffer.from(short.key).toString('base64'),
        },
      },
    });
    const third = await start(uniqueName('tls-renew'));
    try {
      const renewed = await readBoth();
      const cert = new X509Certificate(unb64(renewed.secret.data?.['tls.crt']));
      expect(Date.parse(cert.validTo) - Date.now()).toBeGreaterThan(300 * 24 * 3_600_000);
      expect(unb64(renewed.secret.data?.['ca.crt'])).toBe(ca.cert);
      expect(cert.verify(new X509Certificate(ca.cert).publicKey)).toBe(true);
      // Same CA: the agents' ConfigMap is left as it was.
      expect(renewed.cm.metadata?.resourceVersion).toBe(cm.metadata?.resourceVersion);
      const served = await servedCert(agentPortFrom(third.logs) ?? 0, ca.cert, SERVICE_NAME);
      expect(served.fingerprint256).toBe(cert.fingerprint256);
    } finally {
      expect(await third.kill('SIGTERM')).toBe(0);
    }
  });
});

describe('a full maintenance with the manifests’ identities', () => {
  it('labels the node (agent), then cordons, drains and returns it to service (coordinator)', async () => {
    // The rules of deploy/'s ConfigMap, as the DaemonSet mounts them.
    const rulesFile = join(dir, 'rules.yaml');
    writeFileSync(rulesFile, labelRulesText());
    agent = await startAgent({
      nodeName: nodeA,
      kubeconfig: kubeconfigs.agent,
      fixture: 'h100-sxm-x8.csv',
      args: ['--rules', rulesFile],
    });
    const labeled = await waitFor(`labels on ${nodeA}`, async () => {
      const node = await core.readNode({ name: nodeA });
      return node.metadata?.labels?.['gpu.count'] === '8' ? node : undefined;
    });
    expect(labeled.metadata?.labels?.['gpu.h100']).toBe('true');
    expect(labeled.metadata?.labels?.['hardware.tier']).toBe('high-performance');

    // A GPU workload on the node, for the drain to evict through the Eviction API.
    const apps = admin.makeApiClient(AppsV1Api);
    const rs = uniqueName('gpu-job');
    await apps.createNamespacedReplicaSet({
      namespace: ns.name,
      body: {
        metadata: { name: rs },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: rs } },
          template: {
            metadata: { labels: { app: rs } },
            spec: { nodeSelector: { 'kubernetes.io/hostname': nodeA }, containers: [container(1)] },
          },
        },
      },
    });
    const first = await waitFor('GPU pod running on the node', async () => {
      const pods = await core.listNamespacedPod({ namespace: ns.name, labelSelector: `app=${rs}` });
      return pods.items.find((p) => p.spec?.nodeName === nodeA && p.status?.phase === 'Running');
    });

    const identity = uniqueName('coordinator');
    // With the agent link on and --leader-service as in deploy/: the leader points the Service
    // at itself (its pod IP from the downward API; any non-loopback address will do here).
    const tls = await writeLinkTls();
    coordinator = await startCoordinator(
      kubeconfigs.coordinator,
      [
        '--namespace',
        NOMA_NAMESPACE,
        '--watch-namespace',
        ns.name,
        '--identity',
        identity,
        '--lease-duration',
        '3s',
        '--status-interval',
        '200ms',
        '--agent-port',
        '0',
        '--agent-tls-cert',
        tls.certFile,
        '--agent-tls-key',
        tls.keyFile,
        '--leader-service',
        'noma-coordinator',
      ],
      30_000,
      false,
      { POD_IP: '10.0.0.7', POD_NAME: identity },
    );
    const nms = maintenances(admin, ns.name);
    const name = uniqueName('complete');
    await nms.create(name, {
      operationName: 'deploy-identity',
      linearTicket: 'ENG-6',
      nodeSelector: `kubernetes.io/hostname in (${nodeA})`,
      actions: [{ type: 'Complete' }],
    });
    const done = await waitFor(
      'NodeMaintenance Completed',
      async () => {
        const nm = await nms.get(name);
        if (nm?.status?.phase === 'Failed') {
          throw new Error(`maintenance failed: ${JSON.stringify(nm.status)}`);
        }
        return nm?.status?.phase === 'Completed' ? nm : undefined;
      },
      45_000,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}\ncoordinator logs:\n${coordinator?.logs.join('\n') ?? ''}`);
    });
    const status = done.status?.nodes?.[0];
    expect(status?.phase).toBe('Succeeded');
    expect(status?.drain?.evicted).toBe(1);
    const pods = await core.listNamespacedPod({ namespace: ns.name, labelSelector: `app=${rs}` });
    expect(pods.items.map((p) => p.metadata?.uid)).not.toContain(first.metadata?.uid);

    const node: V1Node = await core.readNode({ name: nodeA });
    expect(node.spec?.unschedulable).not.toBe(true);
    expect(node.spec?.taints ?? []).not.toContainEqual(
      expect.objectContaining({ key: 'noma.dev/maintenance' }),
    );
    expect(node.metadata?.labels?.['gpu.count']).toBe('8');
    const lease = await admin
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ name: 'noma-coordinator', namespace: NOMA_NAMESPACE });
    expect(lease.spec?.holderIdentity).toBe(identity);

    // The agent link Service reaches the leader only: its EndpointSlice, written with the
    // coordinator's own identity (deploy/'s Role), names this process's address and port.
    const agentPort = agentPortFrom(coordinator.logs);
    const slice = await waitFor('the leader EndpointSlice', () =>
      admin
        .makeApiClient(DiscoveryV1Api)
        .readNamespacedEndpointSlice({ name: LEADER_SLICE, namespace: NOMA_NAMESPACE })
        .catch(() => undefined),
    );
    expect(slice.metadata?.labels?.['kubernetes.io/service-name']).toBe('noma-coordinator');
    expect(slice.endpoints.map((e) => e.addresses)).toEqual([['10.0.0.7']]);
    expect(slice.endpoints[0]?.targetRef?.name).toBe(identity);
    expect(slice.ports?.[0]).toMatchObject({ name: 'agent-link', port: agentPort });
    rmSync(tls.dir, { recursive: true, force: true });
  });
});
