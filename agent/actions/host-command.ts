// Pure pieces of how an action is started on the host: the wrapper that records the exit code,
// the action's environment, the nsenter prefix and the systemd-run command line. Kept apart from
// the executors so each can be table-tested without starting anything.
import { ACTION_ID_VAR } from './procs.js';

/** The PATH actions get on a host (the agent's own PATH is the image's, not the host's). */
export const HOST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The environment of an action: nothing of the agent's (its token path, its Kubernetes
 * variables), only a PATH, HOME, LANG and the variables noma defines for actions. NOMA_ACTION_ID
 * also marks every process of the action (procs.ts).
 */
export function actionEnv(id: string, path: string): Record<string, string> {
  return { PATH: path, HOME: '/root', LANG: 'C.UTF-8', NOMA_ACTION: '1', [ACTION_ID_VAR]: id };
}

/**
 * The wrapper every action runs under (POSIX sh, on the host): `$1` exit file, `$2` output file,
 * `$3` gate (1: wait for a line `go` on stdin first), then the command. With the gate, the
 * command runs only once the agent has recorded the process in its ledger; an agent that dies
 * before that closes the pipe, `read` sees EOF and nothing runs. The exit file says `started`
 * just before the command runs (no file: it never ran), then holds its exit code: a file,
 * so it survives the agent; output goes to a file, so no pipe keeps the step open after its main
 * process exits (children it left are found by their environment, not waited for).
 */
export const WRAPPER = [
  'if [ "$3" = 1 ]; then IFS= read -r go || exit 125; [ "$go" = go ] || exit 125; fi',
  'exitf=$1; out=$2; shift 3',
  'exec >>"$out" 2>&1 </dev/null',
  'echo started >"$exitf"',
  '"$@"',
  'rc=$?',
  'echo "$rc" >"$exitf"',
  'exit "$rc"',
].join('\n');

export interface WrapperPaths {
  /** Where the exit code is written, as the program sees it (host path). */
  readonly exit: string;
  /** Where output is appended, as the program sees it (host path). */
  readonly output: string;
}

/** The argv that runs `argv` under the wrapper. */
export function wrapperArgv(argv: readonly string[], paths: WrapperPaths, gate: boolean): string[] {
  return [
    '/bin/sh',
    '-c',
    WRAPPER,
    'noma-action',
    paths.exit,
    paths.output,
    gate ? '1' : '0',
    ...argv,
  ];
}

/** Pure: the exit code the wrapper recorded; undefined when it recorded none (empty, torn). */
export function parseExitFile(text: string): number | undefined {
  const t = text.trim();
  return /^\d{1,3}$/.test(t) ? Number(t) : undefined;
}

/** Enters the namespaces of `targetPid` (PID 1 in production: the host). */
export function nsenterArgv(targetPid: number, argv: readonly string[]): string[] {
  return [
    'nsenter',
    '--target',
    String(targetPid),
    '--mount',
    '--uts',
    '--ipc',
    '--net',
    '--pid',
    '--',
    ...argv,
  ];
}

/** The transient unit of an action: one name per action ID (`key` is the ledger's hash). */
export function unitName(key: string): string {
  return `noma-${key}.service`;
}

export interface SystemdRunRequest {
  readonly unit: string;
  readonly id: string;
  readonly env: Readonly<Record<string, string>>;
  /** The command, already wrapped (wrapperArgv without the gate: the unit is recorded first). */
  readonly argv: readonly string[];
}

/**
 * `systemd-run` (run inside the host's namespaces) starting the action as a transient service in
 * its own cgroup, outside the agent's: the agent's memory limit does not apply and an agent
 * restart does not touch it. KillMode=process: when the main process exits, what it started is
 * left running (and reported), as without systemd; a cancel kills the whole cgroup
 * (`systemctl kill --kill-who=all`). --collect: the unit is unloaded once it ended, failed or
 * not; the exit code is in the wrapper's file.
 */
export function systemdRunArgv(req: SystemdRunRequest): string[] {
  return [
    'systemd-run',
    `--unit=${req.unit}`,
    `--description=noma action ${req.id.slice(0, 200)}`,
    '--collect',
    '--quiet',
    '--property=KillMode=process',
    '--property=StandardInput=null',
    ...Object.entries(req.env).map(([k, v]) => `--setenv=${k}=${v}`),
    '--',
    ...req.argv,
  ];
}

export function systemctlShowArgv(unit: string): string[] {
  return [
    'systemctl',
    'show',
    '--property=LoadState,ActiveState,ExecMainCode,ExecMainStatus,MainPID',
    unit,
  ];
}

export function systemctlKillArgv(unit: string, sig: NodeJS.Signals): string[] {
  return ['systemctl', 'kill', '--kill-who=all', `--signal=${sig}`, unit];
}

export interface UnitState {
  /** The unit still runs its main process. */
  readonly active: boolean;
  /** From systemd, for a unit still loaded after its end: CLD_EXITED's code or the signal. */
  readonly exitCode?: number;
  readonly signal?: number;
  readonly mainPid?: number;
}

const RUNNING_STATES = new Set(['active', 'activating', 'deactivating', 'reloading']);

/** Pure: `systemctl show` output (KEY=value lines) → what the runner needs. */
export function parseSystemctlShow(text: string): UnitState {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) kv.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  const loaded = kv.get('LoadState') !== 'not-found';
  const active = loaded && RUNNING_STATES.has(kv.get('ActiveState') ?? '');
  const mainPid = Number(kv.get('MainPID'));
  const status = Number(kv.get('ExecMainStatus'));
  const code = kv.get('ExecMainCode');
  // ExecMainCode is the siginfo code: 1 exited, 2 killed, 3 dumped; 0 never ran.
  const exit =
    !active && Number.isInteger(status)
      ? code === '1'
        ? { exitCode: status }
        : code === '2' || code === '3'
          ? { signal: status }
          : {}
      : {};
  return { active, ...exit, ...(mainPid > 0 ? { mainPid } : {}) };
}
