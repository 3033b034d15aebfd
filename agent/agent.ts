import type { Logger } from '../shared/log.js';
import { VERSION } from '../shared/version.js';
import type { GpuDetection } from './discovery/detect-gpus.js';
import type { HostFacts } from './discovery/host.js';
import type { Gpu } from './discovery/nvidia-smi.js';
import { backoffMs } from '../shared/duration.js';
import type { AgentMetrics } from './health/metrics.js';
import { computeLabels, type Labels } from './labels/compute.js';
import type { NodeLabeler } from './labels/node-labeler.js';
import type { LabelRules, RulesResult } from './labels/rules.js';
import type { V1Node } from '@kubernetes/client-node';
import {
  ACCEPT_INVENTORY_ANNOTATION,
  GPU_HEALTH_DETAIL_ANNOTATION,
  GPU_HEALTH_LABEL,
  type GpuHealth,
} from '../shared/labels.js';
import { decideHealth, type HealthDecision, type HealthEvent } from './inventory/health.js';
import type { RememberedInventory } from './inventory/store.js';

export interface Inventory {
  /** `absent`: no NVIDIA driver on this node (a CPU node), not an error. */
  readonly driver: 'present' | 'absent';
  readonly gpus: readonly Gpu[];
  readonly discoveredAt: string;
}

export interface Readiness {
  readonly ready: boolean;
  readonly checks: Record<string, { ok: boolean; detail?: string }>;
}

export interface AgentStatus {
  readonly version: string;
  readonly node: string;
  readonly ready: boolean;
  readonly inventory: Inventory | null;
  readonly host: HostFacts | null;
  readonly labels: Readonly<Labels> | null;
  /** Null until the first discovery; `expected` is the remembered inventory's size. */
  readonly gpuHealth: {
    readonly health: GpuHealth;
    readonly expected: number;
    readonly answering: number;
    readonly lost: number;
  } | null;
  readonly lastError: { readonly message: string; readonly at: string } | null;
  readonly consecutiveFailures: number;
  readonly nextDiscoveryAt: string | null;
}

export interface AgentDeps {
  readonly nodeName: string;
  readonly log: Logger;
  readonly metrics: AgentMetrics;
  readonly labeler: NodeLabeler;
  readonly rules: LabelRules;
  readonly intervalMs: number;
  readonly detect: () => Promise<GpuDetection>;
  readonly hostFacts: () => Promise<HostFacts>;
  /** Re-reads the rules file (SIGHUP); absent when the built-in rules are used. */
  readonly reloadRules?: () => Promise<RulesResult>;
  /** First retry delay after a failure; doubles up to the interval. */
  readonly retryBaseMs?: number;
  /** The inventory remembered in the state dir at start. */
  readonly remembered?: RememberedInventory;
  /** Stores what is to be remembered (the state dir); a failure is logged, not fatal. */
  readonly remember?: (inventory: RememberedInventory) => Promise<void>;
  /** Records an Event on the Node (GPULost and friends). */
  readonly recordEvent?: (event: HealthEvent) => Promise<void>;
}

/**
 * The agent's discovery loop: detect, compute labels, hand them to the labeler; again every
 * interval, on SIGHUP, and sooner with backoff after a failure. A failed detection changes no
 * label: the last good labels stay and keep being enforced.
 */
export class Agent {
  private rules: LabelRules;
  private inventory: Inventory | null = null;
  private host: HostFacts | null = null;
  private remembered: RememberedInventory;
  private health: HealthDecision | undefined;
  /** The accept-inventory annotation as last seen on the Node. */
  private accept: string | undefined;
  private lastError: { message: string; at: string } | null = null;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private nextAt: Date | null = null;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(private readonly deps: AgentDeps) {
    this.rules = deps.rules;
    this.remembered = deps.remembered ?? { gpus: undefined, announced: '' };
  }

  /** Every sighting of the Node (the labeler's watch): an accept-inventory request runs now. */
  observeNode(node: V1Node): void {
    const value = node.metadata?.annotations?.[ACCEPT_INVENTORY_ANNOTATION];
    if (value === this.accept) return;
    this.accept = value;
    if (value !== undefined) this.trigger('accept-inventory');
  }

  start(): void {
    this.deps.labeler.start();
    this.trigger('start');
    // Host facts are for /status only; read them once the first labels are out.
    void this.running?.finally(() => {
      this.loadHostFacts();
    });
  }

  private loadHostFacts(): void {
    this.deps
      .hostFacts()
      .then((facts) => {
        this.host = facts;
      })
      .catch((err: unknown) => {
        this.deps.log.warn({ err: (err as Error).message }, 'could not read host facts');
      });
  }

  /** Runs discovery now (SIGHUP, start); coalesces with a run in progress. */
  trigger(reason: string): void {
    if (this.stopped) return;
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.running = this.cycle(reason).finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.trigger('queued');
      }
    });
  }

  /** SIGHUP: re-read the rules (keeping the old ones if the new file is bad), then discover. */
  async reload(): Promise<void> {
    const reload = this.deps.reloadRules;
    if (reload !== undefined) {
      const result = await reload();
      if (result.ok) {
        this.rules = result.rules;
        this.deps.log.info('label rules reloaded');
      } else {
        this.deps.log.error(
          { errors: result.errors },
          'new label rules rejected; keeping the old ones',
        );
      }
    }
    this.trigger('reload');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    await this.deps.labeler.stop();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.nextAt = new Date(Date.now() + delayMs);
    this.timer = setTimeout(() => {
      this.trigger('timer');
    }, delayMs);
  }

  private fail(message: string): void {
    const { log, intervalMs } = this.deps;
    this.lastError = { message, at: new Date().toISOString() };
    const delay = Math.min(
      intervalMs,
      backoffMs(this.failures++, { baseMs: this.deps.retryBaseMs ?? 1_000, maxMs: intervalMs }),
    );
    log.error({ err: message, retryInMs: delay, failures: this.failures }, 'discovery failed');
    this.schedule(delay);
  }

  private async cycle(reason: string): Promise<void> {
    const { log, metrics, labeler } = this.deps;
    const endTimer = metrics.discoveryDuration.startTimer();
    const detection = await this.deps.detect();
    endTimer();
    if (detection.kind === 'error') {
      metrics.discoveryErrors.inc();
      this.fail(detection.error);
      return;
    }
    const gpus = detection.kind === 'gpus' ? detection.gpus : [];
    const deviceErrors = detection.kind === 'gpus' ? detection.deviceErrors : [];
    const inventory: Inventory = {
      driver: detection.kind === 'gpus' ? 'present' : 'absent',
      gpus,
      discoveredAt: new Date().toISOString(),
    };
    const changed = JSON.stringify(inventory.gpus) !== JSON.stringify(this.inventory?.gpus);
    this.inventory = inventory;
    metrics.lastSuccessfulDiscovery.setToCurrentTime();
    metrics.gpus.set(gpus.length);
    if (changed) {
      log.info(
        { reason, driver: inventory.driver, gpus: gpus.map((g) => `${g.index}:${g.name}`) },
        'GPU inventory',
      );
    }
    const accept = this.accept;
    const decision = decideHealth({
      baseline: this.remembered.gpus,
      answering: gpus,
      deviceErrors,
      accept,
      announced: this.remembered.announced,
    });
    const { labels, annotations } = this.desiredFor(decision);
    try {
      await labeler.setDesired(labels, annotations);
    } catch (err) {
      this.fail(labeler.state.lastError ?? (err as Error).message);
      return;
    }
    if (decision.acceptHandled && this.accept === accept) this.accept = undefined;
    await this.settle(decision);
    this.failures = 0;
    this.lastError = null;
    this.schedule(this.deps.intervalMs);
  }

  /** Labels from the GPUs the decision describes (the remembered ones while some are lost). */
  private desiredFor(decision: HealthDecision): {
    labels: Labels;
    annotations: Record<string, string | null>;
  } {
    const labels = computeLabels(
      { nodeName: this.deps.nodeName, gpus: decision.labelGpus },
      this.rules,
    );
    // A CPU node has no GPU health; a node whose GPUs all went has one: degraded.
    if (decision.labelGpus.length > 0 || decision.lostCount > 0) {
      labels[GPU_HEALTH_LABEL] = decision.health;
    }
    const annotations: Record<string, string | null> = {
      [GPU_HEALTH_DETAIL_ANNOTATION]: decision.detail,
    };
    if (decision.acceptHandled) annotations[ACCEPT_INVENTORY_ANNOTATION] = null;
    return { labels, annotations };
  }

  /** Once the labels are out: the metric, the state dir and the Event. */
  private async settle(decision: HealthDecision): Promise<void> {
    const { log, metrics } = this.deps;
    this.health = decision;
    metrics.gpusLost.set(decision.lostCount);
    const next = { gpus: decision.baseline, announced: decision.announced };
    if (JSON.stringify(next) !== JSON.stringify(this.remembered)) {
      this.remembered = next;
      await this.deps.remember?.(next).catch((err: unknown) => {
        log.warn({ err: (err as Error).message }, 'could not write the inventory to the state dir');
      });
    }
    const { event } = decision;
    if (event === undefined) return;
    const level = event.type === 'Warning' ? 'warn' : 'info';
    log[level]({ reason: event.reason, lost: decision.lost }, event.message);
    await this.deps.recordEvent?.(event).catch((err: unknown) => {
      log.warn({ err: (err as Error).message, reason: event.reason }, 'could not record the Event');
    });
  }

  readiness(): Readiness {
    const labeler = this.deps.labeler.state;
    const detection =
      this.lastError === null
        ? { ok: this.inventory !== null, detail: this.inventory === null ? 'not yet run' : 'ok' }
        : { ok: false, detail: this.lastError.message };
    const checks = {
      discovery: detection,
      labels: labeler.applied
        ? { ok: true }
        : { ok: false, detail: labeler.lastError ?? 'not yet applied' },
      nodeWatch: labeler.watchHealthy ? { ok: true } : { ok: false, detail: 'not established' },
    };
    return { ready: Object.values(checks).every((c) => c.ok), checks };
  }

  status(): AgentStatus {
    return {
      version: VERSION,
      node: this.deps.nodeName,
      ready: this.readiness().ready,
      inventory: this.inventory,
      host: this.host,
      labels: this.deps.labeler.state.desired ?? null,
      gpuHealth:
        this.health === undefined
          ? null
          : {
              health: this.health.health,
              expected: this.health.expected,
              answering: this.inventory?.gpus.length ?? 0,
              lost: this.health.lostCount,
            },
      lastError: this.lastError,
      consecutiveFailures: this.failures,
      nextDiscoveryAt: this.nextAt?.toISOString() ?? null,
    };
  }
}
