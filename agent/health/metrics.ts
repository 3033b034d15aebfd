import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { VERSION } from '../../shared/version.js';

export type PatchReason = 'apply' | 'restore';

/** The agent's Prometheus metrics, on a registry of its own (no global state between tests). */
export interface AgentMetrics {
  readonly registry: Registry;
  readonly discoveryDuration: Histogram;
  readonly discoveryErrors: Counter;
  readonly lastSuccessfulDiscovery: Gauge;
  readonly gpus: Gauge;
  readonly gpusLost: Gauge;
  readonly labelPatches: Counter<'reason'>;
  readonly labelPatchErrors: Counter;
  readonly labelsRestored: Counter;
  readonly watchRestarts: Counter;
}

export function createMetrics(opts: { processMetrics?: boolean } = {}): AgentMetrics {
  const registry = new Registry();
  if (opts.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  new Gauge({
    name: 'noma_agent_build_info',
    help: 'Always 1; the version label says which build runs.',
    labelNames: ['version'],
    registers: [registry],
  }).set({ version: VERSION }, 1);
  return {
    registry,
    discoveryDuration: new Histogram({
      name: 'noma_agent_discovery_duration_seconds',
      help: 'Time to run GPU discovery (nvidia-smi), successful or not.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    discoveryErrors: new Counter({
      name: 'noma_agent_discovery_errors_total',
      help: 'GPU discoveries that failed (nvidia-smi failed, hung or printed something unreadable).',
      registers: [registry],
    }),
    lastSuccessfulDiscovery: new Gauge({
      name: 'noma_agent_last_successful_discovery_timestamp_seconds',
      help: 'Unix time of the last successful GPU discovery.',
      registers: [registry],
    }),
    gpus: new Gauge({
      name: 'noma_agent_gpus',
      help: 'GPUs found by the last successful discovery.',
      registers: [registry],
    }),
    gpusLost: new Gauge({
      name: 'noma_agent_gpus_lost',
      help: 'GPUs of the remembered inventory that do not answer now (0: healthy). The labels keep the remembered count until an operator accepts the new inventory.',
      registers: [registry],
    }),
    labelPatches: new Counter({
      name: 'noma_agent_label_patches_total',
      help: 'Patches of the Node labels: apply (inventory or rules changed) or restore (someone removed or changed a managed label).',
      labelNames: ['reason'],
      registers: [registry],
    }),
    labelPatchErrors: new Counter({
      name: 'noma_agent_label_patch_errors_total',
      help: 'Failed reads or patches of the Node.',
      registers: [registry],
    }),
    labelsRestored: new Counter({
      name: 'noma_agent_labels_restored_total',
      help: 'Managed labels put back after someone removed or changed them.',
      registers: [registry],
    }),
    watchRestarts: new Counter({
      name: 'noma_agent_node_watch_restarts_total',
      help: 'Times the watch on the own Node was re-established.',
      registers: [registry],
    }),
  };
}
