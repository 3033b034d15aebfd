// What the dashboard's watches hold, the view derived from it, and the pages that follow it.
// A change schedules a push; pushes are at least `minIntervalMs` apart (the first after a quiet
// spell goes at once), so a burst of watch events (a maintenance of 2000 nodes writes its
// status many times a second) costs the page a few patches a second, not one per event.
import {
  SOURCE_NAMES,
  buildView,
  diffView,
  pushDelay,
  type DashboardView,
  type SourceName,
  type SourceState,
  type ViewMeta,
} from './state.js';
import type { CoreV1Event, V1Node } from '@kubernetes/client-node';

/** A page's stream: the whole view once, then patches (static/model.js applies them). */
export type Subscriber = (event: 'snapshot' | 'patch', json: string) => void;

export interface HubOptions {
  /** Pushes at most every this many ms (default 250: at most 4 a second). */
  readonly minIntervalMs?: number;
  /** Told when a source's state changes (the terminal says it too). */
  readonly onSourceState?: (source: SourceName, state: SourceState) => void;
}

const EMPTY: ReadonlyMap<string, unknown> = new Map();

export class DashboardHub {
  readonly #objects = new Map<SourceName, ReadonlyMap<string, unknown>>();
  readonly #sources: Record<SourceName, SourceState>;
  readonly #subscribers = new Set<Subscriber>();
  readonly #minIntervalMs: number;
  readonly #opts: HubOptions;
  #view: DashboardView;
  #lastPushAt: number | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly meta: ViewMeta,
    opts: HubOptions = {},
  ) {
    this.#opts = opts;
    this.#minIntervalMs = opts.minIntervalMs ?? 250;
    const connecting: SourceState = { state: 'connecting', error: null };
    this.#sources = Object.fromEntries(SOURCE_NAMES.map((s) => [s, connecting])) as Record<
      SourceName,
      SourceState
    >;
    this.#view = this.#build();
  }

  /** The objects a watch holds now (after a list or an event). */
  update(source: SourceName, objects: ReadonlyMap<string, unknown>): void {
    this.#objects.set(source, objects);
    this.#schedule();
  }

  /** A watch listed (live) or failed (trouble, with why); unchanged states are ignored. */
  setSource(source: SourceName, state: SourceState): void {
    const old = this.#sources[source];
    if (old.state === state.state && old.error === state.error) return;
    this.#sources[source] = state;
    this.#opts.onSourceState?.(source, state);
    this.#schedule();
  }

  /** The view as last pushed. */
  get view(): DashboardView {
    return this.#view;
  }

  /** Sends the view now, then each patch; returns the unsubscribe. */
  subscribe(subscriber: Subscriber): () => void {
    subscriber('snapshot', JSON.stringify(this.#view));
    this.#subscribers.add(subscriber);
    return () => {
      this.#subscribers.delete(subscriber);
    };
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#subscribers.clear();
  }

  #build(): DashboardView {
    const values = (s: SourceName) => (this.#objects.get(s) ?? EMPTY).values();
    return buildView({
      meta: this.meta,
      nodes: values('nodes') as Iterable<V1Node>,
      maintenances: values('maintenances'),
      events: [...values('maintenanceEvents'), ...values('nodeEvents')] as CoreV1Event[],
      sources: { ...this.#sources },
    });
  }

  #schedule(): void {
    if (this.#timer !== undefined) return;
    const delay = pushDelay(this.#lastPushAt, Date.now(), this.#minIntervalMs);
    // Even at 0: the events of one watch chunk arrive together and go in one patch.
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#push();
    }, delay);
  }

  #push(): void {
    const next = this.#build();
    const patch = diffView(this.#view, next);
    this.#view = next;
    if (patch === undefined) return;
    this.#lastPushAt = Date.now();
    const json = JSON.stringify(patch);
    for (const s of this.#subscribers) s('patch', json);
  }
}
