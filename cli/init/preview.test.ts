// The node part of `noma init --preview`: which nodes match, and the warnings about them.
import type { V1Node } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { nodeFacts } from '../kube/node-facts.js';
import { renderPreview } from './preview.js';

function node(name: string, labels: Record<string, string> = {}): V1Node {
  return {
    metadata: { name, labels },
    status: {
      capacity: { 'nvidia.com/gpu': '8' },
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  };
}

const cp = nodeFacts(node('cp-1', { 'node-role.kubernetes.io/control-plane': '' }));
const gpu = nodeFacts(node('gpu-01'));

describe('renderPreview', () => {
  it('lists the matched nodes and names the ones --nodes asked for that do not exist', () => {
    expect(renderPreview('kubernetes.io/hostname in (gpu-01,gpu-09)', [gpu], ['gpu-01', 'gpu-09']))
      .toBe(`selector "kubernetes.io/hostname in (gpu-01,gpu-09)" matches 1 node(s) now:
NAME     TIER   GPU   GPUS   GPU PODS   READY   SCHEDULABLE   AGENT
gpu-01   -      -     8      0          yes     yes           unknown
warning: node gpu-09 does not exist in this cluster
`);
  });

  it('warns about a control-plane node unless --allow-control-plane is given', () => {
    expect(renderPreview('x', [cp, gpu])).toContain(
      'warning: node cp-1 is a control-plane node: the coordinator refuses it unless --allow-control-plane',
    );
    const allowed = renderPreview('x', [cp, gpu], [], { allowControlPlane: true });
    expect(allowed).toContain(
      'warning: node cp-1 is a control-plane node (allowed by --allow-control-plane)',
    );
    expect(allowed).not.toContain('refuses');
  });

  it('says when nothing matches', () => {
    expect(renderPreview('x', [])).toContain('warning: no node matches');
  });
});
