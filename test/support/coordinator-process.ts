// Runs the real coordinator as a child process (TypeScript source through tsx) and finds its
// health port in its logs.
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export interface CoordinatorProcess {
  readonly proc: ChildProcess;
  readonly baseUrl: string;
  readonly logs: string[];
  kill(sig?: NodeJS.Signals): Promise<number | null>;
}

export async function startCoordinator(
  kubeconfig: string,
  args: string[],
  timeoutMs = 30_000,
  /** Run dist/coordinator/main.js (the benchmark: no transpiler in the measured process). */
  fromDist = false,
  /** On top of this process's environment (e.g. the downward API's POD_IP). */
  env: Record<string, string> = {},
  /** Resolve once it leads (the default), or once its HTTP port listens (a standby). */
  until: 'leading' | 'listening' = 'leading',
): Promise<CoordinatorProcess> {
  const entry = fromDist
    ? ['dist/coordinator/main.js']
    : ['--import', 'tsx', 'coordinator/main.ts'];
  const proc = spawn(
    process.execPath,
    [...entry, '--kubeconfig', kubeconfig, '--http-port', '0', ...args],
    {
      cwd: ROOT,
      // /metrics and /agents open (a local process the test owns); a test of their
      // authorization passes `--endpoint-auth on`, which wins over the environment.
      env: { ...process.env, NOMA_LOG_LEVEL: 'info', NOMA_ENDPOINT_AUTH: 'off', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const logs: string[] = [];
  const exited = new Promise<number | null>((res) => {
    proc.once('exit', (code) => {
      res(code);
    });
  });
  const seen: { port?: number; leading?: boolean } = {};
  let buffer = '';
  const onData = (chunk: Buffer) => {
    buffer += chunk.toString();
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      logs.push(line);
      const m = /"httpPort":(\d+)/.exec(line);
      if (m?.[1] !== undefined) seen.port = Number(m[1]);
      if (line.includes('watching NodeMaintenances')) seen.leading = true;
    }
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  const deadline = Date.now() + timeoutMs;
  while (seen.port === undefined || (until === 'leading' && seen.leading !== true)) {
    if (proc.exitCode !== null) {
      throw new Error(`coordinator exited with ${proc.exitCode}:\n${logs.join('\n')}`);
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`coordinator did not start leading in time:\n${logs.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    proc,
    baseUrl: `http://127.0.0.1:${seen.port}`,
    logs,
    async kill(sig = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
      return exited;
    },
  };
}

/**
 * The flags every integration test's coordinator gets: its own namespace (steps' pods, and the
 * only NodeMaintenances it watches), its own Lease and identity, a short lease and a fast
 * status interval, so that tests in parallel never act on each other's objects.
 */
export function testCoordinatorArgs(namespace: string, lease: string, identity: string): string[] {
  return [
    ...['--namespace', namespace, '--watch-namespace', namespace],
    ...['--lease-name', lease, '--identity', identity],
    ...['--lease-duration', '3s', '--status-interval', '200ms'],
  ];
}
