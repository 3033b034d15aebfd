// The agent's Kubernetes client against local HTTP servers that misbehave the way a connection
// lost without a reset does: a request is accepted and never answered, or its answer stops
// halfway. Each call must fail within its timeout, as an error worth retrying.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isTransient } from '../../shared/kube-errors.js';
import { KubeClient, KubeError } from './client.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const open: { server: Server; client: KubeClient }[] = [];

afterEach(async () => {
  for (const { server, client } of open.splice(0)) {
    client.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

async function serve(
  handler: Handler,
  opts: ConstructorParameters<typeof KubeClient>[1] = {},
): Promise<{ client: KubeClient; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method ?? ''} ${req.url ?? ''}`);
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const client = new KubeClient(
    { server: `http://127.0.0.1:${port}`, insecureSkipTLSVerify: false },
    opts,
  );
  open.push({ server, client });
  return { client, requests };
}

/** Accepts the request and never answers. */
const silent: Handler = () => undefined;

/** Sends the headers and part of the body, then nothing. */
const halfAnswer: Handler = (_req, res) => {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.write('{"metadata":');
};

async function timed<T>(p: Promise<T>): Promise<{ err: unknown; ms: number }> {
  const start = performance.now();
  try {
    await p;
  } catch (err) {
    return { err, ms: performance.now() - start };
  }
  throw new Error('expected the call to fail');
}

describe('KubeClient request timeout', () => {
  it.each([
    ['never answered', silent],
    ['answer cut halfway', halfAnswer],
  ])('readNode fails within the timeout when the request is %s', async (_what, handler) => {
    const { client, requests } = await serve(handler, { requestTimeoutMs: 300 });
    const { err, ms } = await timed(client.readNode('gpu-1'));
    expect(requests).toEqual(['GET /api/v1/nodes/gpu-1']);
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(2_000);
    expect(isTransient(err)).toBe(true);
    expect((err as Error).message).toBe('GET /api/v1/nodes/gpu-1: no answer within 300 ms');
  });

  it('bounds patches and Events too', async () => {
    const { client } = await serve(silent, { requestTimeoutMs: 200 });
    const patch = await timed(client.patchNodeMerge('gpu-1', { metadata: { labels: {} } }));
    const event = await timed(client.createEvent('default', { metadata: {}, involvedObject: {} }));
    for (const { err, ms } of [patch, event]) {
      expect(isTransient(err)).toBe(true);
      expect(ms).toBeLessThan(2_000);
    }
  });

  it('answers that come in time are unaffected, and an HTTP error keeps its status', async () => {
    const { client } = await serve((req, res) => {
      const found = req.url === '/api/v1/nodes/gpu-1';
      res.writeHead(found ? 200 : 404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(found ? { metadata: { name: 'gpu-1' } } : { message: 'not found' }));
    });
    await expect(client.readNode('gpu-1')).resolves.toEqual({ metadata: { name: 'gpu-1' } });
    const { err } = await timed(client.readNode('gpu-2'));
    expect(err).toBeInstanceOf(KubeError);
    expect(isTransient(err)).toBe(false);
  });

  it('classifies the API server refusing or failing through shared/kube-errors', () => {
    expect(isTransient(new KubeError(500, 'HTTP 500: boom'))).toBe(true);
    expect(isTransient(new KubeError(429, 'HTTP 429: slow down'))).toBe(true);
    expect(isTransient(new KubeError(403, 'HTTP 403: forbidden'))).toBe(false);
  });
});

describe('KubeClient watch timeout', () => {
  const nodeEvent = JSON.stringify({ type: 'MODIFIED', object: { metadata: { name: 'gpu-1' } } });

  it('fails a watch the server keeps open past timeoutSeconds and a grace', async () => {
    const { client } = await serve(
      (_req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.write(`${nodeEvent}\n`);
      },
      { watchGraceMs: 300 },
    );
    const seen: string[] = [];
    const { err, ms } = await timed(
      client.watchNode('gpu-1', '7', 0, (e) => seen.push(e.type), new AbortController().signal),
    );
    expect(seen).toEqual(['MODIFIED']);
    expect(isTransient(err)).toBe(true);
    expect((err as Error).message).toBe('watch on Node gpu-1: no answer within 300 ms');
    expect(ms).toBeLessThan(2_000);
  });

  it('fails a watch request that is never answered', async () => {
    const { client } = await serve(silent, { watchGraceMs: 200 });
    const { err } = await timed(
      client.watchNode('gpu-1', undefined, 0, () => undefined, new AbortController().signal),
    );
    expect(isTransient(err)).toBe(true);
  });

  it("still stops quietly when the caller's signal aborts", async () => {
    const { client } = await serve(silent, { watchGraceMs: 60_000 });
    const stop = new AbortController();
    setTimeout(() => {
      stop.abort();
    }, 100);
    await expect(
      client.watchNode('gpu-1', undefined, 300, () => undefined, stop.signal),
    ).resolves.toBeUndefined();
  });

  it('ends normally when the server closes the watch in time', async () => {
    const { client } = await serve(
      (_req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(`${nodeEvent}\n`);
      },
      { watchGraceMs: 200 },
    );
    const seen: string[] = [];
    await client.watchNode('gpu-1', '7', 1, (e) => seen.push(e.type), new AbortController().signal);
    expect(seen).toEqual(['MODIFIED']);
  });
});
