// /metrics of the coordinator. Gauges are computed from the runs when scraped, so they can
// never drift from status.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { MAINTENANCE_PHASES, NODE_PHASES } from '../shared/api/index.js';
import type { Controller } from './controller/controller.js';

export interface CoordinatorMetrics {
  readonly registry: Registry;
  readonly notifyFailures: Counter;
  readonly drainEvents: Counter<'event'>;
  readonly drainDuration: Histogram<'result'>;
  readonly eventsDropped: Counter<'why'>;
  readonly phaseDuration: Histogram<'phase'>;
}

export function createMetrics(controller: () => Controller | undefined): CoordinatorMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'noma_coordinator_' });
  new Gauge({
    name: 'noma_maintenances',
    help: 'NodeMaintenances known to this coordinator, by phase',
    labelNames: ['phase'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of MAINTENANCE_PHASES) this.set({ phase: p }, 0);
      for (const run of controller()?.runsSnapshot() ?? []) {
        this.inc({ phase: run.status.phase ?? 'Pending' });
      }
    },
  });
  new Gauge({
    name: 'noma_nodes',
    help: 'Nodes of NodeMaintenances, by node phase',
    labelNames: ['phase'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of NODE_PHASES) this.set({ phase: p }, 0);
      for (const run of controller()?.runsSnapshot() ?? []) {
        for (const n of run.status.nodes ?? []) this.inc({ phase: n.phase });
      }
    },
  });
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
  new Gauge({
    name: 'noma_nodes_stuck',
    help: 'Nodes of maintenances that have not changed phase for longer than --stuck-after (waits the spec asked for aside)',
    registers: [registry],
    collect() {
      let n = 0;
      for (const run of controller()?.runsSnapshot() ?? []) n += run.stuckNodes().length;
      this.set(n);
    },
  });
  return { registry, notifyFailures, drainEvents, drainDuration, eventsDropped, phaseDuration };
}
