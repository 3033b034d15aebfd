// `noma status --watch`: the maintenances as a list and then a watch from the list's
// resourceVersion, so that the view changes when they do instead of on a timer. A watch that
// the server ends is started again where it stopped; one that fails (connection lost, 410 Gone
// when the resourceVersion is too old) starts over with a fresh list, after the one backoff
// (shared/retry.ts). The Kubernetes side is a port (WatchSource): tests give faults as inputs.
import { isNotFound, isTransient, statusCode } from '../../shared/kube-errors.js';
import { retry } from '../../shared/retry.js';

/** What the API server gives: a list with its resourceVersion, then events from there. */
export interface WatchSource {
  /** The objects now (a named one: 404 if it does not exist). */
  list(): Promise<{ readonly items: readonly unknown[]; readonly resourceVersion: string }>;
  /**
   * Calls `onEvent` for each event after `resourceVersion`; resolves when the server ends the
   * watch or `signal` aborts, rejects when it fails.
   */
  watch(
    resourceVersion: string,
    onEvent: (type: string, object: unknown) => void,
    signal: AbortSignal,
  ): Promise<void>;
}

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** One object that changed, keyed `namespace/name`; `object` is the last one seen. */
export interface Change {
  readonly type: ChangeType;
  readonly key: string;
  readonly object: unknown;
}

export interface FollowHooks {
  /** The objects after a change, and what changed (never empty). */
  readonly onChange: (objects: ReadonlyMap<string, unknown>, changes: readonly Change[]) => void;
  /** The watch or the list failed; the next try is in `delayMs`. */
  readonly onTrouble: (err: unknown, delayMs: number) => void;
}

/** Why following ended: the user interrupted, or the one maintenance followed was deleted. */
export type FollowEnd = 'interrupted' | 'deleted';

interface Meta {
  readonly namespace?: string;
  readonly name?: string;
  readonly resourceVersion?: string;
}
const metaOf = (obj: unknown): Meta =>
  (obj as { metadata?: Meta } | null | undefined)?.metadata ?? {};

export const keyOf = (obj: unknown): string => {
  const m = metaOf(obj);
  return `${m.namespace ?? ''}/${m.name ?? ''}`;
};

/** Pure: what changed between two sets of objects (by resourceVersion), in key order. */
export function diff(
  before: ReadonlyMap<string, unknown>,
  after: ReadonlyMap<string, unknown>,
): Change[] {
  const changes: Change[] = [];
  for (const [key, object] of after) {
    const old = before.get(key);
    if (old === undefined) changes.push({ type: 'ADDED', key, object });
    else if (metaOf(old).resourceVersion !== metaOf(object).resourceVersion) {
      changes.push({ type: 'MODIFIED', key, object });
    }
  }
  for (const [key, object] of before) {
    if (!after.has(key)) changes.push({ type: 'DELETED', key, object });
  }
  return changes.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** A watch's ERROR event: the Status it carries, as an error the classifier understands. */
export class WatchError extends Error {
  constructor(
    readonly code: number | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'WatchError';
  }
}

/**
 * Pure: the objects after one watch event, and the resourceVersion to resume from. BOOKMARK
 * only moves the resourceVersion; ERROR throws (410 Gone: the list must be read again).
 */
export function applyEvent(
  objects: ReadonlyMap<string, unknown>,
  type: string,
  object: unknown,
): { objects: Map<string, unknown>; resourceVersion: string | undefined } {
  const next = new Map(objects);
  const rv = metaOf(object).resourceVersion;
  switch (type) {
    case 'ADDED':
    case 'MODIFIED':
      next.set(keyOf(object), object);
      break;
    case 'DELETED':
      next.delete(keyOf(object));
      break;
    case 'BOOKMARK':
      break;
    case 'ERROR': {
      const status = object as { code?: unknown; message?: unknown } | null;
      const code = typeof status?.code === 'number' ? status.code : undefined;
      const message = typeof status?.message === 'string' ? status.message : 'watch error';
      throw new WatchError(code, `watch: ${code === undefined ? '' : `${code} `}${message}`);
    }
    default:
      throw new WatchError(undefined, `watch: unknown event type ${type.slice(0, 40)}`);
  }
  return { objects: next, resourceVersion: rv };
}

/** Worth another list and watch: what is transient, and 410 Gone (a resourceVersion too old). */
export const worthRetrying = (err: unknown): boolean => isTransient(err) || statusCode(err) === 410;

/** `work`, or undefined as soon as `signal` aborts (the work is left to settle on its own). */
async function unlessAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  let onAbort = (): void => undefined;
  const stopped = new Promise<undefined>((resolve) => {
    onAbort = () => {
      resolve(undefined);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, stopped]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** One `follow`: the objects as last published, and whether this try got anywhere. */
class Follower {
  #objects: ReadonlyMap<string, unknown> = new Map<string, unknown>();
  progressed = false;

  constructor(
    private readonly source: WatchSource,
    private readonly hooks: FollowHooks,
    private readonly signal: AbortSignal,
    private readonly named: boolean,
  ) {}

  /** Whether the one object followed has been seen (so a 404 now means it was deleted). */
  get seen(): boolean {
    return this.named && this.#objects.size > 0;
  }

  publish(next: ReadonlyMap<string, unknown>): FollowEnd | undefined {
    const changes = diff(this.#objects, next);
    const wasSeen = this.seen;
    this.#objects = next;
    this.progressed = true;
    if (changes.length > 0) this.hooks.onChange(next, changes);
    return wasSeen && next.size === 0 ? 'deleted' : undefined;
  }

  /** A list, then watches from its resourceVersion, until the end or an error (thrown). */
  async session(): Promise<FollowEnd> {
    this.progressed = false;
    const listed = await unlessAborted(this.source.list(), this.signal);
    if (listed === undefined) return 'interrupted';
    const end = this.publish(new Map(listed.items.map((o) => [keyOf(o), o])));
    if (end !== undefined) return end;
    let rv = listed.resourceVersion;
    while (!this.signal.aborted) {
      const watched = await this.watchOnce(rv);
      if (watched.end !== undefined) return watched.end;
      // Ended by the server (its timeout): the next watch resumes where this one stopped.
      rv = watched.resourceVersion;
    }
    return 'interrupted';
  }

  private async watchOnce(
    from: string,
  ): Promise<{ end: FollowEnd | undefined; resourceVersion: string }> {
    const stop = new AbortController();
    const forward = (): void => {
      stop.abort();
    };
    this.signal.addEventListener('abort', forward, { once: true });
    let rv = from;
    let failure: Error | undefined;
    let end: FollowEnd | undefined;
    const onEvent = (type: string, object: unknown): void => {
      if (stop.signal.aborted) return;
      try {
        const r = applyEvent(this.#objects, type, object);
        rv = r.resourceVersion ?? rv;
        end = this.publish(r.objects);
      } catch (err) {
        failure = err instanceof Error ? err : new Error(String(err));
      }
      if (failure !== undefined || end !== undefined) stop.abort();
    };
    try {
      await this.source.watch(rv, onEvent, stop.signal);
    } finally {
      this.signal.removeEventListener('abort', forward);
    }
    if (failure !== undefined) throw failure;
    return { end: end ?? (this.signal.aborted ? 'interrupted' : undefined), resourceVersion: rv };
  }
}

/**
 * Follows the objects `source` gives until `signal` aborts or, when `named`, the one object is
 * deleted. What fails is tried again, with backoff, while it is worth it; what is not (403, or
 * 404 for a named object never seen) is thrown.
 */
export async function follow(
  source: WatchSource,
  hooks: FollowHooks,
  signal: AbortSignal,
  named: boolean,
  backoff: { readonly baseMs: number; readonly maxMs: number } = { baseMs: 500, maxMs: 30_000 },
): Promise<FollowEnd> {
  const f = new Follower(source, hooks, signal, named);
  // A named object gone while the watch was down: deleted, not an error.
  const deletedMeanwhile = (err: unknown): boolean => f.seen && isNotFound(err);
  try {
    return await retry(() => f.session(), {
      ...backoff,
      signal,
      progressed: () => f.progressed,
      retryable: (err) => !deletedMeanwhile(err) && worthRetrying(err),
      onRetry: (err, _attempt, delayMs) => {
        hooks.onTrouble(err, delayMs);
      },
    });
  } catch (err) {
    if (signal.aborted) return 'interrupted';
    if (deletedMeanwhile(err)) return f.publish(new Map()) ?? 'deleted';
    throw err;
  }
}
