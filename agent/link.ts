// The agent's side of the link to the coordinator: connect over TLS (the coordinator's CA from
// a mounted file), authenticate with the projected ServiceAccount token, say hello, run what
// the coordinator sends, reconnect with jittered capped backoff when the link drops. Liveness:
// the coordinator pings; a link with no ping for a while is dead and is dropped here.
import { readFile } from 'node:fs/promises';
import { Counter, Gauge, type Registry } from 'prom-client';
import WebSocket from 'ws';
import { backoffMs } from '../shared/duration.js';
import type { Logger } from '../shared/log.js';
import {
  AGENT_LINK_PATH,
  COORDINATOR_SENDS,
  decodeFrame,
  encode,
  MAX_FRAME_BYTES,
  NODE_HEADER,
  type Message,
  type MessageType,
} from '../shared/protocol.js';
import { VERSION } from '../shared/version.js';
import type { HostExecutor } from './actions/executor.js';
import { Ledger } from './actions/ledger.js';
import { ActionRunner } from './actions/runner.js';

export interface LinkOptions {
  readonly log: Logger;
  readonly url: string;
  readonly nodeName: string;
  /** PEM file with the CA that signed the coordinator's certificate. */
  readonly caFile: string | undefined;
  /** Re-read before every connect: projected tokens rotate. */
  readonly tokenFile: string;
  readonly stateDir: string;
  readonly executor: HostExecutor;
  readonly inventory: () => Record<string, unknown> | null;
  readonly registry: Registry;
  /** Readiness fails after the coordinator has been unreachable this long. */
  readonly unreachableAfterMs: number;
  readonly backoff?: { baseMs: number; maxMs: number };
}

export interface LinkState {
  readonly connected: boolean;
  readonly since: string;
  readonly lastError: string | null;
  readonly attempts: number;
}

export class AgentLink {
  private ws: WebSocket | undefined;
  private runner: ActionRunner | undefined;
  private ledger: Ledger | undefined;
  private bootID = '';
  private stopped = false;
  private attempt = 0;
  private connected = false;
  private since = Date.now();
  private lastError: string | null = null;
  private retryTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private heartbeatMs = 10_000;
  private readonly rejected: Counter<'code'>;
  private readonly connectedGauge: Gauge;
  private readonly connects: Counter;

  constructor(private readonly opts: LinkOptions) {
    this.rejected = new Counter({
      name: 'noma_agent_link_frames_rejected_total',
      help: 'Frames from the coordinator refused by validation, by error code',
      labelNames: ['code'],
      registers: [opts.registry],
    });
    this.connectedGauge = new Gauge({
      name: 'noma_agent_link_connected',
      help: '1 while the link to the coordinator is up',
      registers: [opts.registry],
    });
    this.connects = new Counter({
      name: 'noma_agent_link_connects_total',
      help: 'Successful connections to the coordinator',
      registers: [opts.registry],
    });
  }

  /** Loads the ledger (closing what a previous agent left open) and connects. */
  async start(): Promise<void> {
    this.bootID = await this.opts.executor.bootID();
    const ledger = new Ledger(this.opts.stateDir);
    await ledger.load(this.bootID);
    this.ledger = ledger;
    this.runner = new ActionRunner({
      log: this.opts.log.child({ component: 'actions' }),
      ledger,
      executor: this.opts.executor,
      bootID: this.bootID,
      result: (r) => {
        this.send('action.result', r);
      },
      progress: (p) => {
        this.send('action.progress', p);
      },
    });
    for (const u of ledger.unreadableFiles()) {
      this.opts.log.error(
        { file: u.file, err: u.reason },
        'ledger record unreadable; its action is refused',
      );
    }
    // Actions a previous agent started still run: follow them before the coordinator asks.
    await this.runner.resume();
    this.connect();
  }

  state(): LinkState {
    return {
      connected: this.connected,
      since: new Date(this.since).toISOString(),
      lastError: this.lastError,
      attempts: this.attempt,
    };
  }

  readiness(): { ok: boolean; detail?: string } {
    if (this.connected) return { ok: true };
    const down = Date.now() - this.since;
    const detail = `coordinator unreachable for ${Math.round(down / 1000)} s${
      this.lastError === null ? '' : `: ${this.lastError}`
    }`;
    return { ok: down < this.opts.unreachableAfterMs, detail };
  }

  private send<K extends MessageType>(type: K, body: Parameters<typeof encode<K>>[1]): void {
    const ws = this.ws;
    if (ws?.readyState !== WebSocket.OPEN) return;
    ws.send(encode(type, body));
  }

  private connect(): void {
    if (this.stopped) return;
    void this.open().catch((err: unknown) => {
      this.onDown((err as Error).message);
    });
  }

  private async open(): Promise<void> {
    const [token, ca] = await Promise.all([
      readFile(this.opts.tokenFile, 'utf8'),
      this.opts.caFile === undefined ? undefined : readFile(this.opts.caFile),
    ]);
    if (this.stopped) return;
    const url = new URL(AGENT_LINK_PATH, this.opts.url);
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${token.trim()}`, [NODE_HEADER]: this.opts.nodeName },
      ...(ca === undefined ? {} : { ca }),
      maxPayload: MAX_FRAME_BYTES,
      handshakeTimeout: 10_000,
      perMessageDeflate: false,
    });
    this.ws = ws;
    let closedReason: string | undefined;
    ws.on('unexpected-response', (_req, res) => {
      closedReason = `coordinator refused the connection: HTTP ${res.statusCode ?? 0} ${String(
        res.headers['x-noma-reason'] ?? res.statusMessage ?? '',
      )}`;
      ws.terminate();
    });
    ws.on('error', (err) => {
      closedReason ??= err.message;
    });
    ws.on('open', () => {
      this.armPingTimeout();
      this.send('hello', {
        node: this.opts.nodeName,
        bootID: this.bootID,
        version: VERSION,
        inventory: this.opts.inventory(),
        actions: (this.ledger?.list() ?? []).map((r) => ({ id: r.id, state: r.state })),
      });
    });
    ws.on('ping', () => {
      this.armPingTimeout();
    });
    ws.on('message', (data: Buffer, isBinary) => {
      this.onFrame(isBinary ? data : data.toString('utf8'));
    });
    ws.on('close', (code, reason) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.onDown(
        closedReason ?? `closed (${code}${reason.length > 0 ? ` ${reason.toString()}` : ''})`,
      );
    });
  }

  private onFrame(data: Buffer | string): void {
    const decoded = decodeFrame(data, COORDINATOR_SENDS);
    if (!decoded.ok) {
      this.rejected.inc({ code: decoded.code });
      this.opts.log.warn({ code: decoded.code, err: decoded.message }, 'frame refused');
      this.send('error', {
        code: decoded.code,
        message: decoded.message,
        ...(decoded.ref === undefined ? {} : { ref: decoded.ref }),
      });
      return;
    }
    this.handle(decoded.message);
  }

  private handle(msg: Message): void {
    switch (msg.type) {
      case 'welcome':
        if (msg.node !== this.opts.nodeName) {
          this.opts.log.error({ node: msg.node }, 'coordinator welcomed another node; dropping');
          this.ws?.terminate();
          return;
        }
        this.connected = true;
        this.since = Date.now();
        this.lastError = null;
        this.attempt = 0;
        this.connects.inc();
        this.connectedGauge.set(1);
        this.heartbeatMs = msg.heartbeatMs;
        this.armPingTimeout();
        clearInterval(this.heartbeatTimer);
        this.heartbeatTimer = setInterval(() => {
          this.send('heartbeat', { bootID: this.bootID, running: this.runner?.runningIds() ?? [] });
        }, msg.heartbeatMs);
        this.opts.log.info({ url: this.opts.url }, 'connected to the coordinator');
        return;
      case 'action.start':
        void this.runner?.start(msg);
        return;
      case 'action.cancel':
        this.runner?.cancel(msg.id);
        return;
      case 'error':
        this.opts.log.warn({ code: msg.code, err: msg.message, ref: msg.ref }, 'coordinator error');
        return;
      default:
        return;
    }
  }

  /** No ping for two heartbeats and a bit: the link is dead even if TCP has not noticed. */
  private armPingTimeout(): void {
    clearTimeout(this.pingTimer);
    const ws = this.ws;
    this.pingTimer = setTimeout(
      () => {
        this.opts.log.warn('no ping from the coordinator; dropping the link');
        ws?.terminate();
      },
      this.heartbeatMs * 2 + 1_000,
    );
  }

  private onDown(reason: string): void {
    clearTimeout(this.pingTimer);
    clearInterval(this.heartbeatTimer);
    if (this.connected) {
      this.connected = false;
      this.since = Date.now();
      this.connectedGauge.set(0);
      this.opts.log.warn({ reason }, 'link to the coordinator lost');
    }
    this.lastError = reason;
    if (this.stopped) return;
    const delay = backoffMs(this.attempt++, this.opts.backoff ?? { baseMs: 500, maxMs: 30_000 });
    this.opts.log.debug({ reason, retryInMs: delay }, 'coordinator not reachable');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.connect();
    }, delay);
  }

  private dropSocket(): void {
    const ws = this.ws;
    this.ws = undefined;
    clearTimeout(this.pingTimer);
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.retryTimer);
    this.connected = false;
    this.since = Date.now();
    this.connectedGauge.set(0);
    ws?.terminate();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.dropSocket();
    await this.runner?.stop();
  }
}
