// `noma status` on the real API server: a NodeMaintenance whose status says it is in progress
// (as the coordinator would write it) is shown node by node, alone, by namespace and with -A;
// --watch prints it and stops when interrupted.
import {
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { GROUP, PLURAL, VERSION, type NodeMaintenanceStatus } from '../../shared/api/index.js';
import { runNoma } from '../support/cli.js';
import { installCRD } from '../support/crd.js';
import { adminKubeConfig, createNamespace, uniqueName } from '../support/kube.js';

let kc: KubeConfig;
let ns: Awaited<ReturnType<typeof createNamespace>>;
const name = uniqueName('driver-upgrade');
const kubeconfig = () => inject('kubeconfig');

const status: NodeMaintenanceStatus = {
  phase: 'Running',
  progress: '1/3',
  startedAt: '2026-08-01T11:40:00Z',
  observedNodes: ['sim-a', 'sim-b', 'sim-c'],
  currentActionIndex: 1,
  currentActionType: 'Reboot',
  nodes: [
    { name: 'sim-a', phase: 'Succeeded', lastExitCode: 0 },
    {
      name: 'sim-b',
      phase: 'Draining',
      drain: {
        total: 4,
        evicted: 1,
        pending: 3,
        blockedBy: { kind: 'PodDisruptionBudget', namespace: 'infer', name: 'llm-pdb' },
      },
    },
  ],
};

beforeAll(async () => {
  kc = adminKubeConfig();
  await installCRD(kc);
  ns = await createNamespace('cli-status');
  const custom = kc.makeApiClient(CustomObjectsApi);
  const ref = { group: GROUP, version: VERSION, plural: PLURAL, namespace: ns.name };
  await custom.createNamespacedCustomObject({
    ...ref,
    body: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'NodeMaintenance',
      metadata: { name },
      spec: {
        operationName: 'driver-upgrade',
        linearTicket: 'ENG-1234',
        nodeSelector: 'kubernetes.io/hostname in (sim-a,sim-b,sim-c)',
        actions: [
          { type: 'Script', name: 'upgrade.sh', script: { script: 'true' } },
          { type: 'Reboot' },
        ],
      },
    },
  });
  await custom.patchNamespacedCustomObjectStatus(
    { ...ref, name, body: { status } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
});

afterAll(async () => {
  await ns.remove();
});

function expectProgress(text: string): void {
  expect(text).toMatch(
    new RegExp(`^${ns.name}/${name} +Running +nodes 1/3 +ticket ENG-1234 +age `, 'm'),
  );
  expect(text).toContain('steps:    upgrade.sh → Reboot');
  expect(text).toMatch(/^ {2}NODE +PHASE +ACTION +DRAIN +BLOCKED BY +EXIT +MESSAGE$/m);
  expect(text).toMatch(/^ {2}sim-a +Succeeded +- +- +- +0 +-$/m);
  expect(text).toMatch(
    /^ {2}sim-b +Draining +- +1\/4 \(3 left\) +PodDisruptionBudget infer\/llm-pdb +- +-$/m,
  );
  expect(text).toMatch(/^ {2}sim-c +Pending +- +- +- +- +-$/m);
}

describe('noma status', () => {
  it('shows one maintenance in progress, node by node', async () => {
    const run = await runNoma(['status', name, '-n', ns.name, '--kubeconfig', kubeconfig()]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expectProgress(run.stdout);
  });

  it('lists the maintenances of a namespace, and of all namespaces with -A', async () => {
    const inNs = await runNoma(['status', '-n', ns.name, '--kubeconfig', kubeconfig()]);
    expect(inNs.code).toBe(0);
    expectProgress(inNs.stdout);
    const all = await runNoma(['status', '-A', '--kubeconfig', kubeconfig()]);
    expect(all.code).toBe(0);
    expect(all.stdout).toContain(`${ns.name}/${name}`);
  });

  it('fails with the API error for a maintenance that does not exist', async () => {
    const run = await runNoma(['status', 'nope', '-n', ns.name, '--kubeconfig', kubeconfig()]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/error: reading NodeMaintenance nope: HTTP 404/);
  });

  it('refuses -A together with -n', async () => {
    const run = await runNoma(['status', '-A', '-n', 'x', '--kubeconfig', kubeconfig()]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--all-namespaces');
  });

  it('--watch shows the view and stops on interrupt', async () => {
    const interrupted = new Promise<void>((resolve) => setTimeout(resolve, 1500));
    const run = await runNoma(
      [
        'status',
        name,
        '-n',
        ns.name,
        '--kubeconfig',
        kubeconfig(),
        '--watch',
        '--interval',
        '200ms',
      ],
      { interrupted },
    );
    expect(run.code).toBe(0);
    // Piped output prints a state once, not once per refresh.
    expect(run.stdout.match(/^--- /gm)).toHaveLength(1);
    expectProgress(run.stdout);
  });

  it('--watch on a terminal redraws the screen', async () => {
    const interrupted = new Promise<void>((resolve) => setTimeout(resolve, 700));
    const run = await runNoma(
      ['status', name, '-n', ns.name, '--kubeconfig', kubeconfig(), '-w', '--interval', '200ms'],
      { interrupted, isTTY: true },
    );
    expect(run.stdout.split('\x1b[H\x1b[2J').length - 1).toBeGreaterThanOrEqual(2);
  });
});
