// `noma status` on the real API server: a NodeMaintenance whose status says it is in progress
// (as the coordinator would write it) is shown node by node, alone, by namespace and with -A,
// and as JSON/YAML; --watch follows a watch: a status change shows at once (the redraw interval
// is an hour), a deletion is said and ends it, a server that does not answer is retried until
// the user interrupts.
import {
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { parse } from 'yaml';
import {
  GROUP,
  PLURAL,
  VERSION,
  type NodeMaintenance,
  type NodeMaintenanceStatus,
} from '../../shared/api/index.js';
import { runCli } from '../../cli/program.js';
import { multiContextKubeconfig, runNoma } from '../support/cli.js';
import { installCRD } from '../support/crd.js';
import { adminKubeConfig, createNamespace, uniqueName, waitFor } from '../support/kube.js';

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

const ref = () => ({ group: GROUP, version: VERSION, plural: PLURAL, namespace: ns.name });
const custom = () => kc.makeApiClient(CustomObjectsApi);
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** A NodeMaintenance like the coordinator would have it: spec, then status. */
async function createMaintenance(objName: string): Promise<void> {
  await custom().createNamespacedCustomObject({
    ...ref(),
    body: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'NodeMaintenance',
      metadata: { name: objName },
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
  await custom().patchNamespacedCustomObjectStatus(
    { ...ref(), name: objName, body: { status } },
    merge,
  );
}

beforeAll(async () => {
  kc = adminKubeConfig();
  await installCRD(kc);
  ns = await createNamespace('cli-status');
  await createMaintenance(name);
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

/** waitFor on a condition that needs no request. */
const until = (what: string, cond: () => boolean, timeoutMs?: number, intervalMs?: number) =>
  waitFor(what, () => Promise.resolve(cond()), timeoutMs, intervalMs);

/** The CLI running in-process, its output read while it runs; `interrupt` is Ctrl-C. */
function startNoma(args: readonly string[], isTTY = false) {
  let stdout = '';
  let stderr = '';
  let interrupt = (): void => undefined;
  const interrupted = new Promise<void>((resolve) => (interrupt = resolve));
  const done = runCli(args, {
    out: (t) => (stdout += t),
    err: (t) => (stderr += t),
    cwd: process.cwd(),
    isTTY,
    interrupted,
  });
  return { stdout: () => stdout, stderr: () => stderr, interrupt, done };
}

describe('noma status -o json|yaml', () => {
  it('prints a named maintenance as the object, without managedFields', async () => {
    const run = await runNoma([
      'status',
      name,
      '-n',
      ns.name,
      '--kubeconfig',
      kubeconfig(),
      '-o',
      'json',
    ]);
    expect(run.code).toBe(0);
    const obj = JSON.parse(run.stdout) as NodeMaintenance;
    expect(obj).toMatchObject({ kind: 'NodeMaintenance', metadata: { name, namespace: ns.name } });
    expect(obj.status).toEqual(status);
    expect(obj.metadata).not.toHaveProperty('managedFields');
  });

  it('prints the maintenances of a namespace as a List', async () => {
    const run = await runNoma([
      'status',
      '-n',
      ns.name,
      '--kubeconfig',
      kubeconfig(),
      '-o',
      'yaml',
    ]);
    expect(run.code).toBe(0);
    const list = parse(run.stdout) as { kind: string; items: NodeMaintenance[] };
    expect(list.kind).toBe('List');
    expect(list.items.map((m) => m.metadata.name)).toContain(name);
  });
});

describe('noma status --watch follows a watch', () => {
  it('shows a change at once, says when the maintenance is deleted, and ends', async () => {
    const watched = uniqueName('watched');
    await createMaintenance(watched);
    // An hour between redraws: only the watch can show the change within the test.
    const run = startNoma([
      'status',
      watched,
      '-n',
      ns.name,
      '--kubeconfig',
      kubeconfig(),
      '-w',
      '--interval',
      '1h',
    ]);
    await until('the first view', () => run.stdout().includes('nodes 1/3'));
    const changedAt = Date.now();
    await custom().patchNamespacedCustomObjectStatus(
      { ...ref(), name: watched, body: { status: { progress: '2/3' } } },
      merge,
    );
    await until('the change', () => run.stdout().includes('nodes 2/3'), 10_000, 10);
    const shownAfterMs = Date.now() - changedAt;
    expect(shownAfterMs).toBeLessThan(2_000);
    await custom().deleteNamespacedCustomObject({ ...ref(), name: watched });
    // Deleted: it says so and returns without an interrupt.
    expect(await run.done).toBe(0);
    expect(run.stdout()).toContain(`${ns.name}/${watched} was deleted\n`);
    expect(run.stdout().match(/^--- /gm)?.length).toBeGreaterThanOrEqual(2);
    expect(run.stderr()).toBe('');
  });

  it('-o json prints one watch event per line', async () => {
    const watched = uniqueName('events');
    await createMaintenance(watched);
    const run = startNoma([
      'status',
      '-n',
      ns.name,
      '--kubeconfig',
      kubeconfig(),
      '-w',
      '-o',
      'json',
    ]);
    const events = () =>
      run
        .stdout()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { type: string; object: NodeMaintenance })
        .filter((e) => e.object.metadata.name === watched);
    await until('ADDED', () => events().length === 1);
    await custom().patchNamespacedCustomObject(
      { ...ref(), name: watched, body: { spec: { paused: true } } },
      merge,
    );
    await until('MODIFIED', () => events().length === 2);
    await custom().deleteNamespacedCustomObject({ ...ref(), name: watched });
    await until('DELETED', () => events().length === 3);
    run.interrupt();
    expect(await run.done).toBe(0);
    expect(events().map((e) => e.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
    expect(events()[1]?.object.spec.paused).toBe(true);
    expect(run.stderr()).toBe('');
  });

  it('keeps trying a server that does not answer, and stops on interrupt', async () => {
    const config = await multiContextKubeconfig(kubeconfig(), [], ['nowhere-ctx']);
    const run = startNoma([
      'status',
      '-A',
      '--kubeconfig',
      config,
      '--context',
      'nowhere-ctx',
      '-w',
    ]);
    await until(
      'two tries',
      () =>
        (run.stderr().match(/error: watching: .*ECONNREFUSED.*\(trying again in [\d.]+s\)/g)
          ?.length ?? 0) >= 2,
    );
    run.interrupt();
    expect(await run.done).toBe(0);
  });

  it('a named maintenance that does not exist is an error, as without --watch', async () => {
    const run = await runNoma([
      'status',
      'nope',
      '-n',
      ns.name,
      '--kubeconfig',
      kubeconfig(),
      '-w',
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/error: reading NodeMaintenance nope: HTTP 404/);
  });
});
