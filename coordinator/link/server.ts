// The coordinator's side of the agent link: a TLS WebSocket server. Authentication happens in
// the HTTP upgrade handler (ws noServer), before any frame is read; a connection is bound to the
// node of its token and can speak only for that node. A second connection for a node replaces
// the first. The server pings every heartbeat and terminates sockets that missed a pong.
// Under abuse: upgrades pass a per-source rate and a cap on TokenReviews in flight (503 past
// either), must finish TLS, upgrade, authentication and hello in time, and a connection ends
// when its token expires or its bound pod is deleted. What a connection stores is bounded by
// the actions the coordinator dispatched to its node: frames about any other are refused.
import { createServer, type Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { Counter, Gauge, type Registry } from 'prom-client';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../../shared/log.js';
import {
  AGENT_LINK_PATH,
  AGENT_SENDS,
  CLOSE_CREDENTIALS,
  CLOSE_PROTOCOL,
  CLOSE_REPLACED,
  decodeFrame,
  encode,
  MAX_FRAME_BYTES,
  NODE_HEADER,
  type MessageOf,
  type MessageType,
} from '../../shared/protocol.js';
import { setLongTimeout, type LongTimeout } from '../../shared/timers.js';
import type { AgentIdentity, AuthResult, BoundPod } from './auth.js';
import { UpgradeGate } from './upgrade-gate.js';

export const DEFAULT_MAX_AUTHENTICATING = 32;
export const DEFAULT_UPGRADE_RATE = { perSecond: 10, burst: 20 };
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5_000;
/** Error replies are dropped while this much is unsent: a peer that never reads grows nothing. */
const MAX_REPLY_BACKLOG = 64 * 1024;
/** Pods seen deleted are remembered this long, for a connection authenticated meanwhile. */
const GONE_KEEP_MS = 5 * 60_000;
const GONE_MAX = 4096;

export interface AgentInfo {
  readonly node: string;
  readonly version: string;
  readonly bootID: string;
  readonly inventory: unknown;
  readonly connectedAt: string;
  readonly lastHeartbeat: string;
  readonly remote: string;
  /** Actions the agent reports running, with the latest output tail it sent. */
  readonly running: Record<string, { state: string; outputTail?: string }>;
}

interface Conn {
  readonly ws: WebSocket;
  readonly node: string;
  readonly remote: string;
  readonly connectedAt: Date;
  /** The pod its token is bound to: the connection ends with it. */
  readonly pod: BoundPod | undefined;
  /** When its authentication began (Date.now): a pod list taken later judges it. */
  readonly authStartedAt: number;
  hello: MessageOf<'hello'> | undefined;
  lastHeartbeat: Date;
  alive: boolean;
  /** Only actions the coordinator dispatched to this node (LinkHandlers.expects). */
  running: Map<string, { state: string; outputTail?: string }>;
  /** Drops the connection unless it says hello in time; cleared by the hello. */
  deadline: NodeJS.Timeout | undefined;
  expiry: LongTimeout | undefined;
}

export interface LinkHandlers {
  /** The agent of `node` said hello (connected, reconnected or restarted). */
  onHello(node: string, hello: MessageOf<'hello'>): void;
  onResult(node: string, result: MessageOf<'action.result'>): void;
  /**
   * Whether action `id` was dispatched to `node` and is waited on: frames about any other
   * action are refused, so what an agent can make the coordinator keep is bounded.
   */
  expects(node: string, id: string): boolean;
}

/** What a pod watch tells the link (coordinator/link/pod-watch.ts). */
export interface PodSink {
  /** A pod was deleted: connections bound to it (the same UID, when both are known) end. */
  podGone(namespace: string, name: string, uid: string | undefined): void;
  /**
   * The pods of `namespace` as listed (name → UID) by a list begun at `listedAt` (Date.now):
   * connections whose authentication began before then and whose pod is not there end.
   */
  podsListed(namespace: string, pods: ReadonlyMap<string, string>, listedAt: number): void;
}

export interface LinkServerOptions {
  readonly log: Logger;
  readonly port: number;
  readonly host?: string;
  readonly tls: { readonly cert: string | Buffer; readonly key: string | Buffer };
  readonly authenticate: (token: string) => Promise<AuthResult>;
  readonly heartbeatMs: number;
  readonly registry: Registry;
  readonly maxFrameBytes?: number;
  /** Upgrades authenticating (a TokenReview) at once; more get 503 (default 32). */
  readonly maxAuthenticating?: number;
  /** Upgrades per source address: rate per second and burst (default 10/s, 20). */
  readonly upgradeRate?: { readonly perSecond: number; readonly burst: number };
  /** TLS within this, then upgrade, authentication and hello within this (default 5 s). */
  readonly handshakeTimeoutMs?: number;
  /** The clock tokens expire on (default Date.now; a test skews it to reach an expiry). */
  readonly now?: () => number;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Refuses an upgrade with a plain HTTP answer; the reason travels in a header for the agent. */
function refuse(socket: Duplex, status: number, reason: string, retryAfterS?: number): void {
  const safe = reason.replace(/[^\x20-\x7e]/g, '?').slice(0, 256);
  const retry = retryAfterS === undefined ? '' : `Retry-After: ${retryAfterS}\r\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n` +
      `Connection: close\r\n${retry}X-Noma-Reason: ${safe}\r\nContent-Length: 0\r\n\r\n`,
  );
  socket.destroy();
}

interface LinkMetrics {
  readonly refused: Counter<'reason'>;
  readonly rejectedFrames: Counter<'code'>;
  readonly replaced: Counter;
  readonly terminated: Counter;
  readonly upgradesRefused: Counter<'reason'>;
  readonly framesRefused: Counter<'reason'>;
  readonly revoked: Counter<'reason'>;
}

function linkMetrics(
  registry: Registry,
  connected: () => number,
  authenticating: () => number,
): LinkMetrics {
  const counter = <L extends string>(name: string, help: string, labelNames: L[] = []) =>
    new Counter<L>({ name, help, labelNames, registers: [registry] });
  new Gauge({
    name: 'noma_agents_connected',
    help: 'Agents connected to this coordinator (said hello)',
    registers: [registry],
    collect() {
      this.set(connected());
    },
  });
  new Gauge({
    name: 'noma_link_authenticating',
    help: 'Agent link upgrades waiting for their TokenReview now',
    registers: [registry],
    collect() {
      this.set(authenticating());
    },
  });
  return {
    refused: counter(
      'noma_agent_connections_refused_total',
      'Agent connections refused at upgrade, by reason',
      ['reason'],
    ),
    rejectedFrames: counter(
      'noma_agent_frames_rejected_total',
      'Frames from agents refused by validation or size, by error code',
      ['code'],
    ),
    replaced: counter(
      'noma_agent_connections_replaced_total',
      'Agent connections closed because a newer one for the same node arrived',
    ),
    terminated: counter(
      'noma_agent_connections_dead_total',
      'Agent connections terminated for missing a pong',
    ),
    upgradesRefused: counter(
      'noma_link_upgrades_refused_total',
      'Agent link upgrades answered 503 (reason rate, busy) or dropped for a slow handshake (handshake-timeout)',
      ['reason'],
    ),
    framesRefused: counter(
      'noma_link_frames_refused_total',
      'Agent frames refused and not stored (not-dispatched: about an action not sent to that node)',
      ['reason'],
    ),
    revoked: counter(
      'noma_link_connections_revoked_total',
      'Agent connections closed because their token expired or their bound pod was deleted',
      ['reason'],
    ),
  };
}

export class AgentLinkServer implements PodSink {
  private readonly conns = new Map<string, Conn>();
  /** Handshake deadlines of sockets not yet through their hello, by TLS socket. */
  private readonly deadlines = new WeakMap<Duplex, NodeJS.Timeout>();
  /** Pod UIDs seen deleted lately (UID → when): a token of one is refused even if reviewed. */
  private readonly goneUids = new Map<string, number>();
  private readonly gate: UpgradeGate;
  private readonly now: () => number;
  /** Nodes whose agent said hello since this server started (the downtime watch asks). */
  private readonly helloed = new Set<string>();
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private readonly pingTimer: NodeJS.Timeout;
  private readonly log: Logger;
  private handlers: LinkHandlers | undefined;
  private readonly m: LinkMetrics;
  /** When a refusal was last logged, and how many were not since. */
  private refusalLog = { at: 0, suppressed: 0 };

  constructor(private readonly opts: LinkServerOptions) {
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
    const rate = opts.upgradeRate ?? DEFAULT_UPGRADE_RATE;
    this.gate = new UpgradeGate({
      maxAuthenticating: opts.maxAuthenticating ?? DEFAULT_MAX_AUTHENTICATING,
      ratePerSecond: rate.perSecond,
      burst: rate.burst,
    });
    const handshakeMs = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.server = createServer(
      { cert: opts.tls.cert, key: opts.tls.key, handshakeTimeout: handshakeMs },
      (_req, res) => {
        res.writeHead(426, { 'content-type': 'text/plain' }).end('WebSocket only\n');
      },
    );
    this.server.on('secureConnection', (socket: Duplex) => {
      this.armDeadline(socket, handshakeMs);
    });
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: opts.maxFrameBytes ?? MAX_FRAME_BYTES,
      perMessageDeflate: false,
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => undefined);
      void this.upgrade(req, socket, head).catch((err: unknown) => {
        this.log.error({ err }, 'agent upgrade failed');
        this.m.refused.inc({ reason: 'error' });
        refuse(socket, 500, 'internal error');
      });
    });
    this.server.on('tlsClientError', (err: Error & { code?: string }) => {
      if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') {
        this.m.upgradesRefused.inc({ reason: 'handshake-timeout' });
      }
      this.log.debug({ err: err.message }, 'TLS handshake with an agent failed');
    });
    const conns = this.conns;
    this.m = linkMetrics(
      opts.registry,
      () => [...conns.values()].filter((c) => c.hello !== undefined).length,
      () => this.gate.inFlight,
    );
    this.pingTimer = setInterval(() => {
      this.heartbeat();
    }, opts.heartbeatMs);
    this.pingTimer.unref();
  }

  setHandlers(handlers: LinkHandlers): void {
    this.handlers = handlers;
  }

  /** Serves new connections with this certificate (a renewal); open ones keep theirs. */
  setTls(tls: { readonly cert: string | Buffer; readonly key: string | Buffer }): void {
    this.server.setSecureContext({ cert: tls.cert, key: tls.key });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port, this.opts.host ?? '0.0.0.0', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return (this.server.address() as AddressInfo).port;
  }

  /**
   * Drops a socket that has not said hello within `ms` of its TLS handshake (slow headers,
   * a slow client, or one that upgrades and stays silent). The hello clears it.
   */
  private armDeadline(socket: Duplex, ms: number): void {
    const timer = setTimeout(() => {
      this.m.upgradesRefused.inc({ reason: 'handshake-timeout' });
      this.log.debug({ ms }, 'agent handshake not done in time; dropped');
      socket.destroy();
    }, ms);
    timer.unref();
    this.deadlines.set(socket, timer);
    socket.once('close', () => {
      clearTimeout(timer);
    });
  }

  /** The bearer token of an upgrade that passed the rate and the path, or undefined (refused). */
  private screen(req: IncomingMessage, socket: Duplex): string | undefined {
    const rate = this.gate.rate(req.socket.remoteAddress ?? '');
    if (!rate.ok) {
      this.m.upgradesRefused.inc({ reason: 'rate' });
      refuse(socket, 503, 'too many upgrades from this address', rate.retryAfterS);
      return undefined;
    }
    const path = new URL(req.url ?? '/', 'https://x').pathname;
    if (path !== AGENT_LINK_PATH) {
      this.m.refused.inc({ reason: 'path' });
      refuse(socket, 404, `no link at ${path}`);
      return undefined;
    }
    const auth = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (auth?.[1] === undefined) {
      this.m.refused.inc({ reason: 'no-token' });
      refuse(socket, 401, 'bearer token required');
      return undefined;
    }
    return auth[1];
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const token = this.screen(req, socket);
    if (token === undefined) return;
    const slot = this.gate.acquire();
    if (!slot.ok) {
      this.m.upgradesRefused.inc({ reason: 'busy' });
      refuse(socket, 503, 'too many agents authenticating; retry', slot.retryAfterS);
      return;
    }
    const authStartedAt = Date.now();
    let result: AuthResult;
    try {
      result = await this.opts.authenticate(token);
    } finally {
      slot.release();
    }
    // The handshake deadline passed while the review ran: nobody to answer.
    if (socket.destroyed) return;
    const remote = req.socket.remoteAddress ?? '';
    const why = this.refusal(result, req.headers[NODE_HEADER]);
    if (why !== undefined) {
      this.m.refused.inc({ reason: why.reason });
      this.logRefusal(remote, why.message);
      refuse(socket, why.status, why.message);
      return;
    }
    if (!result.ok) return; // refusal() refuses every failed authentication
    const identity = result.identity;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.attach(ws, identity, remote, this.deadlines.get(socket), authStartedAt);
    });
  }

  /**
   * One line a second at most: every refusal is counted, but a flood of junk upgrades must not
   * become a flood of log lines.
   */
  private logRefusal(remote: string, reason: string): void {
    const now = Date.now();
    if (now - this.refusalLog.at < 1_000) {
      this.refusalLog.suppressed++;
      return;
    }
    const { suppressed } = this.refusalLog;
    this.log.warn({ remote, reason, suppressed }, 'agent connection refused');
    this.refusalLog = { at: now, suppressed: 0 };
  }

  /** Pure but for the clock and the deleted pods: why an authenticated upgrade is refused. */
  private refusal(
    result: AuthResult,
    claimed: string | string[] | undefined,
  ): { status: 401 | 403; reason: string; message: string } | undefined {
    if (!result.ok) {
      const reason = result.status === 401 ? 'unauthenticated' : 'forbidden';
      return { status: result.status, reason, message: result.reason };
    }
    const { node, expiresAt, pod } = result.identity;
    if (typeof claimed === 'string' && claimed !== node) {
      const message = `token is bound to node ${node}, not ${claimed}`;
      return { status: 403, reason: 'wrong-node', message };
    }
    if (expiresAt !== undefined && expiresAt <= this.now()) {
      return { status: 401, reason: 'expired', message: 'token expired' };
    }
    if (pod?.uid !== undefined && this.goneUids.has(pod.uid)) {
      return { status: 403, reason: 'pod-gone', message: `bound pod ${pod.name} was deleted` };
    }
    return undefined;
  }

  private attach(
    ws: WebSocket,
    identity: AgentIdentity,
    remote: string,
    deadline: NodeJS.Timeout | undefined,
    authStartedAt: number,
  ): void {
    const node = identity.node;
    const conn: Conn = {
      ws,
      node,
      remote,
      connectedAt: new Date(),
      pod: identity.pod,
      authStartedAt,
      hello: undefined,
      lastHeartbeat: new Date(),
      alive: true,
      running: new Map(),
      deadline,
      expiry: undefined,
    };
    if (identity.expiresAt !== undefined) {
      conn.expiry = setLongTimeout(() => {
        this.revoke(conn, 'token-expired', 'token expired; reconnect with a fresh token');
      }, identity.expiresAt - this.now()).unref();
    }
    const previous = this.conns.get(node);
    this.conns.set(node, conn);
    if (previous !== undefined) {
      this.m.replaced.inc();
      this.log.info({ node }, 'agent reconnected; closing its previous connection');
      previous.ws.close(CLOSE_REPLACED, 'replaced by a newer connection');
    }
    this.wire(conn);
  }

  private wire(conn: Conn): void {
    const { ws, node } = conn;
    ws.on('error', (err) => {
      if (/max payload/i.test(err.message)) this.m.rejectedFrames.inc({ code: 'too-large' });
      this.log.warn({ node, err: err.message }, 'agent connection error');
    });
    ws.on('pong', () => {
      conn.alive = true;
    });
    ws.on('message', (data: Buffer, isBinary) => {
      conn.alive = true;
      this.onFrame(conn, isBinary ? data : data.toString('utf8'));
    });
    ws.on('close', () => {
      conn.expiry?.clear();
      clearTimeout(conn.deadline);
      if (this.conns.get(node) === conn) {
        this.conns.delete(node);
        this.log.info({ node }, 'agent disconnected');
      }
    });
  }

  /** Closes a connection whose credential ended; the agent reconnects with a fresh token. */
  private revoke(conn: Conn, reason: 'token-expired' | 'pod-deleted', message: string): void {
    if (conn.ws.readyState !== conn.ws.OPEN && conn.ws.readyState !== conn.ws.CONNECTING) return;
    this.m.revoked.inc({ reason });
    this.log.info({ node: conn.node, reason, pod: conn.pod?.name }, 'agent credential ended');
    if (this.conns.get(conn.node) === conn) this.conns.delete(conn.node);
    conn.ws.close(CLOSE_CREDENTIALS, message);
  }

  podGone(namespace: string, name: string, uid: string | undefined): void {
    if (uid !== undefined) this.rememberGone(uid);
    for (const conn of [...this.conns.values()]) {
      const pod = conn.pod;
      if (pod?.namespace !== namespace || pod.name !== name) continue;
      if (uid !== undefined && pod.uid !== undefined && pod.uid !== uid) continue;
      this.revoke(conn, 'pod-deleted', `bound pod ${name} was deleted`);
    }
  }

  podsListed(namespace: string, pods: ReadonlyMap<string, string>, listedAt: number): void {
    for (const conn of [...this.conns.values()]) {
      const pod = conn.pod;
      if (pod?.namespace !== namespace || conn.authStartedAt >= listedAt) continue;
      const uid = pods.get(pod.name);
      if (uid !== undefined && (pod.uid === undefined || pod.uid === uid)) continue;
      if (pod.uid !== undefined) this.rememberGone(pod.uid);
      this.revoke(conn, 'pod-deleted', `bound pod ${pod.name} is gone`);
    }
  }

  private rememberGone(uid: string): void {
    const now = Date.now();
    this.goneUids.set(uid, now);
    for (const [u, at] of this.goneUids) {
      if (this.goneUids.size <= GONE_MAX && now - at < GONE_KEEP_MS) break;
      this.goneUids.delete(u);
    }
  }

  private sendTo(conn: Conn, type: MessageType, body: Record<string, unknown>): void {
    if (conn.ws.readyState !== conn.ws.OPEN) return;
    // Replies to a peer that does not read would pile up here: past a backlog they are dropped.
    if (type === 'error' && conn.ws.bufferedAmount > MAX_REPLY_BACKLOG) return;
    conn.ws.send(encode(type, body as never));
  }

  /** Refuses a frame about an action never dispatched to the connection's node. */
  private notDispatched(conn: Conn, type: string, id: string): void {
    this.m.framesRefused.inc({ reason: 'not-dispatched' });
    this.log.debug({ node: conn.node, type, id }, 'frame about an action not dispatched here');
    this.sendTo(conn, 'error', {
      code: 'forbidden',
      message: `action ${id} was not dispatched to node ${conn.node}`,
      ref: id,
    });
  }

  private expects(node: string, id: string): boolean {
    return this.handlers?.expects(node, id) ?? false;
  }

  /** The hello: the connection speaks for its token's node, and is through its handshake. */
  private onHello(conn: Conn, msg: MessageOf<'hello'>): void {
    if (msg.node !== conn.node) {
      // The token decides the node; an agent naming another one is misconfigured or worse.
      this.m.rejectedFrames.inc({ code: 'forbidden' });
      this.sendTo(conn, 'error', {
        code: 'forbidden',
        message: `this connection speaks for node ${conn.node}, not ${msg.node}`,
      });
      conn.ws.close(CLOSE_PROTOCOL, 'wrong node');
      return;
    }
    conn.hello = msg;
    clearTimeout(conn.deadline);
    this.helloed.add(conn.node);
    conn.lastHeartbeat = new Date();
    this.sendTo(conn, 'welcome', { node: conn.node, heartbeatMs: this.opts.heartbeatMs });
    this.log.info(
      {
        node: conn.node,
        version: msg.version,
        bootID: msg.bootID,
        actions: msg.actions.length,
      },
      'agent connected',
    );
    this.handlers?.onHello(conn.node, msg);
  }

  private onFrame(conn: Conn, data: Buffer | string): void {
    const decoded = decodeFrame(data, AGENT_SENDS, this.opts.maxFrameBytes ?? MAX_FRAME_BYTES);
    if (!decoded.ok) {
      this.m.rejectedFrames.inc({ code: decoded.code });
      this.log.warn({ node: conn.node, code: decoded.code, err: decoded.message }, 'frame refused');
      this.sendTo(conn, 'error', {
        code: decoded.code,
        message: decoded.message,
        ...(decoded.ref === undefined ? {} : { ref: decoded.ref }),
      });
      return;
    }
    const msg = decoded.message;
    if (msg.type !== 'hello' && msg.type !== 'error' && conn.hello === undefined) {
      this.m.rejectedFrames.inc({ code: 'invalid' });
      this.sendTo(conn, 'error', { code: 'invalid', message: 'hello first' });
      return;
    }
    switch (msg.type) {
      case 'hello':
        this.onHello(conn, msg);
        return;
      case 'heartbeat':
        conn.lastHeartbeat = new Date();
        if (conn.hello !== undefined && conn.hello.bootID !== msg.bootID) {
          conn.hello = { ...conn.hello, bootID: msg.bootID };
        }
        for (const id of conn.running.keys()) {
          if (!msg.running.includes(id) || !this.expects(conn.node, id)) conn.running.delete(id);
        }
        return;
      case 'action.progress':
        if (!this.expects(conn.node, msg.id)) {
          this.notDispatched(conn, msg.type, msg.id);
          return;
        }
        conn.running.set(msg.id, {
          state: msg.state,
          ...(msg.outputTail === undefined ? {} : { outputTail: msg.outputTail }),
        });
        return;
      case 'action.result':
        conn.running.delete(msg.id);
        if (!this.expects(conn.node, msg.id)) {
          this.notDispatched(conn, msg.type, msg.id);
          return;
        }
        this.handlers?.onResult(conn.node, msg);
        return;
      case 'error':
        this.log.warn({ node: conn.node, code: msg.code, err: msg.message }, 'agent sent an error');
        return;
      default:
        return;
    }
  }

  private heartbeat(): void {
    for (const conn of this.conns.values()) {
      if (!conn.alive) {
        this.m.terminated.inc();
        this.log.warn({ node: conn.node }, 'agent missed a pong; terminating its connection');
        conn.ws.terminate();
        continue;
      }
      conn.alive = false;
      conn.ws.ping();
    }
  }

  /** Sends to the node's agent if it is connected and said hello. */
  send(
    node: string,
    type: 'action.start' | 'action.cancel',
    body: Record<string, unknown>,
  ): boolean {
    const conn = this.conns.get(node);
    if (conn?.hello === undefined || conn.ws.readyState !== conn.ws.OPEN) return false;
    this.sendTo(conn, type, body);
    return true;
  }

  isConnected(node: string): boolean {
    return this.conns.get(node)?.hello !== undefined;
  }

  /**
   * The hello of the connected agent of `node`, its bootID as the latest heartbeat reported
   * it; undefined while none is connected. Read-only: the dispatcher's reboot fence and cancels.
   */
  lastHello(node: string): Readonly<MessageOf<'hello'>> | undefined {
    return this.conns.get(node)?.hello;
  }

  /** An agent of `node` said hello since this server started (connected now or not). */
  hasConnected(node: string): boolean {
    return this.helloed.has(node);
  }

  agents(): AgentInfo[] {
    return [...this.conns.values()]
      .filter((c) => c.hello !== undefined)
      .map((c) => ({
        node: c.node,
        version: c.hello?.version ?? '',
        bootID: c.hello?.bootID ?? '',
        inventory: c.hello?.inventory ?? null,
        connectedAt: c.connectedAt.toISOString(),
        lastHeartbeat: c.lastHeartbeat.toISOString(),
        remote: c.remote,
        running: Object.fromEntries(c.running),
      }))
      .sort((a, b) => a.node.localeCompare(b.node));
  }

  async close(): Promise<void> {
    clearInterval(this.pingTimer);
    for (const c of this.conns.values()) {
      c.expiry?.clear();
      c.ws.terminate();
    }
    this.conns.clear();
    this.wss.close();
    await new Promise<void>((r) => {
      this.server.close(() => {
        r();
      });
      this.server.closeAllConnections();
    });
  }
}
