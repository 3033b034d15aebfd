// What a maintenance run needs from the outside world, as narrow interfaces. main.ts wires the
// real implementations; nothing in controller/ talks to the API server except through these
// and the status store.
import type { V1Pod } from '@kubernetes/client-node';
import type { NodeStatus } from '../../shared/api/index.js';

export type DrainProgress = NonNullable<NodeStatus['drain']>;

export interface DrainRequest {
  readonly drainNonGpuPods: boolean;
  readonly deleteEmptyDirData: boolean;
  readonly evictUnmanagedPods: boolean;
  readonly timeoutMs: number;
  readonly forceDrain: boolean;
  readonly skipPod?: (pod: V1Pod) => boolean;
}

export type DrainOutcome =
  { ok: true; progress: DrainProgress } | { ok: false; reason: string; progress: DrainProgress };

export type DrainFn = (
  node: string,
  opts: DrainRequest,
  onProgress: (p: DrainProgress) => void,
  signal: AbortSignal,
) => Promise<DrainOutcome>;

export interface NodeFacts {
  readonly exists: boolean;
  readonly unschedulable: boolean;
  readonly taints: { key: string; value?: string; effect: string; timeAdded?: string }[];
  readonly controlPlane: boolean;
}
