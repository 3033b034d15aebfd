// `cluster:up` / `cluster:down` semantics, on a second control plane in a temporary directory
// (the suite's own control plane keeps running for the other test files).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { apiGet, down, isUp, supervisorPid, up } from '../cluster/cluster.js';

const dir = mkdtempSync(join(tmpdir(), 'noma-cluster-'));
afterAll(async () => {
  await down(dir);
  rmSync(dir, { recursive: true, force: true });
});

/** PIDs of every process started from `dir` (the supervisor and its components). */
function processesOf(clusterDir: string): number[] {
  const out = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter((line) => line.includes('testcluster') && line.includes(clusterDir))
    .map((line) => Number(line.trim().split(/\s+/)[0]));
}

describe('cluster up/down', () => {
  it('starts, is reused by a second up, and stops without leaving a process', async () => {
    const first = await up(dir);
    expect(first.started).toBe(true);
    expect(await apiGet('/readyz', {}, first.kubeconfig)).toMatchObject({ body: 'ok' });
    const pid = supervisorPid(dir);
    // supervisor + apiserver + controller-manager + scheduler + kwok
    expect(processesOf(dir)).toHaveLength(5);

    const second = await up(dir);
    expect(second.started).toBe(false);
    expect(supervisorPid(dir)).toBe(pid);

    expect(await down(dir)).toBe(true);
    expect(processesOf(dir)).toEqual([]);
    expect(await isUp(dir)).toBe(false);
  });
});
