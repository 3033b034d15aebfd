import { Type, type Static } from '@sinclair/typebox';
import { formatErrors, validate } from '../../shared/api/validate.js';

/**
 * The pure half of GPU discovery: what we ask `nvidia-smi` for and how its CSV answer becomes
 * typed values. Anything we do not recognise is an error, never "no GPUs": a driver that prints
 * garbage is a broken node, not a CPU node.
 */

/** Columns of `--query-gpu`, in order. `mig.mode.current` is missing from drivers before 450. */
export const BASE_FIELDS = [
  'index',
  'name',
  'uuid',
  'memory.total',
  'driver_version',
  'pci.bus_id',
] as const;
export const MIG_FIELD = 'mig.mode.current';
export type QueryField = (typeof BASE_FIELDS)[number] | typeof MIG_FIELD;
export const FULL_QUERY: readonly QueryField[] = [...BASE_FIELDS, MIG_FIELD];

export function queryArgs(fields: readonly QueryField[]): string[] {
  return [`--query-gpu=${fields.join(',')}`, '--format=csv,noheader,nounits'];
}

export const MigModeSchema = Type.Union([
  Type.Literal('enabled'),
  Type.Literal('disabled'),
  Type.Literal('unsupported'),
]);

export const GpuSchema = Type.Object(
  {
    index: Type.Integer({ minimum: 0 }),
    name: Type.String({ minLength: 1, maxLength: 256 }),
    uuid: Type.String({ pattern: '^GPU-[0-9a-fA-F-]+$' }),
    memoryMiB: Type.Integer({ minimum: 1 }),
    driverVersion: Type.String({ pattern: '^[0-9]+(\\.[0-9]+)*$' }),
    pciBusId: Type.String({
      pattern: '^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\\.[0-7]$',
    }),
    migMode: MigModeSchema,
  },
  { additionalProperties: false },
);
export type Gpu = Static<typeof GpuSchema>;
export type MigMode = Static<typeof MigModeSchema>;

/**
 * A GPU that nvidia-smi knows of but could not read: fallen off the bus, needing a reset. It
 * answers with an error line or error cells instead of its record. Bounded text only.
 */
export interface DeviceError {
  readonly index?: number;
  readonly pciBusId?: string;
  readonly error: string;
}

export type ParseResult =
  { ok: true; gpus: Gpu[]; deviceErrors: DeviceError[] } | { ok: false; error: string };

const BUS_ID = '[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\\.[0-7]';
/** NVML could not open one device; the others are still listed (nvidia-smi then exits 15). */
const NO_HANDLE_RE = new RegExp(
  `^Unable to determine the device handle for (?:GPU\\s*)?(${BUS_ID}):\\s*(.*)$`,
  'i',
);
/** Cell values with which nvidia-smi says "this device is broken", not "no such value". */
const DEVICE_ERROR_CELLS = new Set(['[GPU is lost]', '[Unknown Error]', '[GPU requires reset]']);

/** nvidia-smi's spellings of "this GPU has no such value". */
const NOT_AVAILABLE = new Set(['[N/A]', 'N/A', '[Not Supported]']);

/** A MigMode, or the unknown text as is (the schema check then names it). */
function migMode(raw: string | undefined): string {
  if (raw === undefined || NOT_AVAILABLE.has(raw)) return 'unsupported';
  if (raw === 'Enabled') return 'enabled';
  if (raw === 'Disabled') return 'disabled';
  return raw;
}

function quote(text: string): string {
  const cut = text.length > 120 ? `${text.slice(0, 120)}…` : text;
  return JSON.stringify(cut);
}

/** A line by which nvidia-smi reports one device as broken, or undefined. */
function deviceError(line: string, fields: readonly QueryField[]): DeviceError | undefined {
  const m = NO_HANDLE_RE.exec(line.trim());
  if (m?.[1] !== undefined) return { pciBusId: m[1], error: (m[2] ?? '').trim().slice(0, 200) };
  const cells = line.split(',').map((c) => c.trim());
  const bad = cells.find((c) => DEVICE_ERROR_CELLS.has(c));
  if (cells.length !== fields.length || bad === undefined) return undefined;
  const index = cells[fields.indexOf('index')] ?? '';
  const bus = cells[fields.indexOf('pci.bus_id')] ?? '';
  return {
    ...(/^\d+$/.test(index) ? { index: Number(index) } : {}),
    ...(new RegExp(`^${BUS_ID}$`).test(bus) ? { pciBusId: bus } : {}),
    error: bad.slice(1, -1),
  };
}

function parseLine(
  line: string,
  lineNo: number,
  fields: readonly QueryField[],
): Gpu | DeviceError | string {
  const broken = deviceError(line, fields);
  if (broken !== undefined) return broken;
  const cells = line.split(',').map((c) => c.trim());
  if (cells.length !== fields.length) {
    // A one-cell line is nvidia-smi talking prose ("Failed to initialize NVML: …").
    return cells.length === 1
      ? `line ${lineNo}: unexpected output ${quote(line.trim())}`
      : `line ${lineNo}: expected ${fields.length} fields (${fields.join(',')}), got ${cells.length}: ${quote(line)}`;
  }
  const cell = (f: QueryField): string | undefined => cells[fields.indexOf(f)];
  const num = (f: QueryField): number | string => {
    const raw = cell(f) ?? '';
    return /^\d+$/.test(raw) ? Number(raw) : raw;
  };
  const candidate = {
    index: num('index'),
    name: cell('name'),
    uuid: cell('uuid'),
    memoryMiB: num('memory.total'),
    driverVersion: cell('driver_version'),
    pciBusId: cell('pci.bus_id'),
    migMode: migMode(fields.includes(MIG_FIELD) ? cell(MIG_FIELD) : undefined),
  };
  const checked = validate(GpuSchema, candidate);
  return checked.ok ? checked.value : `line ${lineNo}: ${formatErrors(checked.errors)}`;
}

/**
 * Parses the output of `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits`.
 * Every line must be a complete GPU record or nvidia-smi's report of one broken device (those
 * are returned apart, for the agent to count as lost); any other bad line fails the whole
 * parse, because output we do not understand says nothing about how many GPUs there are.
 */
export function parseGpuCsv(
  stdout: string,
  fields: readonly QueryField[] = FULL_QUERY,
): ParseResult {
  const lines = stdout.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (lines.length === 0) return { ok: false, error: 'no output (expected one line per GPU)' };
  const gpus: Gpu[] = [];
  const deviceErrors: DeviceError[] = [];
  const errors: string[] = [];
  lines.forEach((line, i) => {
    const parsed = parseLine(line, i + 1, fields);
    if (typeof parsed === 'string') errors.push(parsed);
    else if ('uuid' in parsed) gpus.push(parsed);
    else deviceErrors.push(parsed);
  });
  if (errors.length > 0) return { ok: false, error: errors.join('; ') };
  const seen = new Set<number>();
  for (const gpu of gpus) {
    if (seen.has(gpu.index)) return { ok: false, error: `GPU index ${gpu.index} appears twice` };
    seen.add(gpu.index);
  }
  return { ok: true, gpus: gpus.sort((a, b) => a.index - b.index), deviceErrors };
}
