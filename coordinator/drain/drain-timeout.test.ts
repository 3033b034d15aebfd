// drainTimeout is honoured to the millisecond however long it is: 700h with forceDrain must not
// delete pods around their PDB after 1 ms (what a plain setTimeout does past 24.8 days). The
// real drain engine runs against a small in-process HTTP stand-in for the API server (a PDB
// that refuses every eviction), with fake timers for the engine's clock: 700 hours pass in
// milliseconds while the HTTP traffic stays real. The fake clock overflows delays past 2^31-1 ms
// as Node does, so a plain setTimeout fails this test.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../shared/log.js';
import { drainNode, type DrainResult } from './drain.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NODE = 'gpu-1';

const pod: V1Pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: 'infer-0',
    namespace: 'ml',
    uid: 'uid-infer-0',
    ownerReferences: [
      { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'infer', uid: 'rs', controller: true },
    ],
  },
  spec: {
    nodeName: NODE,
    containers: [{ name: 'c', image: 'x', resources: { limits: { 'nvidia.com/gpu': '1' } } }],
  },
  status: { phase: 'Running' },
};

/** Answers what a drain asks: the node's pods, a watch that stays quiet, 429 for evictions. */
class FakeApiServer {
  readonly requests: string[] = [];
  readonly deletes: string[] = [];
  #server: Server | undefined;
  readonly #open = new Set<ServerResponse>();
  #onRequest: () => void = () => undefined;

  async start(): Promise<KubeConfig> {
    this.#server = createServer((req, res) => {
      this.#handle(req, res);
    });
    await new Promise<void>((r) => this.#server?.listen(0, '127.0.0.1', r));
    const { port } = this.#server.address() as AddressInfo;
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: 'fake' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'fake' }],
      currentContext: 'fake',
    });
    return kc;
  }

  /** Resolves at the next request that matches. */
  next(pattern: RegExp): Promise<void> {
    return new Promise((resolve) => {
      const before = this.#onRequest;
      this.#onRequest = () => {
        before();
        if (pattern.test(this.requests.at(-1) ?? '')) resolve();
      };
    });
  }

  async stop(): Promise<void> {
    for (const res of this.#open) res.destroy();
    await new Promise((r) => this.#server?.close(r));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const line = `${req.method ?? ''} ${req.url ?? ''}`;
    this.requests.push(line);
    this.#onRequest();
    const json = (code: number, body: object) => {
      res.writeHead(code, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'GET' && url.pathname === '/api/v1/pods') {
      if (url.searchParams.get('watch') === 'true') {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.flushHeaders();
        this.#open.add(res);
        return;
      }
      json(200, { kind: 'PodList', metadata: { resourceVersion: '1' }, items: [pod] });
      return;
    }
    if (req.method === 'POST' && url.pathname.endsWith('/eviction')) {
      json(429, {
        kind: 'Status',
        status: 'Failure',
        code: 429,
        reason: 'TooManyRequests',
        message: "Cannot evict pod as it would violate the pod's disruption budget.",
        details: {
          causes: [
            {
              reason: 'DisruptionBudget',
              message: 'The disruption budget infer-pdb needs 3 healthy pods and has 3 currently',
            },
          ],
        },
      });
      return;
    }
    if (req.method === 'DELETE' && url.pathname === '/api/v1/namespaces/ml/pods/infer-0') {
      this.deletes.push(line);
      json(200, pod);
      return;
    }
    json(404, { kind: 'Status', status: 'Failure', code: 404, reason: 'NotFound' });
  }
}

/** Lets real I/O (HTTP to the stand-in) run; setImmediate is not faked. */
async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

describe('drainNode with drainTimeout 700h and forceDrain', () => {
  let api: FakeApiServer;
  let kc: KubeConfig;

  beforeEach(async () => {
    api = new FakeApiServer();
    kc = await api.start();
    // Only the timer functions: the HTTP stack keeps its own (internal) timers and real time.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
  });
  afterEach(async () => {
    vi.useRealTimers();
    await api.stop();
  });

  it('does not delete pods before 700h, and deletes them at 700h', async () => {
    const ac = new AbortController();
    const firstEviction = api.next(/^POST .*\/eviction$/);
    let result: DrainResult | undefined;
    const drained = drainNode(
      { kc, log: createLogger('test', 'silent'), random: () => 0 },
      NODE,
      {
        drainNonGpuPods: false,
        deleteEmptyDirData: false,
        evictUnmanagedPods: false,
        timeoutMs: 700 * HOUR,
        forceDrain: true,
        // Few relists over 700 fake hours; a refused eviction is retried every 10 h.
        resyncMs: 100 * HOUR,
        backoff: { baseMs: 10 * HOUR, capMs: 10 * HOUR },
        forceDeleteWaitMs: 60_000,
      },
      () => undefined,
      ac.signal,
    ).then((r) => (result = r));
    // The deadline is armed before the first eviction goes out.
    await firstEviction;

    // Fake time, advanced an hour at a time so that the retried evictions (real HTTP) run
    // between the steps.
    let elapsed = 0;
    const advanceTo = async (t: number): Promise<void> => {
      while (elapsed < t) {
        const step = Math.min(HOUR, t - elapsed);
        await vi.advanceTimersByTimeAsync(step);
        elapsed += step;
        await settle(4);
      }
    };

    // Past Node's 24.8-day limit: a plain setTimeout would have fired after 1 ms.
    await advanceTo(1);
    await advanceTo(25 * DAY);
    expect(api.deletes).toEqual([]);
    expect(result).toBeUndefined();

    // Every 10 h the eviction is tried again and refused; still nothing deleted 1 ms before.
    await advanceTo(700 * HOUR - 1);
    await settle();
    expect(api.deletes).toEqual([]);
    expect(result).toBeUndefined();
    expect(api.requests.filter((r) => r.includes('/eviction')).length).toBeGreaterThan(60);

    // 700h: the forced delete.
    const deleted = api.next(/^DELETE /);
    await vi.advanceTimersByTimeAsync(1);
    await deleted;
    expect(api.deletes).toEqual(['DELETE /api/v1/namespaces/ml/pods/infer-0']);
    ac.abort();
    await drained;
    expect(result).toMatchObject({ ok: false, reason: 'cancelled' });
  });
});
