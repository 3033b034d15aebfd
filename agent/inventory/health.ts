import type { GpuHealth } from '../../shared/labels.js';
import type { DeviceError, Gpu } from '../discovery/nvidia-smi.js';

/**
 * The pure half of lost-GPU handling: the inventory the agent remembers (its baseline) against
 * what answers now, and what follows for the labels, the health, the Event and the baseline.
 * A GPU that stops answering must not silently lower `gpu.count` or the tier: workloads that
 * ask for eight GPUs would be scheduled elsewhere without anyone learning why, and the node
 * would look smaller instead of broken.
 */

export interface HealthInput {
  /** The inventory last taken as complete; undefined before the first one. */
  readonly baseline: readonly Gpu[] | undefined;
  /** The GPUs that answered now. */
  readonly answering: readonly Gpu[];
  /** Devices nvidia-smi knows of but could not read. */
  readonly deviceErrors: readonly DeviceError[];
  /** The accept-inventory annotation's value, when an operator set one. */
  readonly accept: string | undefined;
  /** Key of the loss last announced with GPULost ('' or undefined: none). */
  readonly announced: string | undefined;
}

export interface LostGpu {
  readonly index?: number;
  readonly name?: string;
  readonly uuid?: string;
  readonly pciBusId?: string;
  readonly error?: string;
}

export interface HealthEvent {
  readonly type: 'Warning' | 'Normal';
  readonly reason: 'GPULost' | 'GPUsRecovered' | 'InventoryAccepted' | 'InventoryAcceptRefused';
  readonly message: string;
}

export interface HealthDecision {
  readonly health: GpuHealth;
  /** GPUs the labels describe: the baseline while GPUs are lost, else those that answer. */
  readonly labelGpus: readonly Gpu[];
  /** Baseline to remember; undefined: none yet (nothing complete seen). */
  readonly baseline: readonly Gpu[] | undefined;
  readonly expected: number;
  readonly lostCount: number;
  readonly lost: readonly LostGpu[];
  /** Annotation value while degraded (bounded JSON), null when healthy. */
  readonly detail: string | null;
  /** The accept-inventory annotation was handled (accepted or refused) and goes. */
  readonly acceptHandled: boolean;
  readonly event: HealthEvent | undefined;
  /** Key to remember as announced. */
  readonly announced: string;
}

/** Annotation values are bounded: a 64-GPU node with every device broken still fits. */
export const DETAIL_MAX_BYTES = 1024;
const MAX_LISTED = 16;

/** `00000000:5D:00.0` (query output) and `0000:5D:00.0` (error lines) are the same device. */
export function sameBus(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  const norm = (id: string) => {
    const [domain = '', ...rest] = id.split(':');
    return `${parseInt(domain, 16)}:${rest.join(':').toUpperCase()}`;
  };
  return norm(a) === norm(b);
}

/** The baseline's GPUs that do not answer, with the error nvidia-smi gave for each, if any. */
export function lostGpus(
  baseline: readonly Gpu[],
  answering: readonly Gpu[],
  deviceErrors: readonly DeviceError[],
): LostGpu[] {
  const here = new Set(answering.map((g) => g.uuid));
  const lost: LostGpu[] = baseline
    .filter((g) => !here.has(g.uuid))
    .map((g) => {
      const err = deviceErrors.find((e) => sameBus(e.pciBusId, g.pciBusId));
      return {
        index: g.index,
        name: g.name,
        uuid: g.uuid,
        pciBusId: g.pciBusId,
        ...(err === undefined ? {} : { error: err.error }),
      };
    });
  // Errors for devices the baseline does not know (a first run on a broken node).
  for (const e of deviceErrors) {
    if (!lost.some((l) => sameBus(l.pciBusId, e.pciBusId))) lost.push({ ...e });
  }
  return lost;
}

function describeGpu(g: LostGpu): string {
  const id = g.pciBusId ?? (g.index === undefined ? 'unknown device' : `index ${g.index}`);
  const what = [g.name, g.uuid].filter((x) => x !== undefined).join(' ');
  return `${id}${what === '' ? '' : ` (${what})`}${g.error === undefined ? '' : `: ${g.error}`}`;
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** Bounded JSON for the detail annotation: fewer entries listed rather than broken JSON. */
export function detailJson(expected: number, answering: number, lost: readonly LostGpu[]): string {
  for (let n = Math.min(lost.length, MAX_LISTED); n >= 0; n--) {
    const text = JSON.stringify({
      expected,
      answering,
      lost: lost
        .slice(0, n)
        .map((l) => ({ ...l, ...(l.error ? { error: cut(l.error, 120) } : {}) })),
      ...(n < lost.length ? { more: lost.length - n } : {}),
    });
    if (Buffer.byteLength(text) <= DETAIL_MAX_BYTES) return text;
  }
  return JSON.stringify({ expected, answering, more: lost.length });
}

function lossMessage(expected: number, answering: number, lost: readonly LostGpu[]): string {
  const listed = lost.map(describeGpu).join('; ');
  return cut(
    `${answering} of ${expected} GPUs answer; labels keep the inventory of ${expected} GPUs ` +
      `(noma.dev/gpu.health=degraded). Lost: ${listed || 'unknown devices'}. If the GPU was ` +
      `removed on purpose: noma nodes accept-inventory <node>`,
    1024,
  );
}

type AcceptOutcome = { kind: 'none' } | { kind: 'accepted' } | { kind: 'refused'; why: string };

function acceptOutcome(value: string | undefined, answering: number): AcceptOutcome {
  if (value === undefined) return { kind: 'none' };
  if (!/^\d{1,4}$/.test(value.trim())) {
    return { kind: 'refused', why: `"${cut(value, 40)}" is not a GPU count` };
  }
  const asked = Number(value.trim());
  return asked === answering
    ? { kind: 'accepted' }
    : { kind: 'refused', why: `it asks for ${asked} GPUs but ${answering} answer` };
}

/** The one Event of a discovery, if any: an accept, a new loss, a recovery, a refusal. */
function chooseEvent(c: {
  accept: AcceptOutcome;
  input: HealthInput;
  degraded: boolean;
  key: string;
  expected: number;
  lost: readonly LostGpu[];
}): HealthEvent | undefined {
  const answering = c.input.answering.length;
  if (c.accept.kind === 'accepted') {
    return {
      type: 'Normal',
      reason: 'InventoryAccepted',
      message: `inventory of ${answering} GPUs accepted by an operator (${c.input.accept ?? ''}); labels follow it`,
    };
  }
  if (c.degraded && c.key !== c.input.announced) {
    return {
      type: 'Warning',
      reason: 'GPULost',
      message: lossMessage(c.expected, answering, c.lost),
    };
  }
  if (!c.degraded && (c.input.announced ?? '') !== '') {
    return {
      type: 'Normal',
      reason: 'GPUsRecovered',
      message: `all ${answering} GPUs answer again (noma.dev/gpu.health=healthy)`,
    };
  }
  // A refusal gets the Event only when nothing else happened: a new loss matters more.
  if (c.accept.kind !== 'refused') return undefined;
  return {
    type: 'Warning',
    reason: 'InventoryAcceptRefused',
    message: `noma.dev/accept-inventory not honoured: ${c.accept.why}; nothing changed`,
  };
}

/** Baseline vs current inventory: labels, health, Event and the baseline to keep. */
export function decideHealth(input: HealthInput): HealthDecision {
  const { answering, deviceErrors } = input;
  const accept = acceptOutcome(input.accept, answering.length);
  const baseline = accept.kind === 'accepted' ? answering : input.baseline;
  const expected =
    baseline === undefined
      ? answering.length + deviceErrors.length
      : Math.max(baseline.length, answering.length);
  // With a baseline, an errored device counts only if the baseline had it (an accepted loss
  // stays accepted); without one, nvidia-smi's word that a device exists and fails suffices.
  const lostCount =
    baseline === undefined ? deviceErrors.length : Math.max(0, baseline.length - answering.length);
  const degraded = lostCount > 0;
  const lost = degraded ? lostGpus(baseline ?? [], answering, deviceErrors) : [];
  const key = degraded
    ? `${expected}>${answering.length}:${lost.map((l) => l.uuid ?? l.pciBusId ?? '?').join(',')}`
    : '';
  const event = chooseEvent({ accept, input, degraded, key, expected, lost });
  return {
    health: degraded ? 'degraded' : 'healthy',
    labelGpus: degraded && baseline !== undefined ? baseline : answering,
    // A degraded first run keeps no baseline: the next complete inventory becomes it.
    baseline: degraded ? baseline : answering,
    expected,
    lostCount,
    lost,
    detail: degraded ? detailJson(expected, answering.length, lost) : null,
    acceptHandled: accept.kind !== 'none',
    event,
    announced: key,
  };
}
