import { describe, expect, it } from 'vitest';
import { fixtureOutput } from '../../test/support/nvidia-smi.js';
import { BASE_FIELDS, parseGpuCsv, queryArgs, FULL_QUERY } from './nvidia-smi.js';

describe('queryArgs', () => {
  it('asks for CSV without header or units, MIG mode last', () => {
    expect(queryArgs(FULL_QUERY)).toEqual([
      '--query-gpu=index,name,uuid,memory.total,driver_version,pci.bus_id,mig.mode.current',
      '--format=csv,noheader,nounits',
    ]);
  });
});

describe('parseGpuCsv on captured outputs', () => {
  it.each([
    {
      fixture: 'h100-sxm-x8.csv',
      count: 8,
      name: 'NVIDIA H100 80GB HBM3',
      memoryMiB: 81559,
      driver: '550.90.07',
      mig: ['disabled'],
    },
    {
      fixture: 'a100-sxm4-40gb-x4.csv',
      count: 4,
      name: 'NVIDIA A100-SXM4-40GB',
      memoryMiB: 40960,
      driver: '535.183.01',
      mig: ['disabled'],
    },
    {
      fixture: 'rtx5070-rtx3050.csv',
      count: 2,
      name: 'NVIDIA GeForce RTX 5070',
      memoryMiB: 12227,
      driver: '570.133.07',
      mig: ['unsupported'],
    },
    {
      fixture: 'l4.csv',
      count: 1,
      name: 'NVIDIA L4',
      memoryMiB: 23034,
      driver: '550.54.15',
      mig: ['unsupported'],
    },
    {
      fixture: 'h100-pcie-mig.csv',
      count: 2,
      name: 'NVIDIA H100 PCIe',
      memoryMiB: 81559,
      driver: '550.90.07',
      mig: ['enabled', 'disabled'],
    },
  ])('$fixture: $count GPUs', ({ fixture, count, name, memoryMiB, driver, mig }) => {
    const result = parseGpuCsv(fixtureOutput(fixture));
    expect(result.ok ? '' : result.error).toBe('');
    if (!result.ok) return;
    expect(result.gpus).toHaveLength(count);
    expect(result.gpus.map((g) => g.index)).toEqual([...Array(count).keys()]);
    const [first] = result.gpus;
    expect(first).toMatchObject({ name, memoryMiB, driverVersion: driver });
    expect(first?.uuid).toMatch(/^GPU-/);
    expect(first?.pciBusId).toMatch(/^00000000:[0-9A-F]{2}:[0-9A-F]{2}\.0$/);
    expect([...new Set(result.gpus.map((g) => g.migMode))]).toEqual(mig);
  });

  it('reads the mixed node of the seed (yeezyai) GPU by GPU', () => {
    const result = parseGpuCsv(fixtureOutput('rtx5070-rtx3050.csv'));
    expect(result.ok && result.gpus.map((g) => [g.index, g.name, g.memoryMiB])).toEqual([
      [0, 'NVIDIA GeForce RTX 5070', 12227],
      [1, 'NVIDIA GeForce RTX 3050', 8192],
    ]);
  });

  it('reads output of an old driver queried without the MIG column', () => {
    const result = parseGpuCsv(fixtureOutput('old-driver-no-mig.csv'), BASE_FIELDS);
    expect(result.ok && result.gpus[0]).toMatchObject({
      name: 'Tesla V100-SXM2-16GB',
      migMode: 'unsupported',
    });
  });

  it('sorts by index and tolerates CRLF line ends', () => {
    const lines = fixtureOutput('a100-sxm4-40gb-x4.csv').trim().split('\n').reverse();
    const result = parseGpuCsv(lines.join('\r\n'));
    expect(result.ok && result.gpus.map((g) => g.index)).toEqual([0, 1, 2, 3]);
  });
});

describe('parseGpuCsv refuses what it does not understand', () => {
  it.each([
    {
      what: 'driver/library mismatch',
      fixture: 'driver-mismatch.txt',
      error: /Failed to initialize NVML/,
    },
    { what: 'empty output', fixture: 'empty.txt', error: /no output/ },
    {
      what: 'a truncated line',
      fixture: 'truncated.csv',
      error: /line 2: expected 7 fields.*got 4/,
    },
    { what: '"No devices were found"', fixture: 'no-devices.txt', error: /No devices were found/ },
    { what: 'a GPU without readable memory', fixture: 'garbled.txt', error: /line 1: memoryMiB/ },
  ])('$what', ({ fixture, error }) => {
    const result = parseGpuCsv(fixtureOutput(fixture));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(error);
  });

  it('a single bad line fails the whole parse (no partial inventory)', () => {
    const good = fixtureOutput('h100-sxm-x8.csv').trim().split('\n');
    good.splice(
      3,
      1,
      '3, NVIDIA H100 80GB HBM3, GPU-x, 81559, 550.90.07, 00000000:5D:00.0, Disabled',
    );
    const result = parseGpuCsv(good.join('\n'));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(/^line 4: uuid/);
  });

  it('rejects a duplicated GPU index', () => {
    const line = fixtureOutput('l4.csv').trim();
    const result = parseGpuCsv(`${line}\n${line}`);
    expect(result).toEqual({ ok: false, error: 'GPU index 0 appears twice' });
  });

  it('rejects an unknown MIG mode', () => {
    const line = fixtureOutput('l4.csv').trim().replace('[N/A]', 'Pending');
    const result = parseGpuCsv(line);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(/migMode/);
  });
});

describe('parseGpuCsv on a node with a lost GPU', () => {
  it('one GPU gone from an 8-GPU node: seven complete records, renumbered', () => {
    const result = parseGpuCsv(fixtureOutput('h100-sxm-x8-one-gone.csv'));
    expect(result.ok && result.gpus.map((g) => g.pciBusId)).not.toContain('00000000:5D:00.0');
    expect(result.ok && result.gpus.map((g) => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(result.ok && result.deviceErrors).toEqual([]);
  });

  it('a device that answers with an error: the others, and the error apart', () => {
    const result = parseGpuCsv(fixtureOutput('h100-sxm-x8-device-error.txt'));
    expect(result.ok ? '' : result.error).toBe('');
    if (!result.ok) return;
    expect(result.gpus.map((g) => g.index)).toEqual([0, 1, 2, 4, 5, 6, 7]);
    expect(result.deviceErrors).toEqual([{ pciBusId: '0000:5D:00.0', error: 'Unknown Error' }]);
  });

  it('reads error cells ([GPU is lost]) as a broken device, not as a bad line', () => {
    const lines = fixtureOutput('a100-sxm4-40gb-x4.csv').trim().split('\n');
    lines[2] =
      '2, [GPU is lost], [GPU is lost], [GPU is lost], 535.183.01, 00000000:47:00.0, [GPU is lost]';
    const result = parseGpuCsv(lines.join('\n'));
    expect(result.ok && result.gpus).toHaveLength(3);
    expect(result.ok && result.deviceErrors).toEqual([
      { index: 2, pciBusId: '00000000:47:00.0', error: 'GPU is lost' },
    ]);
  });

  it('a lone error line is a node whose only GPU is lost, not garbage', () => {
    const result = parseGpuCsv(
      'Unable to determine the device handle for GPU 0000:00:03.0: GPU is lost\n',
    );
    expect(result).toEqual({
      ok: true,
      gpus: [],
      deviceErrors: [{ pciBusId: '0000:00:03.0', error: 'GPU is lost' }],
    });
  });
});
