// The health endpoints every noma process serves: /healthz, /readyz, /metrics and, where the
// process has one, /status. A factory: main.ts listens, tests use inject(). While closing,
// fastify answers 503 (return503OnClosing) so probes see the shutdown.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Verdict } from './endpoint-auth.js';
import type { Logger } from './log.js';

/** What a kubelet probes: never behind a token (the kubelet sends none). */
export const PROBE_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz']);
/** Why a request was refused (401, 403, 503), for clients that do not read the body. */
export const REASON_HEADER = 'x-noma-reason';

export interface HealthServerOptions {
  readonly log: Logger;
  readonly registry: Registry;
  readonly readiness: () => { readonly ready: boolean };
  readonly status?: () => unknown;
  /**
   * Set: every route but the probes' (PROBE_PATHS), including routes added later, answers
   * only a request this allows (shared/endpoint-auth.ts); `path` is the route's path.
   */
  readonly authorize?: (
    headers: Record<string, string | string[] | undefined>,
    path: string,
  ) => Promise<Verdict>;
}

export function buildHealthServer(opts: HealthServerOptions): FastifyInstance {
  const app = Fastify({
    // pino's Logger is a FastifyBaseLogger; the cast keeps FastifyInstance's default generics.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion
    loggerInstance: opts.log as FastifyBaseLogger,
    // Probes hit these every few seconds; logging each would drown everything else.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  });
  const authorize = opts.authorize;
  if (authorize !== undefined) {
    app.addHook('onRequest', async (req, reply) => {
      // No route: fastify's 404, without a token review.
      const path = req.routeOptions.url;
      if (path === undefined || PROBE_PATHS.has(path)) return;
      const verdict = await authorize(req.headers, path);
      if (verdict.code === 200) return;
      if (verdict.code === 401) void reply.header('www-authenticate', 'Bearer');
      if (verdict.code === 503) void reply.header('retry-after', '1');
      // Also in a header, as the agent link refuses: some clients (client-node through the
      // pod proxy) drop the body of a 401.
      void reply.header(REASON_HEADER, verdict.message.replace(/[^\x20-\x7e]/g, '?').slice(0, 256));
      return reply.code(verdict.code).send({ error: verdict.message });
    });
  }
  app.get('/healthz', () => ({ status: 'ok' }));
  app.get('/readyz', (_req, reply) => {
    const readiness = opts.readiness();
    return reply.code(readiness.ready ? 200 : 503).send(readiness);
  });
  const status = opts.status;
  if (status !== undefined) app.get('/status', () => status());
  app.get('/metrics', async (_req, reply) => {
    const body = await opts.registry.metrics();
    return reply.type(opts.registry.contentType).send(body);
  });
  return app;
}
