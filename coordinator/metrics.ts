// /metrics of the coordinator. Gauges are computed from the runs and the Node cache when
// scraped, so they can never drift from status or from the cluster.
//
// A standby has no runs and no Node cache: its maintenance and fleet gauges have no series (or
// 0 where a gauge has no labels), so sum() over the replicas counts the leader once.
// noma_leader tells them apart.
import type { V1Node } from '@kubernetes/client-node';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { MAINTENANCE_PHASES, NODE_PHASES } from '../shared/api/index.js';
import type { Controller } from './controller/controller.js';
import {
  fleetFacts,
  GPU_HEALTH_VALUES,
  maintenanceFacts,
  type FleetFacts,
  type MaintenanceFacts,
} from './fleet-facts.js';

export interface CoordinatorMetrics {
  readonly registry: Registry;
  readonly notifyFailures: Counter;
  readonly drainEvents: Counter<'event'>;
  readonly drainDuration: Histogram<'result'>;
  readonly eventsDropped: Counter<'why'>;
  readonly phaseDuration: Histogram<'phase'>;
}

/** What the fleet gauges read; each getter answers undefined where there is nothing (a standby). */
export interface FleetSources {
  /** This process holds the Lease now. */
  readonly isLeader?: () => boolean;
  /** --identity, the label of noma_leader. */
  readonly identity?: string;
  /** The leader's Node cache (every node). */
  readonly nodes?: () => { list(): readonly V1Node[] } | undefined;
  /** The agent link, when this coordinator serves one. */
  readonly link?: () => { isConnected(node: string): boolean } | undefined;
  /** The tier label key of the agents' label rules (--tier-label); '' when tiers are off. */
  readonly tierLabel?: string;
  readonly now?: () => number;
}

/** Computes `f` at most once per scrape: the gauges of one scrape share one pass over the nodes. */
function perScrape<T>(f: () => T, now: () => number): () => T {
  let at = -Infinity;
  let value: T | undefined;
  return () => {
    if (value === undefined || now() - at > 1_000) {
      value = f();
      at = now();
    }
    return value;
  };
}

export function createMetrics(
  controller: () => Controller | undefined,
  fleet: FleetSources = {},
): CoordinatorMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'noma_coordinator_' });
  maintenanceGauges(registry, controller, fleet.now ?? Date.now);
  fleetGauges(registry, fleet);
  const notifyFailures = new Counter({
    name: 'noma_notify_failures_total',
    help: 'Notify actions whose webhook could not be reached',
    registers: [registry],
  });
  const drainEvents = new Counter({
    name: 'noma_drain_events_total',
    help: 'Evictions accepted (evicted), refused by a PodDisruptionBudget (pdb-refused, HTTP 429) and pods deleted after drainTimeout with forceDrain (force-deleted)',
    labelNames: ['event'],
    registers: [registry],
  });
  const drainDuration = new Histogram({
    name: 'noma_drain_duration_seconds',
    help: 'Time to drain a node, by result',
    labelNames: ['result'],
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
    registers: [registry],
  });
  const eventsDropped = new Counter({
    name: 'noma_events_dropped_total',
    help: 'Kubernetes Events not written: throttled (more than 25 of one reason on one object, then 1 per 5 min), backlog (too many waiting) or failed',
    labelNames: ['why'],
    registers: [registry],
  });
  // Issue 12 (states): time per node phase, and nodes Stuck now (--stuck-after).
  const phaseDuration = new Histogram({
    name: 'noma_node_phase_duration_seconds',
    help: 'Time a node of a maintenance spent in a phase, observed as it leaves the phase',
    labelNames: ['phase'],
    buckets: [1, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200],
    registers: [registry],
  });
  return { registry, notifyFailures, drainEvents, drainDuration, eventsDropped, phaseDuration };
}

/** The maintenances of the runs: by phase, per maintenance, drains blocked, stuck nodes. */
function maintenanceGauges(
  registry: Registry,
  controller: () => Controller | undefined,
  now: () => number,
): void {
  const runs = () => controller()?.runsSnapshot() ?? [];
  const facts = perScrape(
    (): MaintenanceFacts =>
      maintenanceFacts(
        runs().map((r) => ({ key: r.key, status: r.status, stuck: r.stuckNodes() })),
        now(),
      ),
    now,
  );
  new Gauge({
    name: 'noma_maintenances',
    help: 'NodeMaintenances known to this coordinator, by phase',
    labelNames: ['phase'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of MAINTENANCE_PHASES) this.set({ phase: p }, 0);
      for (const run of runs()) this.inc({ phase: run.status.phase ?? 'Pending' });
    },
  });
  new Gauge({
    name: 'noma_maintenance_nodes',
    help: 'Nodes of NodeMaintenances, by node phase',
    labelNames: ['phase'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of NODE_PHASES) this.set({ phase: p }, 0);
      for (const run of runs()) {
        for (const n of run.status.nodes ?? []) this.inc({ phase: n.phase });
      }
    },
  });
  new Gauge({
    name: 'noma_maintenance_phase',
    help: '1 per NodeMaintenance not Completed or Failed (maintenance: namespace/name), with its phase; at most 100',
    labelNames: ['maintenance', 'phase'],
    registers: [registry],
    collect() {
      this.reset();
      for (const m of facts().active) this.set(m, 1);
    },
  });
  new Gauge({
    name: 'noma_drain_blocked_seconds',
    help: 'Per NodeMaintenance with a drain blocked now (status.nodes[].drain.blockedBy): seconds its longest such node has been Draining',
    labelNames: ['maintenance'],
    registers: [registry],
    collect() {
      this.reset();
      for (const d of facts().drainBlocked) this.set({ maintenance: d.maintenance }, d.seconds);
    },
  });
  new Gauge({
    name: 'noma_nodes_stuck',
    help: 'Nodes of maintenances that have not changed phase for longer than --stuck-after (waits the spec asked for aside)',
    registers: [registry],
    collect() {
      let n = 0;
      for (const run of runs()) n += run.stuckNodes().length;
      this.set(n);
    },
  });
  new Gauge({
    name: 'noma_node_stuck_seconds',
    help: 'Stuck nodes (see noma_nodes_stuck): seconds without progress, the 20 longest',
    labelNames: ['maintenance', 'node', 'phase'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of facts().stuck) {
        this.set({ maintenance: s.maintenance, node: s.node, phase: s.phase }, s.seconds);
      }
    },
  });
}

/** The fleet from the leader's Node cache and link, and which replica leads. */
function fleetGauges(registry: Registry, sources: FleetSources): void {
  const now = sources.now ?? Date.now;
  const tierLabel = sources.tierLabel ?? '';
  const facts = perScrape((): FleetFacts | undefined => {
    const cache = sources.nodes?.();
    if (cache === undefined) return undefined;
    const link = sources.link?.();
    return fleetFacts(cache.list(), {
      tierLabel,
      ...(link === undefined ? {} : { isConnected: (n: string) => link.isConnected(n) }),
    });
  }, now);
  new Gauge({
    name: 'noma_leader',
    help: '1 on the coordinator that holds the Lease, 0 on a standby (identity: --identity)',
    labelNames: ['identity'],
    registers: [registry],
    collect() {
      this.reset();
      if (sources.isLeader === undefined) return;
      this.set({ identity: sources.identity ?? '' }, sources.isLeader() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'noma_nodes',
    help: 'Nodes of the cluster by tier (the agents\' tier label, --tier-label; "" when missing) and GPU SKU (from noma.dev/gpu.product; none without GPUs); at most 64 pairs, the rest as other',
    labelNames: ['tier', 'gpu_sku'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of facts()?.byTierSku ?? []) {
        this.set({ tier: c.tier, gpu_sku: c.gpuSku }, c.nodes);
      }
    },
  });
  new Gauge({
    name: 'noma_nodes_missing_labels',
    help: "Nodes without the label named (the agents' tier label, --tier-label)",
    labelNames: ['label'],
    registers: [registry],
    collect() {
      this.reset();
      const missing = facts()?.missingTier;
      if (missing !== undefined) this.set({ label: tierLabel }, missing);
    },
  });
  new Gauge({
    name: 'noma_nodes_gpu_health',
    help: 'Nodes by noma.dev/gpu.health: healthy, degraded (GPUs lost), unknown (another value), none (no label: no GPUs or no agent)',
    labelNames: ['health'],
    registers: [registry],
    collect() {
      this.reset();
      const f = facts();
      if (f === undefined) return;
      for (const h of GPU_HEALTH_VALUES) this.set({ health: h }, f.gpuHealth[h]);
    },
  });
  new Gauge({
    name: 'noma_agents_disconnected',
    help: 'Ready nodes that an agent has labeled (noma.dev/managed-labels) whose agent is not connected to this coordinator (0 on a standby or without the agent link)',
    registers: [registry],
    collect() {
      this.set(facts()?.agentsDisconnected ?? 0);
    },
  });
}
