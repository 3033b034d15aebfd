// deploy/ and examples/ as files: what the issue asks of the manifests, the label rules the
// ConfigMap ships, and the example NodeMaintenances against the API schema. Their behaviour on
// a real API server: test/integration/deploy-identity.test.ts.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type {
  V1DaemonSet,
  V1Deployment,
  V1PodDisruptionBudget,
  V1Service,
} from '@kubernetes/client-node';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { FLAGS } from '../../agent/config.js';
import { dryRunErrors } from '../../agent/labels/load-rules.js';
import { parseRules } from '../../agent/labels/rules.js';
import { HELP as COORDINATOR_HELP } from '../../coordinator/config.js';
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
    const svc = deployObject('Service', 'noma-coordinator') as unknown as V1Service;
    for (const [k, v] of Object.entries(svc.spec?.selector ?? {})) expect(labels[k]).toBe(v);
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
    ]) {
      expect(files).toContain(f);
    }
  });

  it.each(files)('%s is a valid NodeMaintenance', (file) => {
    const result = validateNodeMaintenance(parse(readFileSync(join(dir, file), 'utf8')));
    if (!result.ok) throw new Error(formatErrors(result.errors));
  });
});
