import { execa } from 'execa';
import {
  BASE_FIELDS,
  FULL_QUERY,
  parseGpuCsv,
  queryArgs,
  type DeviceError,
  type Gpu,
} from './nvidia-smi.js';

/**
 * The three outcomes of asking the driver. `absent` (no nvidia-smi binary) is a normal CPU node;
 * `error` is anything else that did not yield a complete inventory, and must never be read as
 * "no GPUs". `gpus` may come with `deviceErrors`: devices nvidia-smi knows but could not read
 * (the agent counts them as lost, never as absent).
 */
export type GpuDetection =
  | { kind: 'gpus'; gpus: Gpu[]; deviceErrors: DeviceError[] }
  | { kind: 'absent'; detail: string }
  | { kind: 'error'; error: string };

export interface NvidiaSmiOptions {
  /** Executable name (looked up on PATH) or path. */
  readonly path: string;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

interface RunOutcome {
  ok: boolean;
  stdout: string;
  stderr: string;
  /** It ran and exited with a status (not killed, not timed out). */
  exited?: boolean;
  /** Why the run failed; set when ok is false. */
  failure?: string;
  missing?: boolean;
}

function firstLines(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const joined = lines.slice(0, 3).join(' | ');
  return joined.length > 300 ? `${joined.slice(0, 300)}…` : joined;
}

async function run(opts: NvidiaSmiOptions, args: string[]): Promise<RunOutcome> {
  const result = await execa(opts.path, args, {
    timeout: opts.timeoutMs,
    // A driver stuck in the kernel can ignore SIGTERM; do not let it pin us.
    forceKillAfterDelay: 1_000,
    reject: false,
    stdin: 'ignore',
    maxBuffer: 1024 * 1024,
    ...(opts.signal === undefined ? {} : { cancelSignal: opts.signal }),
  });
  if (!result.failed) return { ok: true, stdout: result.stdout, stderr: result.stderr };
  const said = firstLines(`${result.stdout}\n${result.stderr}`);
  if (result.code === 'ENOENT') {
    return {
      ok: false,
      stdout: '',
      stderr: '',
      missing: true,
      failure: `${opts.path} not found`,
    };
  }
  let failure: string;
  if (result.timedOut) failure = `timed out after ${opts.timeoutMs} ms`;
  else if (result.isCanceled) failure = 'cancelled';
  else if (result.exitCode !== undefined) failure = `exited with status ${result.exitCode}`;
  else if (result.signal !== undefined) failure = `killed by ${result.signal}`;
  else failure = result.shortMessage ?? 'failed';
  return {
    ok: false,
    stdout: result.stdout,
    stderr: result.stderr,
    exited: !result.timedOut && !result.isCanceled && result.exitCode !== undefined,
    failure: said === '' ? failure : `${failure}: ${said}`,
  };
}

/** Runs nvidia-smi (argv, no shell) and classifies what came back. */
export async function detectGpus(opts: NvidiaSmiOptions): Promise<GpuDetection> {
  let fields = FULL_QUERY;
  let outcome = await run(opts, queryArgs(fields));
  // Drivers before 450 do not know the MIG column; ask again without it rather than failing.
  if (!outcome.ok && outcome.stdout.includes('is not a valid field to query')) {
    fields = BASE_FIELDS;
    outcome = await run(opts, queryArgs(fields));
  }
  if (outcome.missing === true) return { kind: 'absent', detail: outcome.failure ?? '' };
  if (!outcome.ok) {
    const partial = outcome.exited === true ? partialInventory(outcome, fields) : undefined;
    return partial ?? { kind: 'error', error: `nvidia-smi ${outcome.failure ?? 'failed'}` };
  }
  const parsed = parseGpuCsv(outcome.stdout, fields);
  return parsed.ok
    ? { kind: 'gpus', gpus: parsed.gpus, deviceErrors: parsed.deviceErrors }
    : { kind: 'error', error: `nvidia-smi output not understood: ${parsed.error}` };
}

/**
 * nvidia-smi exits non-zero (15: a GPU fell off the bus) when one device cannot be read, yet
 * still lists the others. That is an inventory with lost devices, not a failed detection; any
 * other failing run stays an error. The per-device lines may come on either stream.
 */
function partialInventory(
  outcome: RunOutcome,
  fields: readonly (typeof FULL_QUERY)[number][],
): GpuDetection | undefined {
  const stderrDevices = outcome.stderr
    .split(/\r?\n/)
    .filter((l) => /^Unable to determine the device handle/i.test(l.trim()));
  const parsed = parseGpuCsv([outcome.stdout, ...stderrDevices].join('\n'), fields);
  if (!parsed.ok || parsed.deviceErrors.length === 0) return undefined;
  return { kind: 'gpus', gpus: parsed.gpus, deviceErrors: parsed.deviceErrors };
}
