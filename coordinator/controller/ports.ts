// What a maintenance run needs from the outside world, as narrow interfaces. main.ts wires the
// real implementations; controller/ reaches the drain engine only through DrainFn.
import type { DrainOptions, DrainProgress, DrainResult } from '../drain/drain.js';

export type { DrainProgress };
export type DrainOutcome = DrainResult;

/** What a maintenance asks of the drain engine (coordinator/drain). */
export type DrainRequest = Pick<
  DrainOptions,
  | 'drainNonGpuPods'
  | 'deleteEmptyDirData'
  | 'evictUnmanagedPods'
  | 'timeoutMs'
  | 'forceDrain'
  | 'skipPod'
  | 'skipWaitForDeleteTimeoutSeconds'
>;

export type DrainFn = (
  node: string,
  opts: DrainRequest,
  onProgress: (p: DrainProgress) => void,
  signal: AbortSignal,
) => Promise<DrainResult>;
