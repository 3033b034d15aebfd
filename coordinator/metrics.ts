// /metrics of the coordinator. Gauges are computed from the runs when scraped, so they can
// never drift from status.
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { MAINTENANCE_PHASES, NODE_PHASES } from '../shared/api/index.js';
import type { Controller } from './controller/controller.js';

export interface CoordinatorMetrics {
  readonly registry: Registry;
  readonly notifyFailures: Counter;
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
  return { registry, notifyFailures };
}
