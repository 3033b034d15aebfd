import type { V1Node } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { runNoma } from '../../test/support/cli.js';
import { UsageError } from '../errors.js';
import { acceptCount, detailOf } from './accept-inventory.js';

function node(labels: Record<string, string>, annotations: Record<string, string> = {}): V1Node {
  return { metadata: { name: 'gpu-07', labels, annotations } };
}

const DETAIL = { 'noma.dev/gpu.health-detail': '{"expected":8,"answering":7,"lost":[]}' };

describe('accept-inventory: the count to write', () => {
  it.each([
    {
      what: 'degraded: what the agent reports as answering',
      node: node({ 'noma.dev/gpu.health': 'degraded' }, DETAIL),
      asked: undefined,
      want: { count: 7 },
    },
    {
      what: '--count wins',
      node: node({ 'noma.dev/gpu.health': 'degraded' }, DETAIL),
      asked: '6',
      want: { count: 6 },
    },
    {
      what: 'healthy: nothing to accept',
      node: node({ 'noma.dev/gpu.health': 'healthy', 'noma.dev/gpu.count': '8' }),
      asked: undefined,
      want: { nothing: expect.stringMatching(/healthy \(noma.dev\/gpu.count=8\)/) as unknown },
    },
    {
      what: 'degraded without a readable detail: asks for --count',
      node: node({ 'noma.dev/gpu.health': 'degraded' }, { 'noma.dev/gpu.health-detail': '{' }),
      asked: undefined,
      want: { nothing: expect.stringMatching(/give --count/) as unknown },
    },
    {
      what: 'no agent health at all',
      node: node({}),
      asked: undefined,
      want: { nothing: expect.stringMatching(/not reported/) as unknown },
    },
  ])('$what', ({ node: n, asked, want }) => {
    expect(acceptCount(n, asked)).toEqual(want);
  });

  it('refuses a --count that is not a number', () => {
    expect(() => acceptCount(node({}), 'seven')).toThrow(UsageError);
  });

  it('reads the detail annotation defensively', () => {
    expect(detailOf(node({}, DETAIL))).toEqual({ expected: 8, answering: 7 });
    expect(detailOf(node({}, { 'noma.dev/gpu.health-detail': '"x"' }))).toEqual({});
    expect(detailOf(node({}))).toEqual({});
  });

  it('is a subcommand of nodes, with examples and the kubectl equivalent', async () => {
    const { code, stdout } = await runNoma(['nodes', 'accept-inventory', '--help']);
    expect(code).toBe(0);
    expect(stdout).toContain('noma nodes accept-inventory gpu-07 --wait');
    expect(stdout).toContain('kubectl annotate node gpu-07 noma.dev/accept-inventory=7');
    expect((await runNoma(['nodes', '--help'])).stdout).toMatch(/accept-inventory/);
  });
});
