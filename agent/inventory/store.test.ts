import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fixtureOutput } from '../../test/support/nvidia-smi.js';
import { parseGpuCsv } from '../discovery/nvidia-smi.js';
import { readInventory, writeInventory } from './store.js';

describe('remembered inventory in the state dir', () => {
  let dir = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'noma-inventory-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips the baseline and the announced loss', async () => {
    const parsed = parseGpuCsv(fixtureOutput('h100-sxm-x8.csv'));
    if (!parsed.ok) throw new Error(parsed.error);
    await writeInventory(dir, 'gpu-01', { gpus: parsed.gpus, announced: '8>7:GPU-x' });
    expect(await readInventory(dir, 'gpu-01')).toEqual({
      gpus: parsed.gpus,
      announced: '8>7:GPU-x',
    });
  });

  it('remembers nothing for another node, a missing or a corrupt file', async () => {
    const none = { gpus: undefined, announced: '' };
    expect(await readInventory(dir, 'gpu-01')).toEqual(none);
    await writeInventory(dir, 'gpu-02', { gpus: [], announced: '' });
    expect(await readInventory(dir, 'gpu-01')).toEqual(none);
    await writeFile(join(dir, 'inventory.json'), '{"node":"gpu-01","gpus":[{"index":"x"}]');
    expect(await readInventory(dir, 'gpu-01')).toEqual(none);
  });

  it('keeps "no baseline yet" apart from "no GPUs"', async () => {
    await writeInventory(dir, 'gpu-01', { gpus: undefined, announced: '7>7:0000:5D:00.0' });
    expect(await readInventory(dir, 'gpu-01')).toEqual({
      gpus: undefined,
      announced: '7>7:0000:5D:00.0',
    });
  });
});
