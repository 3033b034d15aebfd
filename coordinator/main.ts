#!/usr/bin/env node
// noma coordinator: watches NodeMaintenance resources and takes nodes through maintenance.
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { SharedAgentKubeConfig } from './kube-config.js';
import { access, readFile } from 'node:fs/promises';
import pLimit from 'p-limit';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../shared/log.js';
import { VERSION } from '../shared/version.js';
import { noAgentLink, type ActionDispatcher } from './actions/dispatcher.js';
import { PodActionRunner } from './actions/pod-runner.js';
import { RoutingDispatcher } from './actions/routing.js';
import { authenticateAgent, kubeAuthDeps } from './link/auth.js';
import { LinkDispatcher } from './link/dispatcher.js';
import { publishUntilDone } from './link/leader-endpoint.js';
import { watchAgentPods } from './link/pod-watch.js';
import { AgentLinkServer } from './link/server.js';
import { ensureLinkTls, linkHosts, type LinkTlsMaterial } from './link/tls-bootstrap.js';
import { webhookNotifier } from './actions/notify.js';
import { ConfigError, HELP, parseConfig, type CoordinatorConfig } from './config.js';
import { Controller } from './controller/controller.js';
import { drainEventsTo, drainNode } from './drain/drain.js';
import { kubeEventRecorder } from './events.js';
import { buildHealthServer } from '../shared/health-server.js';
import { EndpointAuthorizer } from '../shared/endpoint-auth.js';
import { kubeEndpointReviewer, publicAgents } from './http-endpoints.js';
import { LeaderElector } from './leader.js';
import { createMetrics } from './metrics.js';
import { kubeNodeOps } from './nodes/node-ops.js';
import { kubeNodeWatcher } from './nodes/node-watch.js';
import { kubeNodeCache } from './nodes/node-cache.js';
import { parseSelector } from './downtime/selector.js';
import { DowntimeWatch } from './downtime/watch.js';
import { GpuHealthTainter } from './gpu-health/tainter.js';

/** How often the leader re-reads its TLS Secret (renewal, or a Secret replaced by others). */
const TLS_RECHECK_MS = 3_600_000;

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

/** How long a graceful shutdown (SIGTERM) waits for in-flight work before it goes on. */
const SHUTDOWN_WAIT_MS = 10_000;
/** A coordinator that lost its leadership is gone this long after, at the latest. */
const LOSS_EXIT_MS = 3_000;

/** The coordinator's own pods are never evicted by its drains. */
const COORDINATOR_LABEL = ['app.kubernetes.io/component', 'coordinator'] as const;

async function main(config: CoordinatorConfig): Promise<void> {
  const log = createLogger('noma-coordinator', config.logLevel as 'info');
  const kc = new SharedAgentKubeConfig();
  if (config.kubeconfig === undefined) kc.loadFromCluster();
  else kc.loadFromFile(config.kubeconfig);

  const running: {
    controller?: Controller;
    link?: AgentLinkServer;
    dispatcher?: ActionDispatcher;
    downtime?: DowntimeWatch;
    gpuHealth?: GpuHealthTainter;
    nodeCache?: ReturnType<typeof kubeNodeCache>;
  } = {};
  const elector = new LeaderElector({
    kc,
    log: log.child({ component: 'leader' }),
    namespace: config.namespace,
    name: config.leaseName,
    identity: config.identity,
    leaseDurationMs: config.leaseDurationMs,
    renewDeadlineMs: Math.floor((config.leaseDurationMs * 2) / 3),
    retryPeriodMs: Math.max(250, Math.floor(config.leaseDurationMs / 5)),
  });
  // Fleet gauges come from the leader's Node cache and link only (coordinator/metrics.ts).
  const metrics = createMetrics(() => running.controller, {
    isLeader: () => elector.isLeader,
    identity: config.identity,
    nodes: () => running.nodeCache,
    link: () => running.link,
    tierLabel: config.tierLabel,
  });
  // /metrics and /agents: a token allowed to get them, as kube-rbac-proxy checks one; the
  // probes stay open (shared/health-server.ts).
  const endpointAuth = config.endpointAuth
    ? new EndpointAuthorizer({
        reviewer: kubeEndpointReviewer(kc),
        registry: metrics.registry,
        onError: (err) => {
          log.warn({ err, component: 'http' }, 'reviewing a token for /metrics or /agents failed');
        },
      })
    : undefined;
  const health = buildHealthServer({
    log: log.child({ component: 'http' }),
    registry: metrics.registry,
    ...(endpointAuth === undefined
      ? {}
      : { authorize: (headers, path) => endpointAuth.check(headers, path) }),
    readiness: () => {
      const leader = elector.isLeader;
      // A standby is ready (it serves /metrics and takes over when needed); a leader is ready
      // once its informer has listed.
      const informerFresh = running.controller?.fresh(5 * 60_000) ?? false;
      return {
        ready: !leader || informerFresh,
        role: leader ? 'leader' : 'standby',
        informerFresh,
        ...(running.downtime === undefined
          ? {}
          : { unplannedDowntime: running.downtime.readiness() }),
      };
    },
  });
  health.get('/agents', () => ({ agents: publicAgents(running.link?.agents() ?? []) }));
  await health.listen({ port: config.httpPort, host: '0.0.0.0' });
  const port = (health.server.address() as AddressInfo).port;
  log.info(
    {
      version: VERSION,
      httpPort: port,
      identity: config.identity,
      endpointAuth: config.endpointAuth,
    },
    'coordinator started',
  );

  let stopping = false;
  const stopPublishing = new AbortController();
  const shutdown = async (code: number) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down');
    stopPublishing.abort();
    // Aborts from here on are a shutdown, not a cancel: agents keep running their actions and
    // action pods stay, for the next leader to attach to.
    running.dispatcher?.detach?.();
    running.downtime?.stop();
    running.gpuHealth?.stop();
    // Status writes still retrying (the API server away) must not hold the exit past the
    // pod's grace period: what they carry is redone by the next leader from status.
    await Promise.race([
      running.controller?.stop(),
      new Promise((r) => setTimeout(r, SHUTDOWN_WAIT_MS)),
    ]);
    await running.link?.close();
    await elector.release();
    await health.close();
    process.exit(code);
  };
  /**
   * Leadership lost (another holder seen, the renew deadline passed, a newer leader's epoch in
   * a status): stop acting at once rather than shut down gracefully. The fence signal has
   * already stopped status writes; agents must reach the new leader now, so the link closes;
   * agents' actions and step pods stay for the new leader to attach to. Whatever is still
   * pending, the process exits within LOSS_EXIT_MS and its pod restarts as a standby.
   */
  const loseLeadership = (why: string) => {
    if (stopping) return;
    stopping = true;
    log.error({ why }, 'lost leadership: stopping at once');
    setTimeout(() => process.exit(1), LOSS_EXIT_MS);
    stopPublishing.abort();
    running.dispatcher?.detach?.();
    running.downtime?.stop();
    running.gpuHealth?.stop();
    void Promise.allSettled([running.link?.close(), running.controller?.stop()]).finally(() =>
      process.exit(1),
    );
  };
  process.on('SIGTERM', () => void shutdown(0));
  process.on('SIGINT', () => void shutdown(0));

  await elector.run(() => {
    loseLeadership(String(elector.signal.reason));
  });
  // Only the leader serves agents: a standby has no port open, so agents retry until they
  // reach the leader.
  let agents: ActionDispatcher = noAgentLink;
  // Files, when given and there, win (the sandbox, the tests, a Secret mounted by hand); else
  // the Secret through the API, bootstrapped by the coordinator itself.
  const { agentTlsCert: certFile, agentTlsKey: keyFile, agentTlsSecret: secret } = config;
  const filesThere =
    certFile !== undefined &&
    keyFile !== undefined &&
    (secret === undefined || ((await exists(certFile)) && (await exists(keyFile))));
  let tls: { cert: string | Buffer; key: string | Buffer } | undefined;
  let fromSecret: (() => Promise<LinkTlsMaterial>) | undefined;
  if (filesThere) {
    tls = { cert: await readFile(certFile), key: await readFile(keyFile) };
  } else if (secret !== undefined) {
    const core = kc.makeApiClient(CoreV1Api);
    fromSecret = () =>
      ensureLinkTls(core, {
        secret,
        caConfigMap: config.agentCaConfigMap,
        hosts: linkHosts(config.leaderService ?? 'noma-coordinator', config.namespace),
        log: log.child({ component: 'tls' }),
      });
    tls = await fromSecret();
  }
  if (tls !== undefined) {
    const authDeps = kubeAuthDeps(kc);
    const expect = {
      audience: config.agentTokenAudience,
      serviceAccount: config.agentServiceAccount,
    };
    const link = new AgentLinkServer({
      log: log.child({ component: 'link' }),
      port: config.agentPort,
      tls,
      heartbeatMs: config.agentHeartbeatMs,
      registry: metrics.registry,
      authenticate: (token) => authenticateAgent(token, expect, authDeps),
      maxAuthenticating: config.agentMaxAuthenticating,
      upgradeRate: { perSecond: config.agentUpgradeRate, burst: 2 * config.agentUpgradeRate },
      handshakeTimeoutMs: config.agentHandshakeTimeoutMs,
    });
    const linkDispatcher = new LinkDispatcher({
      log: log.child({ component: 'dispatch' }),
      server: link,
      watchNode: kubeNodeWatcher(kc, log.child({ component: 'node-watch' })),
    });
    running.link = link;
    agents = linkDispatcher;
    // A connection ends with the pod its token is bound to (the agents' pods, in the
    // namespace of their ServiceAccount).
    const agentNamespace = expect.serviceAccount.split('/')[0] ?? config.namespace;
    watchAgentPods(
      kc,
      agentNamespace,
      link,
      log.child({ component: 'link' }),
      stopPublishing.signal,
    );
    const agentPort = await link.listen();
    log.info({ agentPort, serviceAccount: expect.serviceAccount }, 'agent link listening');
    if (fromSecret !== undefined) {
      // A coordinator may lead for longer than a certificate lives: the leader renews it (or
      // picks up one that cert-manager renewed) while it serves, without a restart.
      const refresh = fromSecret;
      let served = tls.cert;
      setInterval(() => {
        refresh()
          .then((next) => {
            if (next.cert === served) return;
            link.setTls(next);
            served = next.cert;
            log.info({ component: 'tls' }, 'agent link serves the renewed certificate');
          })
          .catch((err: unknown) => {
            log.error({ err, component: 'tls' }, 'checking the agent link TLS Secret failed');
          });
      }, TLS_RECHECK_MS).unref();
    }
    if (config.leaderService !== undefined && config.podIP !== undefined) {
      void publishUntilDone(
        kc,
        {
          namespace: config.namespace,
          service: config.leaderService,
          podIP: config.podIP,
          podName: process.env['POD_NAME'],
          port: agentPort,
        },
        log.child({ component: 'link' }),
        stopPublishing.signal,
      );
    }
  }
  // Steps with an image and InteractiveShell run as pods in our namespace; the rest on agents.
  const dispatcher = new RoutingDispatcher(
    new PodActionRunner({
      kc,
      log: log.child({ component: 'pods' }),
      namespace: config.namespace,
    }),
    agents,
  );
  running.dispatcher = dispatcher;
  const drainLog = log.child({ component: 'drain' });
  // ForceDrain and per-pod DrainBlocked Events of the drains (coordinator/drain drainEventsTo).
  const drainEvents = kubeEventRecorder(kc, drainLog, {
    onDropped: (why) => {
      metrics.eventsDropped.inc({ why });
    },
  });
  // Node reads and writes and the drains' first pod lists, in flight at once across all nodes:
  // enough not to throttle a loaded API server (each call may take 100 ms and more), few enough
  // that 2000 nodes starting together do not open 2000 connections at once.
  const apiLimit = pLimit(128);
  const notifier = webhookNotifier({ url: config.notifyWebhookUrl });
  // One Node informer for the controller and the downtime watch.
  const nodeCache = kubeNodeCache(kc, log.child({ component: 'node-cache' }));
  running.nodeCache = nodeCache;
  const controller = new Controller({
    kc,
    nodeCache,
    log: log.child({ component: 'controller' }),
    nodes: kubeNodeOps(kc, apiLimit),
    drain: async (node, opts, onProgress, signal) => {
      const end = metrics.drainDuration.startTimer();
      const observe = (event: string) => {
        metrics.drainEvents.inc({ event });
      };
      const result = await drainNode(
        {
          kc,
          log: drainLog,
          observe,
          listLimit: apiLimit,
          events: drainEventsTo(drainEvents, node),
        },
        node,
        opts,
        onProgress,
        signal,
      );
      end({ result: result.ok ? 'drained' : 'failed' });
      return result;
    },
    dispatcher,
    agentRetryMs: config.agentRetryMs,
    notifier: {
      send: async (msg, signal) => {
        const outcome = await notifier.send(msg, signal);
        if (!outcome.delivered) metrics.notifyFailures.inc();
        return outcome;
      },
    },
    events: kubeEventRecorder(kc, log.child({ component: 'events' }), {
      onDropped: (why) => {
        metrics.eventsDropped.inc({ why });
      },
    }),
    globalLimit: config.maxNodesInMaintenance,
    maxSelectedNodes: config.maxSelectedNodes,
    statusIntervalMs: config.statusIntervalMs,
    watchNamespaces: config.watchNamespaces,
    stuckAfterMs: config.stuckAfterMs,
    // Status writes carry the Lease's epoch and stop the moment leadership is lost.
    fence: { epoch: elector.epoch ?? 0, signal: elector.signal },
    onDeposed: (why) => {
      loseLeadership(`a newer leader writes status: ${why}`);
    },
    observePhase: (phase, seconds) => {
      metrics.phaseDuration.observe({ phase }, seconds);
    },
    skipPod: (pod: V1Pod) =>
      pod.metadata?.namespace === config.namespace &&
      pod.metadata.labels?.[COORDINATOR_LABEL[0]] === COORDINATOR_LABEL[1],
  });
  running.controller = controller;
  await controller.start();
  log.info('watching NodeMaintenances');
  if (config.unplannedDowntimeAfterMs > 0) {
    running.downtime = startDowntime(config, {
      kc,
      log,
      nodeCache,
      metrics,
      limit: apiLimit,
      agents: {
        isConnected: (node) => running.link?.isConnected(node) ?? false,
        hasConnected: (node) => running.link?.hasConnected(node) ?? false,
      },
    });
  }
  if (config.degradedGpuTaint !== undefined) {
    running.gpuHealth = startGpuHealth(config.degradedGpuTaint, {
      kc,
      log,
      nodeCache,
      metrics,
      selector: config.degradedGpuNodeSelector,
    });
  }
}

/** The degraded-GPU taint of the leader (coordinator/gpu-health/), --degraded-gpu-taint. */
function startGpuHealth(
  taint: NonNullable<CoordinatorConfig['degradedGpuTaint']>,
  deps: {
    kc: SharedAgentKubeConfig;
    log: ReturnType<typeof createLogger>;
    nodeCache: ReturnType<typeof kubeNodeCache>;
    metrics: ReturnType<typeof createMetrics>;
    /** --degraded-gpu-node-selector */
    selector: string;
  },
): GpuHealthTainter {
  const log = deps.log.child({ component: 'gpu-health' });
  const selectorText = deps.selector;
  const select = parseSelector(selectorText);
  if (select === undefined) throw new Error(`invalid node selector ${selectorText}`);
  const tainter = new GpuHealthTainter({
    kc: deps.kc,
    log,
    cache: deps.nodeCache,
    select,
    taint,
    registry: deps.metrics.registry,
    events: kubeEventRecorder(deps.kc, log, {
      onDropped: (why) => {
        deps.metrics.eventsDropped.inc({ why });
      },
    }),
  });
  tainter.start().catch((err: unknown) => {
    log.error({ err }, 'degraded-GPU taint failed to start');
  });
  return tainter;
}

/** The unplanned-downtime watch of the leader (coordinator/downtime/). */
function startDowntime(
  config: CoordinatorConfig,
  deps: {
    kc: SharedAgentKubeConfig;
    log: ReturnType<typeof createLogger>;
    nodeCache: ReturnType<typeof kubeNodeCache>;
    metrics: ReturnType<typeof createMetrics>;
    limit: ReturnType<typeof pLimit>;
    agents: { isConnected(node: string): boolean; hasConnected(node: string): boolean };
  },
): DowntimeWatch {
  const log = deps.log.child({ component: 'downtime' });
  // Scopes the watch to some nodes (and the partition count with it).
  const selectorText = config.unplannedDowntimeNodeSelector;
  const select = parseSelector(selectorText);
  if (select === undefined) throw new Error(`invalid node selector ${selectorText}`);
  const notifier = webhookNotifier({ url: config.notifyWebhookUrl });
  const watch = new DowntimeWatch({
    kc: deps.kc,
    log,
    cache: deps.nodeCache,
    config: {
      afterMs: config.unplannedDowntimeAfterMs,
      settleMs: config.unplannedDowntimeSettleMs,
      maxNodes: config.unplannedDowntimeMaxNodes,
      taint: config.unplannedDowntimeTaint,
    },
    registry: deps.metrics.registry,
    events: kubeEventRecorder(deps.kc, log, {
      onDropped: (why) => {
        deps.metrics.eventsDropped.inc({ why });
      },
    }),
    notifier: {
      send: async (msg, signal) => {
        const outcome = await notifier.send(msg, signal);
        if (!outcome.delivered && config.notifyWebhookUrl !== undefined) {
          deps.metrics.notifyFailures.inc();
        }
        return outcome;
      },
    },
    agents: deps.agents,
    limit: deps.limit,
    select,
  });
  watch.start().catch((err: unknown) => {
    log.error({ err }, 'unplanned-downtime watch failed to start');
  });
  return watch;
}

let config: CoordinatorConfig | 'help';
try {
  config = parseConfig(process.argv.slice(2), process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(`noma coordinator: ${err.message}\n\n${HELP}`);
  process.exit(2);
}
if (config === 'help') {
  console.log(HELP);
} else {
  main(config).catch((err: unknown) => {
    console.error('noma coordinator failed:', err);
    process.exit(1);
  });
}
