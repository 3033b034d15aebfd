// The hub's pushes (at most every minIntervalMs, the first at once) and the local server: its
// files, its event stream, and what it refuses (another Host, a write, an unknown path).
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { V1Node } from '@kubernetes/client-node';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DashboardHub } from './hub.js';
import { startServer, type DashboardServer } from './server.js';

const STATIC = fileURLToPath(new URL('./static/', import.meta.url));
const meta = {
  context: 'c',
  user: 'u',
  server: 'https://k',
  namespace: null,
  selector: null,
  version: 'test',
};

const node = (name: string, unschedulable = false): V1Node => ({
  metadata: { name, resourceVersion: String(Math.random()) },
  spec: { unschedulable },
  status: { conditions: [{ type: 'Ready', status: 'True' }] },
});
const nodes = (...list: V1Node[]) => new Map(list.map((n) => [`/${n.metadata?.name ?? ''}`, n]));

describe('DashboardHub', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a snapshot on subscribe; then patches at most every 250 ms, the first at once', () => {
    vi.useFakeTimers();
    const hub = new DashboardHub(meta);
    const got: [string, unknown][] = [];
    hub.subscribe((event, json) => got.push([event, JSON.parse(json)]));
    expect(got).toHaveLength(1);
    expect(got[0]?.[0]).toBe('snapshot');

    hub.update('nodes', nodes(node('a')));
    vi.advanceTimersByTime(0);
    expect(got).toHaveLength(2);
    // A burst right after: one patch, 250 ms after the last one, with the last state.
    hub.update('nodes', nodes(node('a', true)));
    hub.update('nodes', nodes(node('a'), node('b')));
    hub.update('nodes', nodes(node('a'), node('b', true)));
    vi.advanceTimersByTime(249);
    expect(got).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(got).toHaveLength(3);
    expect(got[2]).toEqual([
      'patch',
      { tiles: { set: [expect.objectContaining({ name: 'b', state: 'cordoned' })], del: [] } },
    ]);
    hub.close();
  });

  it('a source’s state is pushed, and told once per change', () => {
    vi.useFakeTimers();
    const told: string[] = [];
    const hub = new DashboardHub(meta, { onSourceState: (s, st) => told.push(`${s}=${st.state}`) });
    hub.setSource('nodes', { state: 'trouble', error: 'HTTP 403: forbidden' });
    hub.setSource('nodes', { state: 'trouble', error: 'HTTP 403: forbidden' });
    hub.setSource('nodes', { state: 'live', error: null });
    vi.advanceTimersByTime(0);
    expect(told).toEqual(['nodes=trouble', 'nodes=live']);
    expect(hub.view.sources.nodes).toEqual({ state: 'live', error: null });
    hub.close();
  });
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request to the server as `host` names it (fetch cannot set Host). */
function get(url: string, opts: { host?: string; method?: string } = {}): Promise<Answer> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: opts.method ?? 'GET',
        headers: opts.host === undefined ? {} : { host: opts.host },
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('the local server', () => {
  let server: DashboardServer | undefined;
  let hub: DashboardHub | undefined;
  afterEach(async () => {
    hub?.close();
    await server?.close();
  });

  it('serves the page on 127.0.0.1 with a strict CSP, and nothing else', async () => {
    hub = new DashboardHub(meta);
    server = await startServer(hub, 0, STATIC);
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await get(server.url);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.body).toContain('<script type="module" src="/app.js">');
    for (const file of ['app.js', 'model.js', 'render.js']) {
      const js = await get(`${server.url}${file}`);
      expect([js.status, js.headers['content-type']]).toEqual([
        200,
        'text/javascript; charset=utf-8',
      ]);
    }
    expect((await get(`${server.url}style.css`)).status).toBe(200);
    expect((await get(`${server.url}../state.ts`)).status).toBe(404);
    expect((await get(`${server.url}%2e%2e/state.ts`)).status).toBe(404);
    expect((await get(server.url, { method: 'POST' })).status).toBe(405);
  });

  it('answers only requests addressed to 127.0.0.1 or localhost (no DNS rebinding)', async () => {
    hub = new DashboardHub(meta);
    server = await startServer(hub, 0, STATIC);
    const port = new URL(server.url).port;
    expect((await get(server.url, { host: `localhost:${port}` })).status).toBe(200);
    expect((await get(server.url, { host: `evil.example:${port}` })).status).toBe(403);
    expect((await get(`${server.url}events`, { host: 'evil.example' })).status).toBe(403);
  });

  it('streams a snapshot, then a patch when the cluster changes', async () => {
    hub = new DashboardHub(meta, { minIntervalMs: 0 });
    hub.update('nodes', nodes(node('a')));
    server = await startServer(hub, 0, STATIC);
    await new Promise((r) => setTimeout(r, 10));
    const res = await fetch(`${server.url}events`);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    const until = async (pattern: RegExp) => {
      while (!pattern.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended: ${text}`);
        text += new TextDecoder().decode(value);
      }
    };
    await until(/event: snapshot\ndata: .*\n\n/);
    expect(text).toContain('"name":"a"');
    hub.update('nodes', nodes(node('a', true)));
    await until(/event: patch\ndata: .*\n\n/);
    const patch = /event: patch\ndata: (.*)\n\n/.exec(text)?.[1] ?? '';
    expect(JSON.parse(patch)).toEqual({
      tiles: { set: [expect.objectContaining({ name: 'a', state: 'cordoned' })], del: [] },
    });
    await reader.cancel();
  });
});
