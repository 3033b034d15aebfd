import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createLogger } from './log.js';
import type { Readiness } from '../agent/agent.js';
import { createMetrics } from '../agent/health/metrics.js';
import { buildHealthServer } from './health-server.js';

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
});

function build(readiness: Readiness): FastifyInstance {
  const metrics = createMetrics({ processMetrics: false });
  metrics.discoveryErrors.inc();
  app = buildHealthServer({
    log: createLogger('test', 'silent'),
    readiness: () => readiness,
    status: () => ({ node: 'gpu-01', lastError: null }),
    registry: metrics.registry,
  });
  return app;
}

const ready: Readiness = { ready: true, checks: { labels: { ok: true } } };
const notReady: Readiness = {
  ready: false,
  checks: { discovery: { ok: false, detail: 'nvidia-smi timed out after 10000 ms' } },
};

describe('health server', () => {
  it('/healthz answers while the process lives, whatever readiness says', async () => {
    const res = await build(notReady).inject('/healthz');
    expect(res.statusCode).toBe(200);
  });

  it('/readyz is 200 when ready and 503 with the failing check when not', async () => {
    expect((await build(ready).inject('/readyz')).statusCode).toBe(200);
    await app?.close();
    const res = await build(notReady).inject('/readyz');
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual(notReady);
  });

  it('/status returns the status object as JSON', async () => {
    const res = await build(ready).inject('/status');
    expect(res.json()).toEqual({ node: 'gpu-01', lastError: null });
  });

  it('/metrics speaks the Prometheus text format', async () => {
    const res = await build(ready).inject('/metrics');
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0.0.4/);
    expect(res.body).toMatch(/^noma_agent_discovery_errors_total 1$/m);
    expect(res.body).toMatch(/^noma_agent_build_info\{version="[^"]+"\} 1$/m);
  });
});

describe('health server with authorize', () => {
  function guarded(allowed: string): { app: FastifyInstance; asked: string[] } {
    const asked: string[] = [];
    const metrics = createMetrics({ processMetrics: false });
    app = buildHealthServer({
      log: createLogger('test', 'silent'),
      readiness: () => ready,
      registry: metrics.registry,
      authorize: (headers, path) => {
        asked.push(path);
        const token = headers['authorization'];
        if (token === undefined) return Promise.resolve({ code: 401, message: 'no token' });
        return Promise.resolve(
          token === allowed
            ? { code: 200, user: 'u' }
            : { code: 403, message: `u may not get ${path}` },
        );
      },
    });
    // Added after the server is built, as main.ts adds /agents.
    app.get('/agents', () => ({ agents: [] }));
    return { app, asked };
  }

  it('leaves the probes open and asks for nothing on them', async () => {
    const { app: a, asked } = guarded('Bearer ok');
    expect((await a.inject('/healthz')).statusCode).toBe(200);
    expect((await a.inject('/readyz')).statusCode).toBe(200);
    expect(asked).toEqual([]);
  });

  it.each(['/metrics', '/agents'])(
    '%s: 401 with WWW-Authenticate, 403, or the answer',
    async (path) => {
      const { app: a, asked } = guarded('Bearer ok');
      const none = await a.inject(path);
      expect(none.statusCode).toBe(401);
      expect(none.headers['www-authenticate']).toBe('Bearer');
      expect(none.json()).toEqual({ error: 'no token' });
      expect(none.headers['x-noma-reason']).toBe('no token');
      const other = await a.inject({ url: path, headers: { authorization: 'Bearer other' } });
      expect(other.statusCode).toBe(403);
      expect(other.json()).toEqual({ error: `u may not get ${path}` });
      const ok = await a.inject({ url: `${path}?x=1`, headers: { authorization: 'Bearer ok' } });
      expect(ok.statusCode).toBe(200);
      expect(asked).toEqual([path, path, path]);
    },
  );

  it('answers an unknown path 404 without a review', async () => {
    const { app: a, asked } = guarded('Bearer ok');
    expect((await a.inject('/nope')).statusCode).toBe(404);
    expect(asked).toEqual([]);
  });
});
