// The coordinator's side of the agent link: a TLS WebSocket server. Authentication happens in
// the HTTP upgrade handler (ws noServer), before any frame is read; a connection is bound to the
// node of its token and can speak only for that node. A second connection for a node replaces
// the first. The server pings every heartbeat and terminates sockets that missed a pong.
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
  CLOSE_PROTOCOL,
  CLOSE_REPLACED,
  decodeFrame,
  encode,
  MAX_FRAME_BYTES,
  NODE_HEADER,
  type MessageOf,
  type MessageType,
} from '../../shared/protocol.js';
import type { AuthResult } from './auth.js';

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
  hello: MessageOf<'hello'> | undefined;
  lastHeartbeat: Date;
  alive: boolean;
  running: Map<string, { state: string; outputTail?: string }>;
}

export interface LinkHandlers {
  /** The agent of `node` said hello (connected, reconnected or restarted). */
  onHello(node: string, hello: MessageOf<'hello'>): void;
  onResult(node: string, result: MessageOf<'action.result'>): void;
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
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  500: 'Internal Server Error',
};

/** Refuses an upgrade with a plain HTTP answer; the reason travels in a header for the agent. */
function refuse(socket: Duplex, status: number, reason: string): void {
  const safe = reason.replace(/[^\x20-\x7e]/g, '?').slice(0, 256);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n` +
      `Connection: close\r\nX-Noma-Reason: ${safe}\r\nContent-Length: 0\r\n\r\n`,
  );
  socket.destroy();
}

export class AgentLinkServer {
  private readonly conns = new Map<string, Conn>();
  /** Nodes whose agent said hello since this server started (the downtime watch asks). */
  private readonly helloed = new Set<string>();
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private readonly pingTimer: NodeJS.Timeout;
  private readonly log: Logger;
  private handlers: LinkHandlers | undefined;
  private readonly refused: Counter<'reason'>;
  private readonly rejectedFrames: Counter<'code'>;
  private readonly replaced: Counter;
  private readonly terminated: Counter;

  constructor(private readonly opts: LinkServerOptions) {
    this.log = opts.log;
    this.server = createServer({ cert: opts.tls.cert, key: opts.tls.key }, (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('WebSocket only\n');
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
        this.refused.inc({ reason: 'error' });
        refuse(socket, 500, 'internal error');
      });
    });
    this.server.on('tlsClientError', (err) => {
      this.log.debug({ err: err.message }, 'TLS handshake with an agent failed');
    });
    const registry = opts.registry;
    const conns = this.conns;
    new Gauge({
      name: 'noma_agents_connected',
      help: 'Agents connected to this coordinator (said hello)',
      registers: [registry],
      collect() {
        this.set([...conns.values()].filter((c) => c.hello !== undefined).length);
      },
    });
    this.refused = new Counter({
      name: 'noma_agent_connections_refused_total',
      help: 'Agent connections refused at upgrade, by reason',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.rejectedFrames = new Counter({
      name: 'noma_agent_frames_rejected_total',
      help: 'Frames from agents refused by validation or size, by error code',
      labelNames: ['code'],
      registers: [registry],
    });
    this.replaced = new Counter({
      name: 'noma_agent_connections_replaced_total',
      help: 'Agent connections closed because a newer one for the same node arrived',
      registers: [registry],
    });
    this.terminated = new Counter({
      name: 'noma_agent_connections_dead_total',
      help: 'Agent connections terminated for missing a pong',
      registers: [registry],
    });
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

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const path = new URL(req.url ?? '/', 'https://x').pathname;
    if (path !== AGENT_LINK_PATH) {
      this.refused.inc({ reason: 'path' });
      refuse(socket, 404, `no link at ${path}`);
      return;
    }
    const auth = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (auth?.[1] === undefined) {
      this.refused.inc({ reason: 'no-token' });
      refuse(socket, 401, 'bearer token required');
      return;
    }
    const result = await this.opts.authenticate(auth[1]);
    const remote = req.socket.remoteAddress ?? '';
    if (!result.ok) {
      this.refused.inc({ reason: result.status === 401 ? 'unauthenticated' : 'forbidden' });
      this.log.warn({ remote, reason: result.reason }, 'agent connection refused');
      refuse(socket, result.status, result.reason);
      return;
    }
    const node = result.identity.node;
    const claimed = req.headers[NODE_HEADER];
    if (typeof claimed === 'string' && claimed !== node) {
      this.refused.inc({ reason: 'wrong-node' });
      this.log.warn({ remote, node, claimed }, 'agent claimed another node; refused');
      refuse(socket, 403, `token is bound to node ${node}, not ${claimed}`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.attach(ws, node, remote);
    });
  }

  private attach(ws: WebSocket, node: string, remote: string): void {
    const conn: Conn = {
      ws,
      node,
      remote,
      connectedAt: new Date(),
      hello: undefined,
      lastHeartbeat: new Date(),
      alive: true,
      running: new Map(),
    };
    const previous = this.conns.get(node);
    this.conns.set(node, conn);
    if (previous !== undefined) {
      this.replaced.inc();
      this.log.info({ node }, 'agent reconnected; closing its previous connection');
      previous.ws.close(CLOSE_REPLACED, 'replaced by a newer connection');
    }
    ws.on('error', (err) => {
      if (/max payload/i.test(err.message)) this.rejectedFrames.inc({ code: 'too-large' });
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
      if (this.conns.get(node) === conn) {
        this.conns.delete(node);
        this.log.info({ node }, 'agent disconnected');
      }
    });
  }

  private sendTo(conn: Conn, type: MessageType, body: Record<string, unknown>): void {
    if (conn.ws.readyState !== conn.ws.OPEN) return;
    conn.ws.send(encode(type, body as never));
  }

  private onFrame(conn: Conn, data: Buffer | string): void {
    const decoded = decodeFrame(data, AGENT_SENDS, this.opts.maxFrameBytes ?? MAX_FRAME_BYTES);
    if (!decoded.ok) {
      this.rejectedFrames.inc({ code: decoded.code });
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
      this.rejectedFrames.inc({ code: 'invalid' });
      this.sendTo(conn, 'error', { code: 'invalid', message: 'hello first' });
      return;
    }
    switch (msg.type) {
      case 'hello':
        if (msg.node !== conn.node) {
          // The token decides the node; an agent naming another one is misconfigured or worse.
          this.rejectedFrames.inc({ code: 'forbidden' });
          this.sendTo(conn, 'error', {
            code: 'forbidden',
            message: `this connection speaks for node ${conn.node}, not ${msg.node}`,
          });
          conn.ws.close(CLOSE_PROTOCOL, 'wrong node');
          return;
        }
        conn.hello = msg;
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
        return;
      case 'heartbeat':
        conn.lastHeartbeat = new Date();
        if (conn.hello !== undefined && conn.hello.bootID !== msg.bootID) {
          conn.hello = { ...conn.hello, bootID: msg.bootID };
        }
        for (const id of conn.running.keys()) {
          if (!msg.running.includes(id)) conn.running.delete(id);
        }
        return;
      case 'action.progress':
        conn.running.set(msg.id, {
          state: msg.state,
          ...(msg.outputTail === undefined ? {} : { outputTail: msg.outputTail }),
        });
        return;
      case 'action.result':
        conn.running.delete(msg.id);
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
        this.terminated.inc();
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
    for (const c of this.conns.values()) c.ws.terminate();
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
