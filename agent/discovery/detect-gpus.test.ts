import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FAKE_FIXTURE_ENV, FAKE_NVIDIA_SMI, fixturePath } from '../../test/support/nvidia-smi.js';
import { detectGpus } from './detect-gpus.js';

// These run the real fake-nvidia-smi script as a child process: exit codes, timeouts and
// missing binaries are what the operating system reports, not mocks.

function withFixture(name: string): void {
  vi.stubEnv(FAKE_FIXTURE_ENV, fixturePath(name));
}

describe('detectGpus', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('returns the GPUs of a healthy driver', async () => {
    withFixture('h100-sxm-x8.csv');
    const result = await detectGpus({ path: FAKE_NVIDIA_SMI, timeoutMs: 5_000 });
    expect(result.kind).toBe('gpus');
    if (result.kind === 'gpus') expect(result.gpus).toHaveLength(8);
  });

  it('treats a missing binary as a node without NVIDIA driver', async () => {
    const result = await detectGpus({ path: '/nonexistent/nvidia-smi', timeoutMs: 5_000 });
    expect(result).toEqual({ kind: 'absent', detail: '/nonexistent/nvidia-smi not found' });
  });

  it('treats a binary missing from PATH the same way', async () => {
    const result = await detectGpus({ path: 'nvidia-smi-not-on-path', timeoutMs: 5_000 });
    expect(result.kind).toBe('absent');
  });

  it.each([
    { fixture: 'driver-mismatch.txt', error: /exited with status 18: Failed to initialize NVML/ },
    { fixture: 'no-devices.txt', error: /exited with status 6: No devices were found/ },
    { fixture: 'empty.txt', error: /output not understood: no output/ },
    { fixture: 'truncated.csv', error: /output not understood: line 2/ },
  ])('reports $fixture as an error, not as "no GPUs"', async ({ fixture, error }) => {
    withFixture(fixture);
    const result = await detectGpus({ path: FAKE_NVIDIA_SMI, timeoutMs: 5_000 });
    expect(result.kind).toBe('error');
    if (result.kind === 'error') expect(result.error).toMatch(error);
  });

  it('reads a device error (exit 15) as the GPUs that answer plus the lost device', async () => {
    withFixture('h100-sxm-x8-device-error.txt');
    const result = await detectGpus({ path: FAKE_NVIDIA_SMI, timeoutMs: 5_000 });
    expect(result.kind).toBe('gpus');
    if (result.kind !== 'gpus') return;
    expect(result.gpus).toHaveLength(7);
    expect(result.deviceErrors).toEqual([{ pciBusId: '0000:5D:00.0', error: 'Unknown Error' }]);
  });

  it('reads one GPU gone from an 8-GPU node as seven GPUs and no error', async () => {
    withFixture('h100-sxm-x8-one-gone.csv');
    const result = await detectGpus({ path: FAKE_NVIDIA_SMI, timeoutMs: 5_000 });
    expect(result.kind === 'gpus' && [result.gpus.length, result.deviceErrors]).toEqual([7, []]);
  });

  it('kills a hanging nvidia-smi after the timeout and reports it', async () => {
    withFixture('hang.txt');
    const started = Date.now();
    const result = await detectGpus({ path: FAKE_NVIDIA_SMI, timeoutMs: 300 });
    expect(result).toEqual({ kind: 'error', error: 'nvidia-smi timed out after 300 ms' });
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('asks an old driver again without the MIG column', async () => {
    withFixture('old-driver-no-mig.csv');
    const result = await detectGpus({ path: FAKE_NVIDIA_SMI, timeoutMs: 5_000 });
    expect(result.kind === 'gpus' && result.gpus[0]?.name).toBe('Tesla V100-SXM2-16GB');
  });

  describe('a binary that cannot be executed', () => {
    let dir = '';
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'noma-smi-'));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('is an error (it exists, so a driver is installed)', async () => {
      const path = join(dir, 'nvidia-smi');
      await writeFile(path, '#!/bin/sh\necho hi\n');
      await chmod(path, 0o600);
      const result = await detectGpus({ path, timeoutMs: 5_000 });
      expect(result.kind).toBe('error');
      if (result.kind === 'error') expect(result.error).toMatch(/EACCES/);
    });
  });
});
