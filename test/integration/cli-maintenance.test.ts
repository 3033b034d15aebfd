// `noma pause/resume/restore/retry` on the real API server. No coordinator: the CLI's part is
// to check the request against the status (written here as the coordinator would) and write
// spec.paused or the restore/retry annotation; where --wait needs the coordinator to act, the
// test does what the coordinator would (take the entry, set the phase).
import {
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import {
  GROUP,
  PLURAL,
  VERSION,
  type NodeMaintenance,
  type NodeMaintenanceStatus,
} from '../../shared/api/index.js';
import { RESTORE_ANNOTATION, RETRY_ANNOTATION } from '../../shared/maintenance-keys.js';
import { runNoma } from '../support/cli.js';
import { installCRD } from '../support/crd.js';
import { adminKubeConfig, createNamespace, uniqueName, waitFor } from '../support/kube.js';
import { maintenances, type Maintenances } from '../support/maintenance.js';

let kc: KubeConfig;
let ns: Awaited<ReturnType<typeof createNamespace>>;
let nm: Maintenances;
const kubeconfig = () => inject('kubeconfig');
const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

const halted: NodeMaintenanceStatus = {
  phase: 'Halted',
  observedNodes: ['sim-failed-a', 'sim-failed-b', 'sim-done', 'sim-waiting'],
  nodes: [
    { name: 'sim-failed-a', phase: 'Failed', initialState: { unschedulable: false } },
    { name: 'sim-failed-b', phase: 'Failed', initialState: { unschedulable: false } },
    { name: 'sim-done', phase: 'Succeeded', initialState: { unschedulable: false } },
    { name: 'sim-waiting', phase: 'Pending' },
  ],
};

beforeAll(async () => {
  kc = adminKubeConfig();
  await installCRD(kc);
  ns = await createNamespace('cli-maint');
  nm = maintenances(kc, ns.name);
});

afterAll(async () => {
  await ns.remove();
});

function patch(name: string, body: object, status = false): Promise<unknown> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const req = { group: GROUP, version: VERSION, plural: PLURAL, namespace: ns.name, name, body };
  return status
    ? custom.patchNamespacedCustomObjectStatus(req, MERGE)
    : custom.patchNamespacedCustomObject(req, MERGE);
}

/** A maintenance that has selected its nodes, with `status` written as the coordinator would. */
async function started(status: NodeMaintenanceStatus = halted): Promise<string> {
  const name = uniqueName('fix');
  await nm.create(name, {
    nodeSelector: 'noma.dev/test-pool=cli-maintenance',
    options: { maxUnavailable: 1 },
    actions: [{ type: 'Run', run: { command: ['false'] } }],
  });
  await patch(name, { status }, true);
  return name;
}

const noma = (...args: string[]) => runNoma([...args, '-n', ns.name, '--kubeconfig', kubeconfig()]);

async function get(name: string): Promise<NodeMaintenance> {
  const m = await nm.get(name);
  if (m === undefined) throw new Error(`${name} is gone`);
  return m;
}

const annotation = async (name: string, key: string) =>
  (await get(name)).metadata.annotations?.[key];

describe('noma pause / resume', () => {
  it('set and clear spec.paused of a started maintenance (its spec otherwise frozen)', async () => {
    const name = await started({ ...halted, phase: 'Running' });
    const paused = await noma('pause', name);
    expect(paused.stderr).toBe('');
    expect(paused.code).toBe(0);
    expect(paused.stdout).toContain(`paused ${ns.name}/${name} (spec.paused: true; phase Running)`);
    expect((await get(name)).spec.paused).toBe(true);

    const again = await noma('pause', name);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`${ns.name}/${name} is already paused (phase Running)\n`);

    const resumed = await noma('resume', name);
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toContain(`resumed ${ns.name}/${name} (spec.paused: false`);
    expect((await get(name)).spec.paused).toBe(false);
  });

  it('pause --wait returns once the phase is Paused', async () => {
    const name = await started({ ...halted, phase: 'Running' });
    const run = noma('pause', name, '--wait', '--timeout', '30s');
    // What the coordinator does: see spec.paused, stop between steps, say so in the phase.
    await waitFor('spec.paused', async () => (await get(name)).spec.paused === true);
    await patch(name, { status: { phase: 'Paused' } }, true);
    const done = await run;
    expect(done.stderr).toBe('');
    expect(done.code).toBe(0);
    expect(done.stdout).toContain(`${ns.name}/${name}: phase Paused`);
  });

  it('fails on a maintenance that does not exist', async () => {
    const run = await noma('pause', 'nope');
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`error: NodeMaintenance ${ns.name}/nope not found\n`);
  });
});

describe('noma restore', () => {
  it('--node of a Failed node writes the annotation', async () => {
    const name = await started();
    const run = await noma('restore', name, '--node', 'sim-failed-a');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(
      `queued restore of sim-failed-a on ${ns.name}/${name} (noma.dev/restore=sim-failed-a; phase Halted)`,
    );
    expect(await annotation(name, RESTORE_ANNOTATION)).toBe('sim-failed-a');
  });

  it('refuses a Succeeded node, naming it and its phase, and writes nothing', async () => {
    const name = await started();
    const before = (await get(name)).metadata.resourceVersion;
    const run = await noma('restore', name, '--node', 'sim-failed-a', '--node', 'sim-done');
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      'error: sim-done is Succeeded: only a Failed node, or one that has not started, can be restored',
    );
    expect(run.stdout).toBe('');
    const after = await get(name);
    expect(after.metadata.annotations?.[RESTORE_ANNOTATION]).toBeUndefined();
    expect(after.metadata.resourceVersion).toBe(before);
  });

  it('--all-failed writes *, and a not-started node joins it', async () => {
    const name = await started();
    const all = await noma('restore', name, '--all-failed');
    expect(all.code).toBe(0);
    expect(await annotation(name, RESTORE_ANNOTATION)).toBe('*');
    const waiting = await noma('restore', name, '--node', 'sim-waiting');
    expect(waiting.code).toBe(0);
    expect(await annotation(name, RESTORE_ANNOTATION)).toBe('*,sim-waiting');
  });

  it('two restores at once both land (resourceVersion-guarded read-modify-write)', async () => {
    const name = await started();
    const runs = await Promise.all([
      noma('restore', name, '--node', 'sim-failed-a'),
      noma('restore', name, '--node', 'sim-failed-b'),
      noma('restore', name, '--node', 'sim-waiting'),
    ]);
    expect(runs.map((r) => r.code)).toEqual([0, 0, 0]);
    const entries = (await annotation(name, RESTORE_ANNOTATION))?.split(',').sort();
    expect(entries).toEqual(['sim-failed-a', 'sim-failed-b', 'sim-waiting']);
  });

  it('--wait returns once the coordinator took the entry, and times out when none does', async () => {
    const name = await started();
    const run = noma('restore', name, '--node', 'sim-failed-a', '--wait', '--timeout', '30s');
    await waitFor(
      'the restore entry',
      async () => (await annotation(name, RESTORE_ANNOTATION)) !== undefined,
    );
    // What the coordinator does: restore the node, then take it from the annotation.
    const nodes = halted.nodes?.map((n) =>
      n.name === 'sim-failed-a' ? { name: n.name, phase: 'Restored' } : n,
    );
    await patch(name, { status: { nodes } }, true);
    await patch(name, { metadata: { annotations: { [RESTORE_ANNOTATION]: null } } });
    const done = await run;
    expect(done.stderr).toBe('');
    expect(done.code).toBe(0);
    expect(done.stdout).toContain(`${ns.name}/${name}: sim-failed-a Restored, phase Halted`);

    const stuck = await noma(
      'restore',
      name,
      '--node',
      'sim-failed-b',
      '--wait',
      '--timeout',
      '1s',
    );
    expect(stuck.code).toBe(1);
    expect(stuck.stderr).toContain(
      'error: timed out after 1s waiting for the coordinator to take sim-failed-b from noma.dev/restore',
    );
  });
});

describe('noma retry', () => {
  it('merges with an entry already there', async () => {
    const name = await started();
    await patch(name, { metadata: { annotations: { [RETRY_ANNOTATION]: 'sim-failed-b' } } });
    const run = await noma('retry', name, '--node', 'sim-failed-a');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(await annotation(name, RETRY_ANNOTATION)).toBe('sim-failed-b,sim-failed-a');
  });

  it('refuses a node that is not Failed, or one queued for restore', async () => {
    const name = await started();
    await patch(name, { metadata: { annotations: { [RESTORE_ANNOTATION]: 'sim-failed-b' } } });
    const run = await noma('retry', name, '--node', 'sim-waiting,sim-failed-b');
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      [
        'error: sim-waiting is Pending: only a Failed node can be retried',
        'error: sim-failed-b is already queued for restore (noma.dev/restore); remove it there first to retry it instead',
        `error: nothing written to ${ns.name}/${name}`,
        '',
      ].join('\n'),
    );
    expect(await annotation(name, RETRY_ANNOTATION)).toBeUndefined();
  });
});
