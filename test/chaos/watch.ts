// A list-then-watch that survives what the suite does to the API server: a watch that ends
// (or errs) is opened again from the last resourceVersion seen, and a resourceVersion too old
// (410 Gone) lists again, counted as a possible gap. Every version goes to `onVersion`, once.
import { Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ResilientWatch {
  /** Lists that had to start over after the first (versions between may be missing). */
  readonly relists: number;
  readonly reconnects: number;
  stop(): void;
}

type EventType = 'LISTED' | 'ADDED' | 'MODIFIED' | 'DELETED';

interface Listed<T> {
  items: T[];
  metadata?: { resourceVersion?: string };
}

class Watcher<T extends KubernetesObject> implements ResilientWatch {
  relists = 0;
  reconnects = 0;
  private stopped = false;
  private rv = '';
  private abort: () => void = () => undefined;
  private readonly seen = new Set<string>();

  constructor(
    private readonly kc: KubeConfig,
    private readonly path: string,
    private readonly list: () => Promise<Listed<T>>,
    private readonly query: Record<string, string>,
    private readonly onVersion: (type: EventType, obj: T) => void,
  ) {}

  /** Each version once, however often a list or a re-opened watch reports it. */
  private deliver(type: EventType, obj: T): void {
    const meta = obj.metadata;
    const key = `${type === 'DELETED' ? 'D' : ''}${meta?.uid ?? ''}@${meta?.resourceVersion ?? ''}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.onVersion(type, obj);
  }

  async relist(): Promise<void> {
    const got = await this.list();
    for (const item of got.items) this.deliver('LISTED', item);
    this.rv = got.metadata?.resourceVersion ?? '';
  }

  open(): void {
    if (this.stopped) return;
    let gone = false;
    const query = { ...this.query, resourceVersion: this.rv, allowWatchBookmarks: 'true' };
    const onEvent = (type: string, obj: T & { code?: number }): void => {
      if (type === 'ERROR') {
        gone = obj.code === 410;
        return;
      }
      const rv = obj.metadata?.resourceVersion;
      if (rv !== undefined) this.rv = rv;
      if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') this.deliver(type, obj);
    };
    new Watch(this.kc)
      .watch(this.path, query, onEvent, () => void this.reopen(gone))
      .then(
        (req) => {
          this.abort = () => {
            req.abort();
          };
        },
        () => void this.reopen(false),
      );
  }

  private isStopped(): boolean {
    return this.stopped;
  }

  private async reopen(gone: boolean): Promise<void> {
    if (this.isStopped()) return;
    this.reconnects += 1;
    await sleep(200);
    if (gone) {
      this.relists += 1;
      // The API server may still be unreachable: keep trying until it lists.
      for (;;) {
        if (this.isStopped()) return;
        try {
          await this.relist();
          break;
        } catch {
          await sleep(500);
        }
      }
    }
    this.open();
  }

  stop(): void {
    this.stopped = true;
    this.abort();
  }
}

/** Lists `path`, delivers every item, then watches from there until stopped. */
export async function watchEvery<T extends KubernetesObject>(
  kc: KubeConfig,
  path: string,
  list: () => Promise<Listed<T>>,
  query: Record<string, string>,
  onVersion: (type: EventType, obj: T) => void,
): Promise<ResilientWatch> {
  const w = new Watcher(kc, path, list, query, onVersion);
  await w.relist();
  w.open();
  return w;
}
