import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Logger } from '../../shared/log.js';
import type { Readiness } from '../agent.js';

export interface HealthServerOptions {
  readonly log: Logger;
  readonly readiness: () => Readiness;
  readonly status: () => unknown;
  readonly registry: Registry;
}

/**
 * The agent's health endpoints. A factory: main.ts listens, tests use inject(). While closing,
 * fastify answers 503 (return503OnClosing) so probes see the shutdown.
 */
export function buildHealthServer(opts: HealthServerOptions): FastifyInstance {
  const app = Fastify({
    // pino's Logger is a FastifyBaseLogger; the cast keeps FastifyInstance's default generics.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion
    loggerInstance: opts.log as FastifyBaseLogger,
    // Probes hit these every few seconds; logging each would drown everything else.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  });

  app.get('/healthz', () => ({ status: 'ok' }));

  app.get('/readyz', (_req, reply) => {
    const readiness = opts.readiness();
    return reply.code(readiness.ready ? 200 : 503).send(readiness);
  });

  app.get('/status', () => opts.status());

  app.get('/metrics', async (_req, reply) => {
    const body = await opts.registry.metrics();
    return reply.type(opts.registry.contentType).send(body);
  });

  return app;
}
