// deploy/ and examples/ as files: what the issue asks of the manifests, the label rules the
// ConfigMap ships, and the example NodeMaintenances against the API schema. Their behaviour on
// a real API server: test/integration/deploy-identity.test.ts.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type {
  V1ClusterRole,
  V1DaemonSet,
  V1Deployment,
  V1PodDisruptionBudget,
  V1PolicyRule,
  V1Role,
  V1Service,
} from '@kubernetes/client-node';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { FLAGS } from '../../agent/config.js';
import { dryRunErrors } from '../../agent/labels/load-rules.js';
import { parseRules } from '../../agent/labels/rules.js';
import { HELP as COORDINATOR_HELP, parseConfig } from '../../coordinator/config.js';
import {
  AGENT_LINK_PORT_NAME,
  leaderEndpointSlice,
  leaderSliceName,
} from '../../coordinator/link/leader-endpoint.js';
import { formatErrors, validateNodeMaintenance } from '../../shared/api/index.js';
import { deployObject, deployObjects, labelRulesText } from '../support/deploy.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const ds = deployObject('DaemonSet', 'noma-agent') as unknown as V1DaemonSet;
const deploy = deployObject('Deployment', 'noma-coordinator') as unknown as V1Deployment;
const agentPod = ds.spec?.template.spec;
const agent = agentPod?.containers[0];
const coordinator = deploy.spec?.template.spec?.containers[0];

describe('the agent DaemonSet', () => {
  it('runs on every node, nodes in maintenance included, privileged in the host PID namespace', () => {
    expect(agentPod?.tolerations).toContainEqual({ operator: 'Exists' });
    expect(agentPod?.hostPID).toBe(true);
    expect(agent?.securityContext?.privileged).toBe(true);
    expect(agentPod?.serviceAccountName).toBe('noma-agent');
  });

  it('knows its node from the downward API and keeps its state on a hostPath', () => {
    const env = agent?.env ?? [];
    expect(env.find((e) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe(
      'spec.nodeName',
    );
    const stateDir = env.find((e) => e.name === 'NOMA_STATE_DIR')?.value;
    const mount = agent?.volumeMounts?.find((m) => m.mountPath === stateDir);
    const volume = agentPod?.volumes?.find((v) => v.name === mount?.name);
    expect(volume?.hostPath?.path).toBeDefined();
  });

  it("mounts a projected ServiceAccount token with noma's audience", () => {
    const sources = agentPod?.volumes?.flatMap((v) => v.projected?.sources ?? []) ?? [];
    expect(sources.map((s) => s.serviceAccountToken?.audience)).toContain('noma.dev');
  });

  it('only uses flags and environment variables the agent knows', () => {
    const flags = new Set<string>(FLAGS.map((f) => `--${f.flag}`));
    const envs = new Set<string>(FLAGS.map((f) => f.env));
    for (const arg of (agent?.args ?? []).filter((a) => a.startsWith('--'))) {
      expect(flags, arg).toContain(arg);
    }
    for (const e of (agent?.env ?? []).filter((e) => e.name.startsWith('NOMA_'))) {
      expect(envs, e.name).toContain(e.name);
    }
  });

  it("connects to the coordinator's Service with the CA and token it mounts", () => {
    const env = new Map((agent?.env ?? []).map((e) => [e.name, e.value]));
    const svc = deployObject('Service', 'noma-coordinator') as unknown as V1Service;
    const url = new URL(env.get('NOMA_COORDINATOR_URL') ?? '');
    expect(url.protocol).toBe('wss:');
    expect(url.hostname).toBe(`${svc.metadata?.name ?? ''}.${svc.metadata?.namespace ?? ''}.svc`);
    const linkPort = svc.spec?.ports?.find((p) => p.name === AGENT_LINK_PORT_NAME)?.port;
    expect(Number(url.port)).toBe(linkPort);
    const mounted = (file: string | undefined) =>
      agent?.volumeMounts?.some((m) => file?.startsWith(`${m.mountPath}/`) === true);
    expect(mounted(env.get('NOMA_COORDINATOR_CA'))).toBe(true);
    // The token file is the flag's default: the projected token's mount.
    const tokenFile = FLAGS.find((f) => f.flag === 'token-file')?.default;
    expect(env.has('NOMA_TOKEN_FILE')).toBe(false);
    expect(mounted(tokenFile)).toBe(true);
  });
});

describe('the coordinator Deployment', () => {
  it('runs two replicas, each labelled so that its own drain skips it, under a PDB', () => {
    expect(deploy.spec?.replicas).toBe(2);
    const labels = deploy.spec?.template.metadata?.labels ?? {};
    expect(labels['app.kubernetes.io/component']).toBe('coordinator');
    const pdb = deployObject(
      'PodDisruptionBudget',
      'noma-coordinator',
    ) as unknown as V1PodDisruptionBudget;
    expect(pdb.spec?.minAvailable).toBe(1);
    for (const [k, v] of Object.entries(pdb.spec?.selector?.matchLabels ?? {}))
      expect(labels[k]).toBe(v);
  });

  it('serves the agent link with the TLS Secret it bootstraps, and points the Service at the leader only', () => {
    const args = coordinator?.args ?? [];
    const env = Object.fromEntries(
      (coordinator?.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom?.fieldRef?.fieldPath]),
    );
    // What the process would make of its arguments and the downward API.
    const config = parseConfig(args, {
      POD_IP: '10.0.0.7',
      POD_NAMESPACE: 'noma-system',
      POD_NAME: 'noma-coordinator-x',
    });
    if (config === 'help') throw new Error('--help in deploy/');
    expect(env['POD_IP']).toBe('status.podIP');
    // TLS from the Secret it bootstraps itself (no files, no Secret volume), its CA published
    // in the ConfigMap that the agents mount, and RBAC that allows exactly those two by name.
    expect(config.agentTlsCert).toBeUndefined();
    expect(config.agentTlsSecret).toEqual({
      namespace: 'noma-system',
      name: 'noma-coordinator-tls',
    });
    expect(config.agentCaConfigMap).toEqual({
      namespace: 'noma-system',
      name: 'noma-coordinator-ca',
    });
    expect(deploy.spec?.template.spec?.volumes?.some((v) => v.secret !== undefined)).toBe(false);
    const caFile = new Map((agent?.env ?? []).map((e) => [e.name, e.value])).get(
      'NOMA_COORDINATOR_CA',
    );
    const caMount = agent?.volumeMounts?.find((m) => caFile?.startsWith(`${m.mountPath}/`));
    const caVolume = agentPod?.volumes?.find((v) => v.name === caMount?.name);
    expect(caVolume?.configMap?.name).toBe(config.agentCaConfigMap?.name);
    expect(caVolume?.configMap?.items).toEqual([{ key: 'ca.crt', path: 'ca.crt' }]);

    // The Service has no selector (a standby has no port open); the leader's EndpointSlice
    // names it, its port by name, and RBAC allows exactly that slice.
    const svc = deployObject('Service', 'noma-coordinator') as unknown as V1Service;
    expect(svc.spec?.selector).toBeUndefined();
    expect(config.leaderService).toBe(svc.metadata?.name);
    const slice = leaderEndpointSlice({
      namespace: config.namespace,
      service: config.leaderService ?? '',
      podIP: '10.0.0.7',
      podName: 'noma-coordinator-x',
      port: config.agentPort,
    });
    expect(slice.metadata?.labels?.['kubernetes.io/service-name']).toBe(svc.metadata?.name);
    const svcPort = svc.spec?.ports?.find((p) => p.name === slice.ports?.[0]?.name);
    expect(svcPort?.port).toBe(config.agentPort);
    const role = deployObject('Role', 'noma-coordinator') as unknown as V1Role;
    const sliceRules = (role.rules ?? []).filter((r) => r.resources?.includes('endpointslices'));
    expect(sliceRules.flatMap((r) => r.resourceNames ?? [])).toEqual([
      leaderSliceName(svc.metadata?.name ?? ''),
    ]);
    expect(sliceRules.flatMap((r) => r.verbs).sort()).toEqual(['create', 'get', 'update']);
    for (const [resource, name] of [
      ['secrets', config.agentTlsSecret?.name],
      ['configmaps', config.agentCaConfigMap?.name],
    ] as const) {
      const rules = (role.rules ?? []).filter((r) => r.resources?.includes(resource));
      // Named get/update; create cannot be limited by name in RBAC. No list or watch.
      expect(rules.flatMap((r) => r.resourceNames ?? [])).toEqual([name]);
      expect(rules.find((r) => r.resourceNames === undefined)?.verbs).toEqual(['create']);
      expect(rules.flatMap((r) => r.verbs).sort()).toEqual(['create', 'get', 'update']);
    }
    // Action pods (privileged, on a node) are created, and their logs read, in noma-system only.
    const clusterRole = deployObject('ClusterRole', 'noma-coordinator') as unknown as V1ClusterRole;
    const verbs = (rules: V1PolicyRule[] | undefined, resource: string) =>
      (rules ?? []).filter((r) => r.resources?.includes(resource)).flatMap((r) => r.verbs);
    expect(verbs(role.rules, 'pods')).toEqual(['create']);
    expect(verbs(role.rules, 'pods/log')).toEqual(['get']);
    expect(verbs(clusterRole.rules, 'pods')).not.toContain('create');
    expect(verbs(clusterRole.rules, 'pods/log')).toEqual([]);
    // Rolling updates replace one pod at a time without a surge pod (one leader either way).
    expect(deploy.spec?.strategy?.rollingUpdate).toEqual({ maxUnavailable: 1, maxSurge: 0 });
  });

  it('only uses flags the coordinator knows, and runs as non-root', () => {
    for (const arg of (coordinator?.args ?? []).filter((a) => a.startsWith('--'))) {
      expect(COORDINATOR_HELP, arg).toContain(`${arg} `);
    }
    expect(deploy.spec?.template.spec?.securityContext?.runAsNonRoot).toBe(true);
  });
});

describe('every workload', () => {
  it('has resource requests and a memory limit, and liveness/readiness probes on the health endpoints', () => {
    for (const c of [agent, coordinator]) {
      expect(c?.resources?.requests?.['cpu'], c?.name).toBeDefined();
      expect(c?.resources?.requests?.['memory'], c?.name).toBeDefined();
      expect(c?.resources?.limits?.['memory'], c?.name).toBeDefined();
      expect(c?.livenessProbe?.httpGet?.path, c?.name).toBe('/healthz');
      expect(c?.readinessProbe?.httpGet?.path, c?.name).toBe('/readyz');
    }
  });

  it('lives in noma-system, like everything namespaced in deploy/', () => {
    for (const o of deployObjects()) {
      if (o.metadata.namespace !== undefined)
        expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe('noma-system');
    }
  });
});

describe('the label rules ConfigMap', () => {
  it('holds rules the agent accepts and that produce only valid labels', () => {
    const result = parseRules(labelRulesText());
    if (!result.ok) throw new Error(result.errors.join('\n'));
    expect(dryRunErrors(result.rules)).toEqual([]);
    // H100/A100-class nodes are high-performance before the multi-GPU rule applies.
    expect(result.rules.tier.rules.map((r) => r.value)).toEqual(['high-performance', 'dual-gpu']);
  });
});

describe('examples/', () => {
  const dir = join(ROOT, 'examples');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));

  it('has the documented examples', () => {
    for (const f of [
      'reboot.yaml',
      'script.yaml',
      'delete-node.yaml',
      'free-nodes.yaml',
      'multi-step.yaml',
      'interactive-shell.yaml',
      'script-in-pod.yaml',
    ]) {
      expect(files).toContain(f);
    }
  });

  it.each(files)('%s is a valid NodeMaintenance', (file) => {
    const result = validateNodeMaintenance(parse(readFileSync(join(dir, file), 'utf8')));
    if (!result.ok) throw new Error(formatErrors(result.errors));
  });
});

describe('who reaches the endpoints and ports (endpoints-rbac.yaml, network-policy.yaml)', () => {
  type Policy = import('@kubernetes/client-node').V1NetworkPolicy;
  type Binding = import('@kubernetes/client-node').V1ClusterRoleBinding;
  const rulesOf = (kind: string, name: string): V1PolicyRule[] =>
    (deployObject(kind, name) as unknown as V1Role | V1ClusterRole).rules ?? [];
  const policy = (name: string) => deployObject('NetworkPolicy', name) as unknown as Policy;
  const matches = (selector: Record<string, string> | undefined, labels = {}) =>
    Object.entries(selector ?? {}).every(([k, v]) => (labels as Record<string, string>)[k] === v);

  it('lets the coordinator review tokens and access (TokenReview, SubjectAccessReview)', () => {
    const rules = rulesOf('ClusterRole', 'noma-coordinator');
    for (const [group, resource] of [
      ['authentication.k8s.io', 'tokenreviews'],
      ['authorization.k8s.io', 'subjectaccessreviews'],
    ]) {
      expect(
        rules.some(
          (r) =>
            r.apiGroups?.includes(group ?? '') === true &&
            r.resources?.includes(resource ?? '') === true &&
            r.verbs.includes('create'),
        ),
        resource,
      ).toBe(true);
    }
  });

  it('ships noma-metrics-reader: get on /metrics and /agents, and nothing else', () => {
    expect(rulesOf('ClusterRole', 'noma-metrics-reader')).toEqual([
      { nonResourceURLs: ['/metrics', '/agents'], verbs: ['get'] },
    ]);
    const binding = deployObject('ClusterRoleBinding', 'noma-metrics-reader') as unknown as Binding;
    expect(binding.roleRef).toMatchObject({ kind: 'ClusterRole', name: 'noma-metrics-reader' });
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'noma-metrics-reader', namespace: 'noma-system' },
    ]);
  });

  it("gives noma nodes' users the leader's Lease, its pod proxy and tokens of the reader only", () => {
    expect(rulesOf('Role', 'noma-nodes-viewer')).toEqual([
      {
        apiGroups: ['coordination.k8s.io'],
        resources: ['leases'],
        resourceNames: ['noma-coordinator'],
        verbs: ['get'],
      },
      { apiGroups: [''], resources: ['pods', 'pods/proxy'], verbs: ['get'] },
      {
        apiGroups: [''],
        resources: ['serviceaccounts/token'],
        resourceNames: ['noma-metrics-reader'],
        verbs: ['create'],
      },
    ]);
  });

  it('denies ingress to every pod of noma-system unless a policy allows it', () => {
    expect(policy('noma-default-deny-ingress').spec).toEqual({
      podSelector: {},
      policyTypes: ['Ingress'],
    });
  });

  it("lets only agent pods reach the link port, and anyone the coordinator's http port", () => {
    const spec = policy('noma-coordinator').spec;
    expect(matches(spec?.podSelector?.matchLabels, deploy.spec?.template.metadata?.labels)).toBe(
      true,
    );
    expect(matches(spec?.podSelector?.matchLabels, ds.spec?.template.metadata?.labels)).toBe(false);
    const [link, http] = spec?.ingress ?? [];
    // A pod selector matches pod IPs: agents on the host network would not match it.
    expect(agentPod?.hostNetwork ?? false).toBe(false);
    // client-node's model names `from` `_from`.
    const agents = link?._from?.[0]?.podSelector?.matchLabels;
    expect(link?._from).toHaveLength(1);
    expect(matches(agents, ds.spec?.template.metadata?.labels)).toBe(true);
    expect(matches(agents, deploy.spec?.template.metadata?.labels)).toBe(false);
    expect(link?.ports).toEqual([{ port: 'agent-link', protocol: 'TCP' }]);
    expect(http).toEqual({ ports: [{ port: 'http', protocol: 'TCP' }] });
    const names = coordinator?.ports?.map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['agent-link', 'http']));
    // The probes and `noma nodes` (the pod's port named http) use that port.
    expect(coordinator?.readinessProbe?.httpGet?.port).toBe('http');
  });

  it("lets only labelled monitoring namespaces reach the agent's health port", () => {
    const spec = policy('noma-agent').spec;
    expect(matches(spec?.podSelector?.matchLabels, ds.spec?.template.metadata?.labels)).toBe(true);
    expect(spec?.ingress).toEqual([
      {
        _from: [{ namespaceSelector: { matchLabels: { 'noma.dev/metrics-scraper': 'true' } } }],
        ports: [{ port: 'health', protocol: 'TCP' }],
      },
    ]);
    expect(agent?.ports?.map((p) => p.name)).toEqual(['health']);
  });
});

describe('privilege tiers (rbac-tiers.yaml, nodemaintenance-policy.yaml)', () => {
  type Policy = import('@kubernetes/client-node').V1ValidatingAdmissionPolicy;
  type Binding = import('@kubernetes/client-node').V1ValidatingAdmissionPolicyBinding;
  const clusterRoles = deployObjects().filter(
    (o) => o.kind === 'ClusterRole',
  ) as unknown as V1ClusterRole[];
  const role = (name: string) => deployObject('ClusterRole', name) as unknown as V1ClusterRole;
  const nmVerbs = (rules: V1PolicyRule[] | undefined) =>
    (rules ?? [])
      .filter((r) => r.apiGroups?.includes('noma.dev') && r.resources?.includes('nodemaintenances'))
      .flatMap((r) => r.verbs);
  /** noma-admin's rules as the aggregation controller fills them in. */
  const adminRules = () => {
    const selectors = role('noma-admin').aggregationRule?.clusterRoleSelectors ?? [];
    return clusterRoles
      .filter((r) =>
        selectors.some((s) =>
          Object.entries(s.matchLabels ?? {}).every(([k, v]) => r.metadata?.labels?.[k] === v),
        ),
      )
      .flatMap((r) => r.rules ?? []);
  };
  const tiers = deployObject('ValidatingAdmissionPolicy', 'noma-nodemaintenance-tiers') as Policy;
  /** The verbs the policy asks the authorizer about. */
  const checkedVerbs = [
    ...JSON.stringify(tiers.spec?.validations).matchAll(/check\('([a-z-]+)'\)/g),
  ].map((m) => m[1]);

  it('asks the authorizer for exec-on-nodes and maintain-control-plane on nodemaintenances', () => {
    expect(checkedVerbs.sort()).toEqual(['exec-on-nodes', 'maintain-control-plane']);
    const access = tiers.spec?.variables?.find((v) => v.name === 'access')?.expression;
    expect(access).toContain("authorizer.group('noma.dev').resource('nodemaintenances')");
    const rules = tiers.spec?.matchConstraints?.resourceRules ?? [];
    expect(rules.flatMap((r) => r.resources)).toEqual(['nodemaintenances']);
    expect(rules.flatMap((r) => r.operations).sort()).toEqual(['CREATE', 'UPDATE']);
  });

  it('gives noma-operator everything on nodemaintenances but the checked verbs; noma-admin all', () => {
    const operator = nmVerbs(role('noma-operator').rules);
    for (const v of ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete']) {
      expect(operator).toContain(v);
    }
    for (const v of checkedVerbs) expect(operator).not.toContain(v);
    expect(operator).not.toContain('*');
    const admin = nmVerbs(adminRules());
    for (const v of [...operator, ...checkedVerbs]) expect(admin).toContain(v);
  });

  it('aggregates into none of the built-in roles (bound per namespace; a maintenance acts on Nodes)', () => {
    for (const r of clusterRoles.filter((r) => r.metadata?.name?.startsWith('noma-'))) {
      const labels = Object.keys(r.metadata?.labels ?? {});
      expect(
        labels.filter((l) => l.startsWith('rbac.authorization.k8s.io/aggregate-to-')),
        r.metadata?.name,
      ).toEqual([]);
    }
  });

  it('binds every policy with Deny; the image allow-list to the ConfigMap it ships, empty', () => {
    const policies = deployObjects().filter((o) => o.kind === 'ValidatingAdmissionPolicy');
    const bindings = deployObjects().filter(
      (o) => o.kind === 'ValidatingAdmissionPolicyBinding',
    ) as unknown as Binding[];
    for (const p of policies) {
      const b = bindings.find((b) => b.spec?.policyName === p.metadata.name);
      expect(b?.spec?.validationActions, p.metadata.name).toEqual(['Deny']);
      expect((p as Policy).spec?.failurePolicy, p.metadata.name).toBe('Fail');
    }
    const images = bindings.find((b) => b.spec?.policyName === 'noma-step-images');
    const ref = images?.spec?.paramRef;
    expect(ref?.parameterNotFoundAction).toBe('Allow');
    const cm = deployObject('ConfigMap', ref?.name ?? '') as ReturnType<typeof deployObject> & {
      data?: Record<string, string>;
    };
    expect(cm.metadata.namespace).toBe(ref?.namespace);
    expect(cm.data).toEqual({ images: '' });
    expect(
      (deployObject('ValidatingAdmissionPolicy', 'noma-step-images') as Policy).spec?.paramKind,
    ).toEqual({ apiVersion: 'v1', kind: 'ConfigMap' });
  });

  it("holds the coordinator's ServiceAccount to step pods without Secrets or a token", () => {
    const pods = deployObject('ValidatingAdmissionPolicy', 'noma-coordinator-step-pods') as Policy;
    const who = pods.spec?.matchConditions?.map((c) => c.expression).join(' ') ?? '';
    expect(who).toContain("endsWith(':noma-coordinator')");
    expect(deployObject('ServiceAccount', 'noma-coordinator').metadata.name).toBe(
      'noma-coordinator',
    );
    const text = JSON.stringify(pods.spec);
    for (const rule of ['automountServiceAccountToken', 'hostPath', 'secretKeyRef', 'envFrom']) {
      expect(text).toContain(rule);
    }
  });
});
