import { parseArgs } from 'node:util';
import type { LevelWithSilent } from 'pino';
import { parseDuration } from '../shared/duration.js';

/** The agent's whole configuration, parsed once at start from flags and environment. */
export interface AgentConfig {
  readonly nodeName: string;
  /** Absent: in-cluster configuration (the pod's ServiceAccount). */
  readonly kubeconfig: string | undefined;
  readonly nvidiaSmi: string;
  readonly nvidiaSmiTimeoutMs: number;
  /** Absent: the built-in rules (the seed label schema). */
  readonly rulesFile: string | undefined;
  readonly healthHost: string;
  /** 0: any free port (logged at start). */
  readonly healthPort: number;
  readonly stateDir: string;
  readonly discoveryIntervalMs: number;
  readonly logLevel: LevelWithSilent;
  /** Absent: no link; the agent only labels. */
  readonly coordinatorUrl: string | undefined;
  /** Absent: the system's CAs. */
  readonly coordinatorCa: string | undefined;
  readonly tokenFile: string;
  readonly executor: 'local' | 'host';
  readonly workDir: string;
  readonly hostWorkDir: string;
  readonly bootIdFile: string;
  /** Executor local: the simulated machine reboots when this file appears. */
  readonly rebootRequestFile: string | undefined;
  readonly coordinatorUnreachableMs: number;
}

interface FlagSpec {
  readonly flag: string;
  readonly env: string;
  readonly default: string | undefined;
  readonly arg: string;
  readonly help: string;
}

/** One table for parsing, env fallbacks and --help, so they cannot disagree. */
export const FLAGS = [
  {
    flag: 'node-name',
    env: 'NODE_NAME',
    default: undefined,
    arg: '<name>',
    help: 'Node to label: the Node this pod runs on (set NODE_NAME from the downward API, spec.nodeName). Required.',
  },
  {
    flag: 'kubeconfig',
    env: 'KUBECONFIG',
    default: undefined,
    arg: '<file>',
    help: 'kubeconfig file. Unset: in-cluster config from the pod ServiceAccount.',
  },
  {
    flag: 'nvidia-smi',
    env: 'NOMA_NVIDIA_SMI',
    default: 'nvidia-smi',
    arg: '<path>',
    help: 'nvidia-smi executable (a name is looked up on PATH). Missing: a node without NVIDIA driver.',
  },
  {
    flag: 'nvidia-smi-timeout',
    env: 'NOMA_NVIDIA_SMI_TIMEOUT',
    default: '10s',
    arg: '<duration>',
    help: 'Kill nvidia-smi after this long; a timeout is a detection error.',
  },
  {
    flag: 'rules',
    env: 'NOMA_RULES',
    default: undefined,
    arg: '<file>',
    help: 'Label rules (YAML or JSON; a ConfigMap in production). Unset: built-in rules (the seed schema). Re-read on SIGHUP.',
  },
  {
    flag: 'health-host',
    env: 'NOMA_HEALTH_HOST',
    default: '0.0.0.0',
    arg: '<addr>',
    help: 'Address of the health server.',
  },
  {
    flag: 'health-port',
    env: 'NOMA_HEALTH_PORT',
    default: '9402',
    arg: '<n>',
    help: 'Port of the health server (/healthz, /readyz, /metrics, /status); 0 picks a free port and logs it.',
  },
  {
    flag: 'state-dir',
    env: 'NOMA_STATE_DIR',
    default: '/var/lib/noma',
    arg: '<dir>',
    help: 'Directory for agent state (labels owned, action ledger); a hostPath in production. Created if missing.',
  },
  {
    flag: 'discovery-interval',
    env: 'NOMA_DISCOVERY_INTERVAL',
    default: '5m',
    arg: '<duration>',
    help: 'Re-run GPU discovery this often (Go duration: 30s, 5m, 1h). SIGHUP runs it at once.',
  },
  {
    flag: 'log-level',
    env: 'NOMA_LOG_LEVEL',
    default: 'info',
    arg: '<level>',
    help: 'trace, debug, info, warn, error, fatal or silent.',
  },
  {
    flag: 'coordinator-url',
    env: 'NOMA_COORDINATOR_URL',
    default: undefined,
    arg: '<url>',
    help: "The coordinator's agent link, e.g. wss://noma-coordinator.noma-system.svc:8443. Unset: no link (labels only).",
  },
  {
    flag: 'coordinator-ca',
    env: 'NOMA_COORDINATOR_CA',
    default: undefined,
    arg: '<file>',
    help: "PEM CA that signed the coordinator's certificate (a mounted ConfigMap or Secret). Unset: the system CAs.",
  },
  {
    flag: 'token-file',
    env: 'NOMA_TOKEN_FILE',
    default: '/var/run/secrets/noma.dev/token',
    arg: '<file>',
    help: 'Projected ServiceAccount token (audience noma.dev) presented to the coordinator; re-read on every connect.',
  },
  {
    flag: 'executor',
    env: 'NOMA_EXECUTOR',
    default: 'host',
    arg: 'local|host',
    help: "Where actions run: host = in the host's namespaces (nsenter into PID 1; needs hostPID and privileges); local = as local processes in --work-dir (sandbox, tests; reboots are simulated).",
  },
  {
    flag: 'work-dir',
    env: 'NOMA_WORK_DIR',
    default: undefined,
    arg: '<dir>',
    help: 'Where scripts are written and local actions run. Default: <state-dir>/work.',
  },
  {
    flag: 'host-work-dir',
    env: 'NOMA_HOST_WORK_DIR',
    default: undefined,
    arg: '<dir>',
    help: 'Where --work-dir is on the host (executor host). Default: the same path (hostPath mounted at the same place).',
  },
  {
    flag: 'boot-id-file',
    env: 'NOMA_BOOT_ID_FILE',
    default: '/proc/sys/kernel/random/boot_id',
    arg: '<file>',
    help: 'Where the current boot ID is read. With --executor local the simulated machine owns it (created if missing).',
  },
  {
    flag: 'reboot-request-file',
    env: 'NOMA_REBOOT_REQUEST_FILE',
    default: undefined,
    arg: '<file>',
    help: 'Executor local only: a Reboot creates this file (holding the current boot ID) and waits for the simulated machine to stop the agent and boot again (new boot ID). Unset: Reboot fails.',
  },
  {
    flag: 'coordinator-unreachable-threshold',
    env: 'NOMA_COORDINATOR_UNREACHABLE_THRESHOLD',
    default: '2m',
    arg: '<duration>',
    help: '/readyz fails once the coordinator has been unreachable this long.',
  },
] as const satisfies readonly FlagSpec[];

type FlagName = (typeof FLAGS)[number]['flag'];

export function helpText(): string {
  const lines = [
    'Usage: noma-agent [flags]',
    '',
    'The noma node agent: discovers the GPUs of this node, keeps its labels and serves health',
    'endpoints. Every flag can also be set by the environment variable shown; a flag wins.',
    '',
    'Flags:',
  ];
  for (const f of FLAGS as readonly FlagSpec[]) {
    lines.push(`  --${f.flag} ${f.arg}`);
    lines.push(`      ${f.help}`);
    lines.push(`      env ${f.env}${f.default === undefined ? '' : `, default ${f.default}`}`);
  }
  lines.push('  --help', '      Print this help and exit.');
  lines.push('  --version', '      Print the version and exit.');
  lines.push('', 'Signals: SIGHUP re-reads the rules and re-runs discovery; SIGTERM shuts down');
  lines.push('gracefully and leaves all labels in place.');
  return lines.join('\n');
}

export type ConfigResult =
  | { kind: 'config'; config: AgentConfig }
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'error'; message: string };

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

function durationMs(name: string, text: string, min: number, errors: string[]): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms < min) {
    errors.push(`--${name}: "${text}" is not a duration of at least ${min} ms (e.g. 30s, 5m)`);
    return 0;
  }
  return ms;
}

/** Parses flags over environment over defaults. Never exits: main decides what an error means. */
export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv): ConfigResult {
  const options = Object.fromEntries([
    ...FLAGS.map((f) => [f.flag, { type: 'string' as const }]),
    ['help', { type: 'boolean' as const, short: 'h' }],
    ['version', { type: 'boolean' as const }],
  ]) as Record<string, { type: 'string' | 'boolean'; short?: string }>;
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }));
  } catch (err) {
    return { kind: 'error', message: (err as Error).message };
  }
  if (values['help'] === true) return { kind: 'help' };
  if (values['version'] === true) return { kind: 'version' };

  const get = (name: FlagName): string | undefined => {
    const spec = FLAGS.find((f) => f.flag === name) as FlagSpec;
    const fromFlag = values[name];
    if (typeof fromFlag === 'string') return fromFlag;
    const fromEnv = env[spec.env];
    return fromEnv !== undefined && fromEnv !== '' ? fromEnv : spec.default;
  };

  const errors: string[] = [];
  const nodeName = get('node-name') ?? '';
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(nodeName)) {
    errors.push(
      nodeName === ''
        ? '--node-name is required (or NODE_NAME from the downward API)'
        : `--node-name: "${nodeName}" is not a valid Node name`,
    );
  }
  const portText = get('health-port') ?? '';
  const healthPort = /^\d{1,5}$/.test(portText) ? Number(portText) : -1;
  if (healthPort < 0 || healthPort > 65535) {
    errors.push(`--health-port: "${portText}" is not a port number (0-65535)`);
  }
  const logLevel = get('log-level') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    errors.push(`--log-level: "${logLevel}" is not one of ${LOG_LEVELS.join(', ')}`);
  }
  const nvidiaSmi = get('nvidia-smi') ?? '';
  if (nvidiaSmi === '') errors.push('--nvidia-smi must not be empty');
  const stateDir = get('state-dir') ?? '';
  if (stateDir === '') errors.push('--state-dir must not be empty');
  const coordinatorUrl = get('coordinator-url');
  if (coordinatorUrl !== undefined) {
    let scheme: string;
    try {
      scheme = new URL(coordinatorUrl).protocol;
    } catch {
      scheme = 'invalid';
    }
    if (scheme !== 'wss:' && scheme !== 'https:') {
      errors.push(`--coordinator-url: "${coordinatorUrl}" is not a wss:// URL`);
    }
  }
  const executor = get('executor') ?? 'host';
  if (executor !== 'local' && executor !== 'host') {
    errors.push(`--executor: "${executor}" is not local or host`);
  }
  const workDir = get('work-dir') ?? `${stateDir.replace(/\/+$/, '')}/work`;
  const config: AgentConfig = {
    nodeName,
    kubeconfig: get('kubeconfig'),
    nvidiaSmi,
    nvidiaSmiTimeoutMs: durationMs(
      'nvidia-smi-timeout',
      get('nvidia-smi-timeout') ?? '',
      100,
      errors,
    ),
    rulesFile: get('rules'),
    healthHost: get('health-host') ?? '0.0.0.0',
    healthPort,
    stateDir,
    discoveryIntervalMs: durationMs(
      'discovery-interval',
      get('discovery-interval') ?? '',
      1_000,
      errors,
    ),
    logLevel: logLevel as LevelWithSilent,
    coordinatorUrl,
    coordinatorCa: get('coordinator-ca'),
    tokenFile: get('token-file') ?? '',
    executor: executor === 'local' ? 'local' : 'host',
    workDir,
    hostWorkDir: get('host-work-dir') ?? workDir,
    bootIdFile: get('boot-id-file') ?? '',
    rebootRequestFile: get('reboot-request-file'),
    coordinatorUnreachableMs: durationMs(
      'coordinator-unreachable-threshold',
      get('coordinator-unreachable-threshold') ?? '',
      1_000,
      errors,
    ),
  };
  return errors.length > 0
    ? { kind: 'error', message: errors.join('\n') }
    : { kind: 'config', config };
}
