import http from 'node:http';
import https from 'node:https';
import { createInterface } from 'node:readline';
import type { CoreV1Event, V1Node } from '@kubernetes/client-node';
import {
  REQUEST_TIMEOUT_MS,
  RequestTimeoutError,
  requestSignal,
} from '../../shared/request-timeout.js';
import type { KubeAccess } from './access.js';

/** An API server answer other than 2xx. `status` is the HTTP status code. */
export class KubeError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'KubeError';
  }

  /** The status where client-node keeps it, for shared/kube-errors.ts (isTransient and co). */
  get code(): number {
    return this.status;
  }
}

export interface KubeClientOptions {
  /** Bound on one request, answer included. Default REQUEST_TIMEOUT_MS. */
  readonly requestTimeoutMs?: number;
  /** How long past its timeoutSeconds a watch may stay open before it counts as lost. */
  readonly watchGraceMs?: number;
}

/** The server ends a watch at its timeoutSeconds; one open this much longer is lost. */
const WATCH_GRACE_MS = 30_000;

export interface WatchEvent<T> {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  readonly object: T;
}

/**
 * The few API calls the agent makes, over node:https with keep-alive. Types come from
 * @kubernetes/client-node as type-only imports (nothing of it is loaded at run time).
 */
export interface NodeApi {
  readNode(name: string): Promise<V1Node>;
  patchNodeMerge(name: string, patch: unknown): Promise<V1Node>;
  createEvent(namespace: string, event: CoreV1Event): Promise<void>;
  /**
   * One watch request on the Node named `name`. Resolves when the server ends it (timeout),
   * rejects on a transport or HTTP error, and stops quietly when `signal` aborts.
   */
  watchNode(
    name: string,
    resourceVersion: string | undefined,
    timeoutSeconds: number,
    onEvent: (event: WatchEvent<V1Node>) => void,
    signal: AbortSignal,
  ): Promise<void>;
}

export class KubeClient implements NodeApi {
  private readonly agent: http.Agent;
  private readonly url: URL;
  private readonly timeoutMs: number;
  private readonly watchGraceMs: number;

  constructor(
    private readonly access: KubeAccess,
    opts: KubeClientOptions = {},
  ) {
    this.timeoutMs = opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    this.watchGraceMs = opts.watchGraceMs ?? WATCH_GRACE_MS;
    this.url = new URL(access.server);
    this.agent =
      this.url.protocol === 'https:'
        ? new https.Agent({
            keepAlive: true,
            ...(access.ca === undefined ? {} : { ca: access.ca }),
            ...(access.cert === undefined ? {} : { cert: access.cert }),
            ...(access.key === undefined ? {} : { key: access.key }),
            ...(access.tlsServerName === undefined ? {} : { servername: access.tlsServerName }),
            rejectUnauthorized: !access.insecureSkipTLSVerify,
          })
        : new http.Agent({ keepAlive: true });
  }

  /** Closes idle keep-alive sockets so the process can exit. */
  close(): void {
    this.agent.destroy();
  }

  private async headers(contentType?: string): Promise<Record<string, string>> {
    const h: Record<string, string> = { Accept: 'application/json' };
    if (contentType !== undefined) h['Content-Type'] = contentType;
    if (this.access.token !== undefined) h['Authorization'] = `Bearer ${await this.access.token()}`;
    else if (this.access.basicAuth !== undefined)
      h['Authorization'] = `Basic ${this.access.basicAuth}`;
    return h;
  }

  private async open(
    method: string,
    path: string,
    opts: { body?: unknown; contentType?: string; signal?: AbortSignal } = {},
  ): Promise<http.IncomingMessage> {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const headers = await this.headers(
      payload === undefined ? undefined : (opts.contentType ?? 'application/json'),
    );
    const lib = this.url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.request(
        new URL(path, this.url),
        {
          method,
          headers,
          agent: this.agent,
          ...(opts.signal === undefined ? {} : { signal: opts.signal }),
        },
        resolve,
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  /**
   * One request and its whole answer, within the request timeout: a reply lost on a connection
   * that died without a reset would otherwise hold the labeler's queue forever.
   */
  private async call<T>(
    method: string,
    path: string,
    body?: unknown,
    contentType?: string,
  ): Promise<T> {
    const signal = requestSignal(this.timeoutMs);
    let res: http.IncomingMessage;
    let text: string;
    try {
      res = await this.open(method, path, {
        body,
        signal,
        ...(contentType === undefined ? {} : { contentType }),
      });
      text = await readAll(res);
    } catch (err) {
      if (!signal.aborted) throw err;
      throw new RequestTimeoutError(`${method} ${pathOf(path)}`, this.timeoutMs, { cause: err });
    }
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw new KubeError(status, statusMessage(status, text));
    return JSON.parse(text) as T;
  }

  readNode(name: string): Promise<V1Node> {
    return this.call('GET', `/api/v1/nodes/${encodeURIComponent(name)}`);
  }

  patchNodeMerge(name: string, patch: unknown): Promise<V1Node> {
    return this.call(
      'PATCH',
      `/api/v1/nodes/${encodeURIComponent(name)}`,
      patch,
      'application/merge-patch+json',
    );
  }

  async createEvent(namespace: string, event: CoreV1Event): Promise<void> {
    await this.call('POST', `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`, event);
  }

  async watchNode(
    name: string,
    resourceVersion: string | undefined,
    timeoutSeconds: number,
    onEvent: (event: WatchEvent<V1Node>) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const query = new URLSearchParams({
      watch: 'true',
      fieldSelector: `metadata.name=${name}`,
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(timeoutSeconds),
      ...(resourceVersion === undefined ? {} : { resourceVersion }),
    });
    // The server ends the watch at timeoutSeconds; past that (and a grace) it is a lost one.
    const limitMs = timeoutSeconds * 1000 + this.watchGraceMs;
    const bounded = requestSignal(limitMs, signal);
    const lost = (err: unknown) =>
      bounded.aborted
        ? new RequestTimeoutError(`watch on Node ${name}`, limitMs, { cause: err })
        : err;
    let res: http.IncomingMessage;
    try {
      res = await this.open('GET', `/api/v1/nodes?${query.toString()}`, { signal: bounded });
      const status = res.statusCode ?? 0;
      if (status !== 200) throw new KubeError(status, statusMessage(status, await readAll(res)));
    } catch (err) {
      if (signal.aborted) return;
      throw lost(err);
    }
    try {
      for await (const line of createInterface({ input: res, crlfDelay: Infinity })) {
        if (line.trim() === '') continue;
        onEvent(JSON.parse(line) as WatchEvent<V1Node>);
      }
    } catch (err) {
      if (signal.aborted) return;
      throw lost(err);
    }
    // A watch that ends without its response completing was cut, not closed by the server.
    if (!res.complete && !signal.aborted) {
      throw lost(new Error('watch connection closed unexpectedly'));
    }
  }
}

async function readAll(res: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The path without its query (which may be long): enough to name the request. */
const pathOf = (path: string): string => path.split('?')[0] ?? path;

function statusMessage(status: number, body: string): string {
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    if (typeof parsed.message === 'string') return `HTTP ${status}: ${parsed.message}`;
  } catch {
    // not a Status object
  }
  return `HTTP ${status}: ${body.slice(0, 200)}`;
}
