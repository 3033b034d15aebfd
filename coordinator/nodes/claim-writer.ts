// The node's current phase in its claim annotation (noma.dev/claim), the contract for
// schedulers (docs/state-machine.md). These writes are best effort and off the critical path:
// nothing waits for them, each node has at most one in flight and only its latest phase is
// written, and few are in flight at once so that cordons and drains (which share the Node call
// limit of main.ts) are not queued behind them at 2000 nodes.
import type { Logger } from '../../shared/log.js';
import type { Claim } from './claims.js';

const DEFAULT_MAX_IN_FLIGHT = 8;

export class ClaimPhaseWriter {
  /** The phase each node should show, not yet written. */
  readonly #want = new Map<string, Claim>();
  /** The phase last written (by us, or by a cordon's own write). */
  readonly #written = new Map<string, string>();
  readonly #inFlight = new Set<string>();
  /** Nodes with a phase to write waiting for a free slot, in order. */
  readonly #ready = new Set<string>();
  #idle: (() => void)[] = [];

  constructor(
    private readonly write: (name: string, claim: Claim) => Promise<void>,
    private readonly log: Logger,
    private readonly maxInFlight = DEFAULT_MAX_IN_FLIGHT,
  ) {}

  /** The node's claim should now say `claim.phase`; written soon, not awaited. */
  set(name: string, claim: Claim): void {
    this.#want.set(name, claim);
    this.#pump(name);
  }

  /** A write made elsewhere (the cordon writes the claim with the node's cordon). */
  written(name: string, phase: string): void {
    this.#written.set(name, phase);
  }

  /** The claim is gone (the node returned or was released): nothing more to write for it. */
  forget(name: string): void {
    this.#want.delete(name);
    this.#ready.delete(name);
    this.#written.delete(name);
  }

  /** Resolves when nothing is in flight or waiting (tests, a stopping run). */
  idle(): Promise<void> {
    if (this.#inFlight.size === 0 && this.#ready.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #pump(name: string): void {
    if (this.#inFlight.has(name)) return; // its write's end looks again
    const want = this.#want.get(name);
    if (want === undefined) return;
    if (this.#written.get(name) === want.phase) {
      this.#want.delete(name);
      return;
    }
    if (this.#inFlight.size >= this.maxInFlight) {
      this.#ready.add(name);
      return;
    }
    this.#ready.delete(name);
    this.#want.delete(name);
    this.#inFlight.add(name);
    this.write(name, want)
      .then(
        () => {
          this.#written.set(name, want.phase);
        },
        (err: unknown) => {
          // Best effort: the next phase change writes the claim again.
          this.log.warn({ err, node: name, phase: want.phase }, 'claim phase not written');
        },
      )
      .finally(() => {
        this.#inFlight.delete(name);
        this.#pump(name);
        const next = this.#ready.values().next();
        if (!next.done) this.#pump(next.value);
        if (this.#inFlight.size === 0 && this.#ready.size === 0) {
          for (const r of this.#idle.splice(0)) r();
        }
      });
  }
}
