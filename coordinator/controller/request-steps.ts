// Restore and retry on request: the `noma.dev/restore` and `noma.dev/retry` annotations of a
// NodeMaintenance, decided by the pure planner in requests.ts, acted on here, and removed from
// the annotations once decided (docs/state-machine.md, "Restore and retry").
import {
  RESTORE_ANNOTATION,
  RETRY_ANNOTATION,
  parseNodeList,
} from '../../shared/maintenance-keys.js';
import type { StepHost } from './action-steps.js';
import { transition } from './model.js';
import { planRequests } from './requests.js';

/** What acting on requests needs of the run beyond the steps' host. */
export interface RequestRun {
  /** The failed count may have changed: announce a halt or its end, wake waiting nodes. */
  afterRequests(): void;
  /** Starts the node's task again (a retried node). */
  runAgain(name: string): void;
}

export class RequestSteps {
  /** Entries acted on whose removal from the annotation is not seen yet. */
  readonly #decided = new Set<string>();

  constructor(
    private readonly host: StepHost,
    private readonly run: RequestRun,
  ) {}

  /** Acts on the restore/retry annotations, then removes the entries it decided on. */
  async handle(): Promise<void> {
    const annotations = this.host.cr().metadata.annotations ?? {};
    const asked = {
      restore: parseNodeList(annotations[RESTORE_ANNOTATION]),
      retry: parseNodeList(annotations[RETRY_ANNOTATION]),
    };
    // An entry decided here stays in the versions the informer delivers until our removal
    // lands: decide each once, and forget it once a version without it arrives.
    const present = new Set([
      ...asked.restore.map((e) => `restore:${e}`),
      ...asked.retry.map((e) => `retry:${e}`),
    ]);
    for (const k of this.#decided) if (!present.has(k)) this.#decided.delete(k);
    const isNew = (request: string) => (e: string) => !this.#decided.has(`${request}:${e}`);
    const restore = asked.restore.filter(isNew('restore'));
    const retry = asked.retry.filter(isNew('retry'));
    // Decided before, but a removal that failed (or has not landed yet) leaves them there.
    const clear = {
      restore: asked.restore.filter((e) => !isNew('restore')(e)),
      retry: asked.retry.filter((e) => !isNew('retry')(e)),
    };
    if (restore.length === 0 && retry.length === 0) {
      if (clear.restore.length > 0 || clear.retry.length > 0)
        await this.host.deps.clearRequests(clear);
      return;
    }
    const plan = planRequests(this.host.deps.store.nodes(), restore, retry);
    for (const e of plan.doneRestore) this.#decided.add(`restore:${e}`);
    for (const e of plan.doneRetry) this.#decided.add(`retry:${e}`);
    for (const name of plan.restore) await this.#restoreNode(name);
    for (const name of plan.retry) await this.#retryNode(name);
    for (const r of plan.refused) {
      this.host.event(
        'Warning',
        'RequestRefused',
        `${r.request} of ${r.node} refused: ${r.reason}`,
      );
    }
    this.run.afterRequests();
    await this.host.deps.clearRequests({
      restore: [...clear.restore, ...plan.doneRestore],
      retry: [...clear.retry, ...plan.doneRetry],
    });
  }

  /** A failed node back to its initial state, or a node not started yet taken out: Restored. */
  async #restoreNode(name: string): Promise<void> {
    const node = this.host.node(name);
    if (node.phase === 'Failed') await this.host.returnNode(node);
    const { job: _job, ...rest } = this.host.node(name);
    await this.host.setNode(
      name,
      transition(rest, 'Restored', this.host.deps.now(), {
        message:
          node.phase === 'Failed'
            ? 'restored on request: returned to its initial state'
            : 'restored on request before it started: left untouched',
      }),
    );
    this.host.event('Normal', 'NodeRestored', 'restored on request', name);
  }

  /**
   * A failed node goes again from its failed step (next attempt number), after cordon and drain
   * are checked again; steps that succeeded are not run again.
   */
  async #retryNode(name: string): Promise<void> {
    const node = this.host.node(name);
    const {
      actionID: _id,
      job: _job,
      completedAt: _c,
      lastExitCode: _e,
      bootIDBeforeReboot: _b,
      ...rest
    } = node;
    const stepIndex = node.currentActionIndex;
    const attempt = stepIndex === undefined ? undefined : (node.attempt ?? 1) + 1;
    const what =
      stepIndex === undefined ? 'from its drain' : `from step ${stepIndex} (attempt ${attempt})`;
    await this.host.setNode(
      name,
      transition(rest, 'Pending', this.host.deps.now(), {
        message: `retry requested: runs again ${what}`,
        ...(attempt === undefined ? {} : { attempt }),
      }),
    );
    this.host.event('Normal', 'NodeRetried', `retry requested: runs again ${what}`, name);
    this.run.runAgain(name);
  }
}
