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
