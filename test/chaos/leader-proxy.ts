// The agents' way to the leader, as in a cluster: deploy/ points a selector-less Service at
// the leader through an EndpointSlice the leader publishes. Here a TCP proxy on one port sends
// each new connection to the agent port of the coordinator that holds the Lease (TLS passes
// through untouched). A connection already open stays with the coordinator it reached, as an
// established TCP connection to a pod IP does after the endpoint moves: whether a deposed
// leader lets go of its agents is the coordinator's business, and the proxy counts what it
// still holds.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface LeaderProxyOptions {
  /** identity → agent port of that coordinator. */
  readonly routes: ReadonlyMap<string, number>;
  /** The Lease's holderIdentity now (undefined: none, or unreadable). */
  readonly holder: () => Promise<string | undefined>;
  readonly pollMs?: number;
  readonly onHolder?: (holder: string | undefined) => void;
}

export class LeaderProxy {
  private server: Server | undefined;
  private current: string | undefined;
  private stopped = false;
  private readonly open = new Map<string, Set<Socket>>();
  port = 0;

  constructor(private readonly opts: LeaderProxyOptions) {}

  /** The holder last read (reads may hang while the API server is stopped: then the last). */
  get holder(): string | undefined {
    return this.current;
  }

  /** Agent connections open to this coordinator through the proxy. */
  connectionsTo(identity: string): number {
    return this.open.get(identity)?.size ?? 0;
  }

  async start(): Promise<number> {
    this.server = createServer((client) => {
      this.route(client);
    });
    await new Promise<void>((res) => this.server?.listen(0, '127.0.0.1', res));
    const addr = this.server.address();
    this.port = typeof addr === 'object' && addr !== null ? addr.port : 0;
    void this.poll();
    return this.port;
  }

  private async poll(): Promise<void> {
    while (!this.stopped) {
      // Bounded: a read that hangs (API server stopped) keeps the last holder, as a stale
      // EndpointSlice would.
      const next = await Promise.race([
        this.opts.holder().catch(() => this.current),
        sleep(2_000).then(() => this.current),
      ]);
      if (next !== this.current) {
        this.current = next;
        this.opts.onHolder?.(next);
      }
      await sleep(this.opts.pollMs ?? 100);
    }
  }

  private route(client: Socket): void {
    const identity = this.current;
    const port = identity === undefined ? undefined : this.opts.routes.get(identity);
    if (identity === undefined || port === undefined) {
      client.destroy();
      return;
    }
    const upstream = connect(port, '127.0.0.1');
    const set = this.open.get(identity) ?? new Set<Socket>();
    this.open.set(identity, set);
    set.add(client);
    const close = (): void => {
      set.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const set of this.open.values()) for (const s of set) s.destroy();
    await new Promise<void>((res) => {
      if (this.server === undefined) res();
      else
        this.server.close(() => {
          res();
        });
    });
  }
}
