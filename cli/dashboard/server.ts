// The dashboard's local web server: the page's files (static/, read once at start) and
// `/events`, a server-sent event stream of the view (a snapshot, then patches). It listens on
// 127.0.0.1 only and answers only requests addressed to it by that name (the Host header), so
// that no other web page, through DNS rebinding, reads the cluster with the user's credentials.
// It changes nothing anywhere: GET and HEAD only.
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join } from 'node:path';
import type { DashboardHub } from './hub.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

/** A page that reads too slowly is cut off (it reconnects and gets a fresh snapshot). */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
const HEARTBEAT_MS = 15_000;

interface StaticFile {
  readonly type: string;
  readonly body: Buffer;
}

/** The files the page is made of, by URL path; `/` is index.html. Nothing else is served. */
export function readStatic(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (type === undefined) continue;
    files.set(`/${name}`, { type, body: readFileSync(join(dir, name)) });
  }
  const index = files.get('/index.html');
  if (index === undefined)
    throw new Error(`${dir}: no index.html (was the build's copy step run?)`);
  files.set('/', index);
  return files;
}

export interface DashboardServer {
  readonly url: string;
  close(): Promise<void>;
}

function stream(hub: DashboardHub, req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, {
    ...SECURITY_HEADERS,
    'content-type': 'text/event-stream; charset=utf-8',
    connection: 'keep-alive',
  });
  res.write('retry: 2000\n\n');
  const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
  const unsubscribe = hub.subscribe((event, json) => {
    if (res.writableLength > MAX_BUFFERED_BYTES) {
      res.destroy();
      return;
    }
    res.write(`event: ${event}\ndata: ${json}\n\n`);
  });
  const stop = (): void => {
    clearInterval(heartbeat);
    unsubscribe();
  };
  req.on('close', stop);
  res.on('error', stop);
}

function handler(hub: DashboardHub, files: Map<string, StaticFile>, hosts: () => Set<string>) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (!hosts().has(req.headers.host ?? '')) {
      res.writeHead(403, SECURITY_HEADERS).end('forbidden: unknown Host\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...SECURITY_HEADERS, allow: 'GET, HEAD' }).end();
      return;
    }
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path === '/events') {
      stream(hub, req, res);
      return;
    }
    if (path === '/view.json') {
      res
        .writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'application/json' })
        .end(JSON.stringify(hub.view));
      return;
    }
    const file = files.get(path);
    if (file === undefined) {
      res.writeHead(404, SECURITY_HEADERS).end('not found\n');
      return;
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': file.type });
    res.end(req.method === 'HEAD' ? undefined : file.body);
  };
}

/** Listens on 127.0.0.1:`port` (0: a port the OS picks). */
export async function startServer(
  hub: DashboardHub,
  port: number,
  staticDir: string,
): Promise<DashboardServer> {
  const files = readStatic(staticDir);
  let allowed = new Set<string>();
  const server = createServer(handler(hub, files, () => allowed));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  allowed = new Set([`127.0.0.1:${bound}`, `localhost:${bound}`]);
  return {
    url: `http://127.0.0.1:${bound}/`,
    close: () =>
      new Promise<void>((resolve) => {
        // Event streams never end by themselves.
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}
