// The coordinator's one configuration object, parsed once from flags and environment.
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { parseDuration } from '../shared/duration.js';
import { DEFAULT_RULES } from '../agent/labels/rules.js';
import { labelKeyError } from '../shared/labels.js';
import { parseSelector } from './downtime/selector.js';

export interface ObjectRef {
  readonly namespace: string;
  readonly name: string;
}

export interface CoordinatorConfig {
  readonly kubeconfig: string | undefined;
  readonly namespace: string;
  /** Act only on NodeMaintenances in these namespaces (undefined: all). */
  readonly watchNamespaces: readonly string[] | undefined;
  readonly httpPort: number;
  readonly agentPort: number;
  readonly maxNodesInMaintenance: number;
  readonly maxSelectedNodes: number;
  readonly notifyWebhookUrl: string | undefined;
  readonly leaseName: string;
  readonly leaseDurationMs: number;
  readonly identity: string;
  readonly statusIntervalMs: number;
  readonly logLevel: string;
  /** Both set: the agent link is served; neither: node-local actions wait (no link). */
  readonly agentTlsCert: string | undefined;
  readonly agentTlsKey: string | undefined;
  /**
   * Set: the link's TLS material comes from this Secret, which the coordinator creates and
   * renews itself (coordinator/link/tls-bootstrap.ts), unless the cert/key files are there.
   */
  readonly agentTlsSecret: ObjectRef | undefined;
  /** Set (with agentTlsSecret): the CA certificate is published here for the agents. */
  readonly agentCaConfigMap: ObjectRef | undefined;
  /** `namespace/name` of the agents' ServiceAccount; no other identity may connect. */
  readonly agentServiceAccount: string;
  readonly agentTokenAudience: string;
  readonly agentHeartbeatMs: number;
  readonly agentRetryMs: number;
  /** Agent link upgrades authenticating (a TokenReview each) at once; more get 503. */
  readonly agentMaxAuthenticating: number;
  /** Agent link upgrades per second from one source address (bursts of twice that). */
  readonly agentUpgradeRate: number;
  /** An agent link upgrade must finish TLS, then its upgrade, token check and hello, within this. */
  readonly agentHandshakeTimeoutMs: number;
  /** Set: the leader points this Service (no selector) at itself, see link/leader-endpoint.ts. */
  readonly leaderService: string | undefined;
  /** This pod's IP (downward API), for the leader's EndpointSlice. */
  readonly podIP: string | undefined;
  /** Not Ready this long: the downtime taint (0: unplanned downtime handling off). */
  readonly unplannedDowntimeAfterMs: number;
  /** The taint a node down that long gets (key=value:Effect or key:Effect). */
  readonly unplannedDowntimeTaint: { key: string; value?: string; effect: string };
  /** Ready again this long (and its agent back): the taint goes. */
  readonly unplannedDowntimeSettleMs: number;
  /** More nodes than this NotReady at once: taint none (a partition, not a node). */
  readonly unplannedDowntimeMaxNodes: { count: number } | { percent: number };
  /** Set: nodes whose agent reports lost GPUs get this taint. */
  readonly degradedGpuTaint: { key: string; value?: string; effect: string } | undefined;
  /** Only nodes matching this label selector are watched for unplanned downtime ('' = all). */
  readonly unplannedDowntimeNodeSelector: string;
  /** Only nodes matching this label selector get the degraded-GPU taint ('' = all). */
  readonly degradedGpuNodeSelector: string;
  /** A node that has not changed phase this long is Stuck (waits the spec asked for aside). */
  readonly stuckAfterMs: number;
  /** /metrics and /agents need a token allowed to get them (shared/endpoint-auth.ts). */
  readonly endpointAuth: boolean;
  /** The agents' tier label key (their rules' tier.label), for /metrics; '' = tiers off. */
  readonly tierLabel: string;
}

export const HELP = `noma coordinator: carries out NodeMaintenance resources.

usage: node dist/coordinator/main.js [flags]

  --kubeconfig <file>               kubeconfig to use (default: in-cluster config)
  --namespace <ns>                  the coordinator's namespace: its leader-election Lease and
                                    the pods of steps with an image and of InteractiveShell
                                    (default: $POD_NAMESPACE, else noma-system)
  --watch-namespaces <ns,...>       act only on NodeMaintenances in these namespaces (default:
                                    all; $NOMA_WATCH_NAMESPACES). --watch-namespace <ns> is the
                                    same flag, kept for one namespace
  --http-port <n>                   health and metrics: /healthz /readyz /metrics (default 8080;
                                    0 picks a free port and logs it)
  --endpoint-auth on|off            on: /metrics and /agents need a bearer token that passes a
                                    TokenReview and may get that path (SubjectAccessReview,
                                    ClusterRole noma-metrics-reader); off: open, for a process
                                    only local users reach (default on; $NOMA_ENDPOINT_AUTH)
  --agent-port <n>                  agent link (WebSocket over TLS) port (default 8443; 0 picks
                                    a free port and logs it)
  --agent-tls-cert <file>           PEM certificate (chain) of the agent link; with
                                    --agent-tls-key it turns the link on (default: no link, and
                                    Script/Run/Reboot wait for one)
  --agent-tls-key <file>            PEM private key of the agent link
  --agent-tls-secret [<ns>/]<name>  take the agent link's TLS material from this Secret
                                    (default namespace: --namespace); it is created (a new CA
                                    and serving certificate) when missing and renewed 30 days
                                    before it expires. Turns the link on; files given with
                                    --agent-tls-cert/-key win when they exist
  --agent-ca-configmap [<ns>/]<name>  publish the CA certificate (ca.crt) of --agent-tls-secret
                                    in this ConfigMap, for the agents' --coordinator-ca
  --agent-service-account <ns/name> the agents' ServiceAccount; tokens of any other are refused
                                    (default <namespace>/noma-agent)
  --agent-token-audience <aud>      audience the agents' projected tokens carry (default noma.dev)
  --agent-heartbeat <duration>      ping interval; an agent missing a pong is dropped (default 10s)
  --agent-retry <duration>          how often a node whose agent is not connected is retried
                                    (default 5s)
  --agent-max-authenticating <n>    agent link upgrades waiting for their TokenReview at once;
                                    more are answered 503 (default 32;
                                    $NOMA_AGENT_MAX_AUTHENTICATING)
  --agent-upgrade-rate <n>          agent link upgrades per second from one address, bursts of
                                    2n; more are answered 503 (default 10; raise it when agents
                                    reach the coordinator through SNAT; $NOMA_AGENT_UPGRADE_RATE)
  --agent-handshake-timeout <d>     TLS, then the upgrade, token check and hello, each within
                                    this, or the connection is dropped (default 5s;
                                    $NOMA_AGENT_HANDSHAKE_TIMEOUT)
  --leader-service <name>           the agent link's Service (no selector, in --namespace); the
                                    leader points it at itself with the EndpointSlice
                                    <name>-leader, so agents reach only the leader (needs
                                    $POD_IP; default: none, nothing is published)
  --max-nodes-in-maintenance <n>    cap on unavailable nodes across all NodeMaintenances: in
                                    maintenance, failed and still held, or selected and
                                    NotReady or cordoned by someone else (default 10)
  --max-selected-nodes <n>          refuse a NodeMaintenance whose selector matches more nodes
                                    (default 50)
  --notify-webhook-url <url>        Slack-compatible webhook for Notify actions
                                    (default: $NOMA_NOTIFY_WEBHOOK_URL; none: Notify only records
                                    an Event)
  --lease-name <name>               leader-election Lease name (default noma-coordinator)
  --lease-duration <duration>       lease duration, Go syntax (default 15s)
  --identity <id>                   leader-election identity (default: $POD_NAME, else
                                    <hostname>-<pid>)
  --status-interval <duration>      how often progress (drain counters) is written (default 1s)
  --unplanned-downtime-after <d>    a node whose Ready condition has not been True this long gets
                                    the downtime taint (default 10m; 0 turns it off;
                                    $NOMA_UNPLANNED_DOWNTIME_AFTER)
  --unplanned-downtime-taint <t>    that taint, key[=value]:Effect (default
                                    noma.dev/unreachable:NoExecute; Run:ai: runai=drain:NoExecute;
                                    $NOMA_UNPLANNED_DOWNTIME_TAINT)
  --unplanned-downtime-settle <d>   Ready again this long, and its agent back, before the taint
                                    goes (default 1m; $NOMA_UNPLANNED_DOWNTIME_SETTLE)
  --unplanned-downtime-max-nodes <n|pct>  with more nodes than this NotReady at once (a partition
                                    or a control-plane problem) no node is tainted (default 10%,
                                    at least 1; $NOMA_UNPLANNED_DOWNTIME_MAX_NODES)
  --unplanned-downtime-node-selector <sel>  watch only the nodes this label selector matches
                                    (the cap counts them only; default: all nodes;
                                    $NOMA_UNPLANNED_DOWNTIME_NODE_SELECTOR)
  --degraded-gpu-taint <t>          taint nodes whose agent reports lost GPUs, key[=value]:Effect
                                    (default: none; $NOMA_DEGRADED_GPU_TAINT)
  --degraded-gpu-node-selector <sel>  only nodes this label selector matches get that taint
                                    (default: all; $NOMA_DEGRADED_GPU_NODE_SELECTOR)
  --stuck-after <d>                 a node of a maintenance that has not changed phase this long
                                    (waits the spec asked for aside) is Stuck (default 2h;
                                    $NOMA_STUCK_AFTER)
  --tier-label <key>                the tier label key of the agents' label rules (tier.label),
                                    for noma_nodes{tier} and noma_nodes_missing_labels ("" when
                                    the rules have no tiers; default hardware.tier;
                                    $NOMA_TIER_LABEL)
  --log-level <level>               trace|debug|info|warn|error (default info, or $NOMA_LOG_LEVEL)
  -h, --help                        this text
`;

export class ConfigError extends Error {}

function int(name: string, text: string | undefined, def: number, min: number): number {
  if (text === undefined) return def;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    throw new ConfigError(`--${name} must be an integer >= ${min}, got ${JSON.stringify(text)}`);
  }
  return n;
}

function duration(name: string, text: string | undefined, defMs: number): number {
  if (text === undefined) return defMs;
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) {
    throw new ConfigError(
      `--${name} must be a positive duration such as 15s, got ${JSON.stringify(text)}`,
    );
  }
  return ms;
}

const NAME = '[a-z0-9]([-a-z0-9.]*[a-z0-9])?';

/** `namespace/name`, or `name` in `namespace`. */
function objectRef(flag: string, text: string | undefined, namespace: string) {
  if (text === undefined) return undefined;
  const m = new RegExp(`^(?:(${NAME})/)?(${NAME})$`).exec(text);
  if (m?.[3] === undefined) {
    throw new ConfigError(`--${flag} must be [namespace/]name, got ${JSON.stringify(text)}`);
  }
  return { namespace: m[1] ?? namespace, name: m[3] };
}

export function parseConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): CoordinatorConfig | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        kubeconfig: { type: 'string' },
        namespace: { type: 'string' },
        'watch-namespace': { type: 'string' },
        'watch-namespaces': { type: 'string' },
        'http-port': { type: 'string' },
        'agent-port': { type: 'string' },
        'max-nodes-in-maintenance': { type: 'string' },
        'max-selected-nodes': { type: 'string' },
        'notify-webhook-url': { type: 'string' },
        'lease-name': { type: 'string' },
        'lease-duration': { type: 'string' },
        identity: { type: 'string' },
        'status-interval': { type: 'string' },
        'log-level': { type: 'string' },
        'agent-tls-cert': { type: 'string' },
        'agent-tls-key': { type: 'string' },
        'agent-tls-secret': { type: 'string' },
        'agent-ca-configmap': { type: 'string' },
        'agent-service-account': { type: 'string' },
        'agent-token-audience': { type: 'string' },
        'agent-heartbeat': { type: 'string' },
        'agent-retry': { type: 'string' },
        'agent-max-authenticating': { type: 'string' },
        'agent-upgrade-rate': { type: 'string' },
        'agent-handshake-timeout': { type: 'string' },
        'leader-service': { type: 'string' },
        'unplanned-downtime-after': { type: 'string' },
        'unplanned-downtime-taint': { type: 'string' },
        'unplanned-downtime-settle': { type: 'string' },
        'unplanned-downtime-max-nodes': { type: 'string' },
        'degraded-gpu-taint': { type: 'string' },
        'unplanned-downtime-node-selector': { type: 'string' },
        'degraded-gpu-node-selector': { type: 'string' },
        'stuck-after': { type: 'string' },
        'endpoint-auth': { type: 'string' },
        'tier-label': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new ConfigError(err instanceof Error ? err.message : String(err));
  }
  if (values.help === true) return 'help';
  const webhook = values['notify-webhook-url'] ?? env['NOMA_NOTIFY_WEBHOOK_URL'];
  if (webhook !== undefined) {
    try {
      new URL(webhook);
    } catch {
      throw new ConfigError(`--notify-webhook-url is not a URL: ${JSON.stringify(webhook)}`);
    }
  }
  const logLevel = values['log-level'] ?? env['NOMA_LOG_LEVEL'] ?? 'info';
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(logLevel)) {
    throw new ConfigError(
      `--log-level must be one of trace|debug|info|warn|error, got ${logLevel}`,
    );
  }
  const namespace = values.namespace ?? env['POD_NAMESPACE'] ?? 'noma-system';
  const cert = values['agent-tls-cert'];
  const key = values['agent-tls-key'];
  if ((cert === undefined) !== (key === undefined)) {
    throw new ConfigError('--agent-tls-cert and --agent-tls-key go together');
  }
  const tlsSecret = objectRef('agent-tls-secret', values['agent-tls-secret'], namespace);
  const caConfigMap = objectRef('agent-ca-configmap', values['agent-ca-configmap'], namespace);
  if (caConfigMap !== undefined && tlsSecret === undefined) {
    throw new ConfigError('--agent-ca-configmap needs --agent-tls-secret');
  }
  const agentSA = values['agent-service-account'] ?? `${namespace}/noma-agent`;
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(agentSA)) {
    throw new ConfigError(`--agent-service-account must be namespace/name, got ${agentSA}`);
  }
  const leaderService = values['leader-service'];
  const podIP = env['POD_IP'] === '' ? undefined : env['POD_IP'];
  if (leaderService !== undefined) {
    if (podIP === undefined) {
      throw new ConfigError('--leader-service needs $POD_IP (downward API: status.podIP)');
    }
    if (cert === undefined && tlsSecret === undefined) {
      throw new ConfigError(
        '--leader-service needs the agent link (--agent-tls-cert/-key or --agent-tls-secret)',
      );
    }
  }
  return {
    kubeconfig: values.kubeconfig,
    namespace,
    watchNamespaces: namespaces(
      values['watch-namespaces'] ?? values['watch-namespace'] ?? env['NOMA_WATCH_NAMESPACES'],
    ),
    httpPort: int('http-port', values['http-port'], 8080, 0),
    agentPort: int('agent-port', values['agent-port'], 8443, 0),
    maxNodesInMaintenance: int(
      'max-nodes-in-maintenance',
      values['max-nodes-in-maintenance'],
      10,
      1,
    ),
    maxSelectedNodes: int('max-selected-nodes', values['max-selected-nodes'], 50, 1),
    notifyWebhookUrl: webhook,
    leaseName: values['lease-name'] ?? 'noma-coordinator',
    leaseDurationMs: duration('lease-duration', values['lease-duration'], 15_000),
    identity: values.identity ?? env['POD_NAME'] ?? `${hostname()}-${process.pid}`,
    statusIntervalMs: duration('status-interval', values['status-interval'], 1_000),
    logLevel,
    agentTlsCert: cert,
    agentTlsKey: key,
    agentTlsSecret: tlsSecret,
    agentCaConfigMap: caConfigMap,
    agentServiceAccount: agentSA,
    agentTokenAudience: values['agent-token-audience'] ?? 'noma.dev',
    agentHeartbeatMs: duration('agent-heartbeat', values['agent-heartbeat'], 10_000),
    agentRetryMs: duration('agent-retry', values['agent-retry'], 5_000),
    agentMaxAuthenticating: int(
      'agent-max-authenticating',
      values['agent-max-authenticating'] ?? env['NOMA_AGENT_MAX_AUTHENTICATING'],
      32,
      1,
    ),
    agentUpgradeRate: int(
      'agent-upgrade-rate',
      values['agent-upgrade-rate'] ?? env['NOMA_AGENT_UPGRADE_RATE'],
      10,
      1,
    ),
    agentHandshakeTimeoutMs: duration(
      'agent-handshake-timeout',
      values['agent-handshake-timeout'] ?? env['NOMA_AGENT_HANDSHAKE_TIMEOUT'],
      5_000,
    ),
    leaderService,
    podIP,
    unplannedDowntimeAfterMs: durationOrZero(
      'unplanned-downtime-after',
      values['unplanned-downtime-after'] ?? env['NOMA_UNPLANNED_DOWNTIME_AFTER'],
      10 * 60_000,
    ),
    unplannedDowntimeTaint: taint(
      'unplanned-downtime-taint',
      values['unplanned-downtime-taint'] ?? env['NOMA_UNPLANNED_DOWNTIME_TAINT'],
    ) ?? { key: 'noma.dev/unreachable', effect: 'NoExecute' },
    unplannedDowntimeSettleMs: duration(
      'unplanned-downtime-settle',
      values['unplanned-downtime-settle'] ?? env['NOMA_UNPLANNED_DOWNTIME_SETTLE'],
      60_000,
    ),
    unplannedDowntimeMaxNodes: countOrPercent(
      'unplanned-downtime-max-nodes',
      values['unplanned-downtime-max-nodes'] ?? env['NOMA_UNPLANNED_DOWNTIME_MAX_NODES'],
      { percent: 10 },
    ),
    degradedGpuTaint: taint(
      'degraded-gpu-taint',
      values['degraded-gpu-taint'] ?? env['NOMA_DEGRADED_GPU_TAINT'],
    ),
    unplannedDowntimeNodeSelector: selector(
      'unplanned-downtime-node-selector',
      values['unplanned-downtime-node-selector'] ?? env['NOMA_UNPLANNED_DOWNTIME_NODE_SELECTOR'],
    ),
    degradedGpuNodeSelector: selector(
      'degraded-gpu-node-selector',
      values['degraded-gpu-node-selector'] ?? env['NOMA_DEGRADED_GPU_NODE_SELECTOR'],
    ),
    stuckAfterMs: duration(
      'stuck-after',
      values['stuck-after'] ?? env['NOMA_STUCK_AFTER'],
      2 * 3_600_000,
    ),
    endpointAuth: onOff('endpoint-auth', values['endpoint-auth'] ?? env['NOMA_ENDPOINT_AUTH']),
    tierLabel: tierLabel(values['tier-label'] ?? env['NOMA_TIER_LABEL']),
  };
}

/** A label key, or '' (tiers off); the default is the built-in rules' (agent/labels/rules.ts). */
function tierLabel(text: string | undefined): string {
  if (text === undefined) return DEFAULT_RULES.tier.label;
  const err = text === '' ? undefined : labelKeyError(text);
  if (err !== undefined) throw new ConfigError(`--tier-label: ${err}, got ${JSON.stringify(text)}`);
  return text;
}

/** on (the default) or off. */
function onOff(name: string, text: string | undefined): boolean {
  if (text === undefined || text === 'on') return true;
  if (text === 'off') return false;
  throw new ConfigError(`--${name} must be on or off, got ${JSON.stringify(text)}`);
}

/** A comma-separated list of namespaces, without repeats; undefined or '' = all. */
function namespaces(text: string | undefined): readonly string[] | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const list = [...new Set(text.split(',').map((n) => n.trim()))];
  for (const ns of list) {
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(ns)) {
      throw new ConfigError(`--watch-namespaces: not a namespace name: ${JSON.stringify(ns)}`);
    }
  }
  return list;
}

/** A label selector the coordinator can match itself ('' matches every node). */
function selector(name: string, text: string | undefined): string {
  if (text === undefined) return '';
  if (parseSelector(text) === undefined) {
    throw new ConfigError(`--${name} is not a label selector: ${JSON.stringify(text)}`);
  }
  return text;
}

/** A duration where 0 means "off". */
function durationOrZero(name: string, text: string | undefined, defMs: number): number {
  if (text === '0') return 0;
  return duration(name, text, defMs);
}

const TAINT =
  /^([A-Za-z0-9][-A-Za-z0-9_./]*)(?:=([-A-Za-z0-9_.]*))?:(NoSchedule|PreferNoSchedule|NoExecute)$/;

/** `key[=value]:Effect`, as kubectl taint writes it. */
function taint(
  name: string,
  text: string | undefined,
): { key: string; value?: string; effect: string } | undefined {
  if (text === undefined) return undefined;
  const m = TAINT.exec(text);
  if (m?.[1] === undefined || m[3] === undefined) {
    throw new ConfigError(
      `--${name} must be key[=value]:Effect (NoSchedule, PreferNoSchedule or NoExecute), got ${JSON.stringify(text)}`,
    );
  }
  return { key: m[1], ...(m[2] === undefined ? {} : { value: m[2] }), effect: m[3] };
}

/** A count >= 1, or a percentage such as 10%. */
function countOrPercent(
  name: string,
  text: string | undefined,
  def: { count: number } | { percent: number },
): { count: number } | { percent: number } {
  if (text === undefined) return def;
  const pct = /^([0-9]+)%$/.exec(text);
  if (pct?.[1] !== undefined) return { percent: Number(pct[1]) };
  return { count: int(name, text, 1, 1) };
}
