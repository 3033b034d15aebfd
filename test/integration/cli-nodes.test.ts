// `noma nodes` on the real API server, with a kubeconfig of several contexts: it finds which
// context a node is in, shows what the node's labels and spec say, and survives a context whose
// cluster is down.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { multiContextKubeconfig, runNoma } from '../support/cli.js';
import { createSimNode, deleteSimNode, uniqueName } from '../support/kube.js';

const prefix = uniqueName('cli-nodes');
const h100 = `${prefix}-gpu-07`;
const l4 = `${prefix}-gpu-08`;
let kubeconfig: string;

beforeAll(async () => {
  kubeconfig = await multiContextKubeconfig(inject('kubeconfig'), ['east', 'north'], ['west']);
  await Promise.all([
    createSimNode(h100, {
      capacity: { 'nvidia.com/gpu': '8' },
      labels: { 'hardware.tier': 'high-performance', 'gpu.h100': 'true', 'gpu.count': '8' },
    }),
    createSimNode(l4, {
      capacity: { 'nvidia.com/gpu': '2' },
      labels: { 'hardware.tier': 'dual-gpu', 'gpu.l4': 'true' },
      unschedulable: true,
      taints: [{ key: 'noma.dev/maintenance', effect: 'NoSchedule' }],
    }),
  ]);
});

afterAll(async () => {
  await Promise.all([deleteSimNode(h100), deleteSimNode(l4)]);
});

describe('noma nodes', () => {
  it('--all-contexts says which context a node is in, and warns about a context that is down', async () => {
    const run = await runNoma([
      'nodes',
      '--all-contexts',
      '--kubeconfig',
      kubeconfig,
      `${prefix}-gpu-07`,
    ]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      /^CONTEXT +NAME +STATUS +TIER +GPU +GPUS +SCHEDULABLE +MAINTENANCE +AGENT$/m,
    );
    expect(run.stdout).toMatch(
      new RegExp(`^east +${h100} +Ready +high-performance +h100 +8 +yes +no +unknown$`, 'm'),
    );
    expect(run.stdout).toMatch(new RegExp(`^north +${h100} `, 'm'));
    expect(run.stdout).not.toContain(l4);
    expect(run.stderr).toMatch(/^warning: context west: /m);
  });

  it('matches a glob in the chosen contexts and prints JSON', async () => {
    const run = await runNoma([
      'nodes',
      '--context',
      'north',
      '--kubeconfig',
      kubeconfig,
      `${prefix}-*`,
      '-o',
      'json',
    ]);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual([
      {
        context: 'north',
        name: h100,
        ready: true,
        schedulable: true,
        inMaintenance: false,
        maintenance: null,
        controlPlane: false,
        tier: 'high-performance',
        gpuSku: 'h100',
        gpus: 8,
        agent: 'unknown',
      },
      {
        context: 'north',
        name: l4,
        ready: true,
        schedulable: false,
        inMaintenance: true,
        maintenance: null,
        controlPlane: false,
        tier: 'dual-gpu',
        gpuSku: 'l4',
        gpus: 2,
        agent: 'unknown',
      },
    ]);
  });

  it('exits 1 when no context has the node', async () => {
    const run = await runNoma(['nodes', '-A', '--kubeconfig', kubeconfig, `${prefix}-nope`]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`no node matches ${prefix}-nope`);
  });

  it('exits 1 when the only context asked is down', async () => {
    const run = await runNoma(['nodes', '--context', 'west', '--kubeconfig', kubeconfig]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^warning: context west: /m);
  });

  it('names --context when it is not in the kubeconfig', async () => {
    const run = await runNoma(['nodes', '--context', 'south', '--kubeconfig', kubeconfig]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--context: no context "south"');
  });
});
