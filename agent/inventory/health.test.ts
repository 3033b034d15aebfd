import { describe, expect, it } from 'vitest';
import { fixtureOutput } from '../../test/support/nvidia-smi.js';
import { parseGpuCsv, type DeviceError, type Gpu } from '../discovery/nvidia-smi.js';
import { decideHealth, detailJson, DETAIL_MAX_BYTES, sameBus, type HealthInput } from './health.js';

function parsed(fixture: string): { gpus: Gpu[]; deviceErrors: DeviceError[] } {
  const r = parseGpuCsv(fixtureOutput(fixture));
  if (!r.ok) throw new Error(r.error);
  return r;
}

const EIGHT = parsed('h100-sxm-x8.csv').gpus;
const ONE_GONE = parsed('h100-sxm-x8-one-gone.csv');
const DEVICE_ERROR = parsed('h100-sxm-x8-device-error.txt');
const LOST_UUID = 'GPU-9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c43';

function input(over: Partial<HealthInput>): HealthInput {
  return {
    baseline: EIGHT,
    answering: EIGHT,
    deviceErrors: [],
    accept: undefined,
    announced: '',
    ...over,
  };
}

describe('decideHealth: remembered inventory against what answers now', () => {
  it.each([
    {
      what: 'first run, complete inventory: it becomes the baseline',
      in: { baseline: undefined },
      health: 'healthy',
      labelCount: 8,
      baselineCount: 8,
      lost: 0,
      event: undefined,
    },
    {
      what: 'same eight answer: nothing happens',
      in: {},
      health: 'healthy',
      labelCount: 8,
      baselineCount: 8,
      lost: 0,
      event: undefined,
    },
    {
      what: 'one fell off the bus (not listed any more): labels keep eight, GPULost',
      in: { answering: ONE_GONE.gpus },
      health: 'degraded',
      labelCount: 8,
      baselineCount: 8,
      lost: 1,
      event: 'GPULost',
    },
    {
      what: 'one answers with an error: labels keep eight, GPULost',
      in: { answering: DEVICE_ERROR.gpus, deviceErrors: DEVICE_ERROR.deviceErrors },
      health: 'degraded',
      labelCount: 8,
      baselineCount: 8,
      lost: 1,
      event: 'GPULost',
    },
    {
      what: 'the same loss already announced: no second Event',
      in: { answering: ONE_GONE.gpus, announced: `8>7:${LOST_UUID}` },
      health: 'degraded',
      labelCount: 8,
      baselineCount: 8,
      lost: 1,
      event: undefined,
    },
    {
      what: 'repaired (eight again after a loss): healthy, GPUsRecovered',
      in: { announced: `8>7:${LOST_UUID}` },
      health: 'healthy',
      labelCount: 8,
      baselineCount: 8,
      lost: 0,
      event: 'GPUsRecovered',
    },
    {
      what: 'the driver went away (nvidia-smi missing) on a GPU node: degraded, labels stay',
      in: { answering: [] },
      health: 'degraded',
      labelCount: 8,
      baselineCount: 8,
      lost: 8,
      event: 'GPULost',
    },
    {
      what: 'operator accepts seven: the new baseline, healthy, InventoryAccepted',
      in: { answering: ONE_GONE.gpus, accept: '7', announced: `8>7:${LOST_UUID}` },
      health: 'healthy',
      labelCount: 7,
      baselineCount: 7,
      lost: 0,
      event: 'InventoryAccepted',
    },
    {
      what: 'accepted seven while the eighth still errors: stays accepted',
      in: {
        baseline: DEVICE_ERROR.gpus,
        answering: DEVICE_ERROR.gpus,
        deviceErrors: DEVICE_ERROR.deviceErrors,
      },
      health: 'healthy',
      labelCount: 7,
      baselineCount: 7,
      lost: 0,
      event: undefined,
    },
    {
      what: 'an accept for a count that does not answer is refused; nothing changes',
      in: { answering: ONE_GONE.gpus, accept: '6', announced: `8>7:${LOST_UUID}` },
      health: 'degraded',
      labelCount: 8,
      baselineCount: 8,
      lost: 1,
      event: 'InventoryAcceptRefused',
    },
    {
      what: 'a GPU added (more answer): the new baseline, healthy',
      in: { baseline: ONE_GONE.gpus },
      health: 'healthy',
      labelCount: 8,
      baselineCount: 8,
      lost: 0,
      event: undefined,
    },
    {
      what: 'first run on a node with a broken device: degraded, no baseline kept yet',
      in: {
        baseline: undefined,
        answering: DEVICE_ERROR.gpus,
        deviceErrors: DEVICE_ERROR.deviceErrors,
      },
      health: 'degraded',
      labelCount: 7,
      baselineCount: undefined,
      lost: 1,
      event: 'GPULost',
    },
    {
      what: 'CPU node (no driver, nothing remembered): healthy, no GPUs',
      in: { baseline: undefined, answering: [] },
      health: 'healthy',
      labelCount: 0,
      baselineCount: 0,
      lost: 0,
      event: undefined,
    },
  ])('$what', (c) => {
    const d = decideHealth(input(c.in));
    expect(d.health).toBe(c.health);
    expect(d.labelGpus).toHaveLength(c.labelCount);
    expect(d.baseline?.length).toBe(c.baselineCount);
    expect(d.lostCount).toBe(c.lost);
    expect(d.event?.reason).toBe(c.event);
    expect(d.detail === null).toBe(c.health === 'healthy');
  });

  it('a GPU swapped for another (same count, new UUID) is no loss', () => {
    const swapped = EIGHT.map((g, i) => (i === 3 ? { ...g, uuid: 'GPU-00000000-1111' } : g));
    const d = decideHealth(input({ answering: swapped }));
    expect(d).toMatchObject({ health: 'healthy', lostCount: 0, event: undefined });
    expect(d.baseline?.[3]?.uuid).toBe('GPU-00000000-1111');
  });

  it('names the lost GPU, with the error nvidia-smi gave, in the detail and the Event', () => {
    const d = decideHealth(
      input({ answering: DEVICE_ERROR.gpus, deviceErrors: DEVICE_ERROR.deviceErrors }),
    );
    expect(d.lost).toEqual([
      {
        index: 3,
        name: 'NVIDIA H100 80GB HBM3',
        uuid: LOST_UUID,
        pciBusId: '00000000:5D:00.0',
        error: 'Unknown Error',
      },
    ]);
    expect(JSON.parse(d.detail ?? '')).toMatchObject({ expected: 8, answering: 7 });
    expect(d.event).toMatchObject({ type: 'Warning', reason: 'GPULost' });
    expect(d.event?.message).toMatch(/^7 of 8 GPUs answer/);
    expect(d.event?.message).toContain('00000000:5D:00.0');
    expect(d.event?.message).toContain('accept-inventory');
    expect(d.announced).toBe(`8>7:${LOST_UUID}`);
  });

  it('a second GPU lost after the first is announced again', () => {
    const six = ONE_GONE.gpus.slice(1);
    const d = decideHealth(input({ answering: six, announced: `8>7:${LOST_UUID}` }));
    expect(d.event?.reason).toBe('GPULost');
    expect(d.lostCount).toBe(2);
  });

  it.each(['', 'seven', '-1', '7.0', '99999'])('refuses accept value %j', (accept) => {
    const d = decideHealth(input({ answering: ONE_GONE.gpus, accept }));
    expect(d.acceptHandled).toBe(true);
    // The loss is new here, so GPULost wins the Event; the refusal is still handled.
    expect(d.health).toBe('degraded');
    expect(d.baseline).toHaveLength(8);
  });
});

describe('detail annotation', () => {
  it('stays valid JSON within the bound however many GPUs are lost', () => {
    const many = Array.from({ length: 64 }, (_, i) => ({
      index: i,
      name: 'NVIDIA H100 80GB HBM3 with a very long product name that goes on',
      uuid: `GPU-${'a'.repeat(32)}-${i}`,
      pciBusId: '00000000:5D:00.0',
      error: 'x'.repeat(500),
    }));
    const text = detailJson(64, 0, many);
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(DETAIL_MAX_BYTES);
    const parsedDetail = JSON.parse(text) as { lost: unknown[]; more: number };
    expect(parsedDetail.lost.length + parsedDetail.more).toBe(64);
  });

  it('matches bus IDs written with 4 or 8 domain digits', () => {
    expect(sameBus('00000000:5D:00.0', '0000:5d:00.0')).toBe(true);
    expect(sameBus('00000000:5D:00.0', '0000:5E:00.0')).toBe(false);
  });
});
