// Builds, starts, finds and stops the local control plane (the Go program in this folder).
// Used by `npm run cluster:*` and by the integration tests' global setup.
import { spawn, execFile } from 'node:child_process';
import { existsSync, openSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { request } from 'node:https';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse } from 'yaml';

const run = promisify(execFile);

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const MODULE_DIR = join(ROOT, 'test', 'cluster');
export const BINARY = join(MODULE_DIR, 'bin', 'testcluster');
export const CLUSTER_DIR = process.env['NOMA_CLUSTER_DIR'] ?? join(ROOT, '.cluster');
export const KUBECONFIG = join(CLUSTER_DIR, 'kubeconfig');
export const K8S_VERSION = 'v1.36.3';

const files = (dir: string) => ({
  pid: join(dir, 'supervisor.pid'),
  log: join(dir, 'supervisor.log'),
  kubeconfig: join(dir, 'kubeconfig'),
});

/** Compiles the control plane. Go's build cache makes a second call cheap. */
export async function build(): Promise<void> {
  const ldflags = [
    '-s',
    '-w',
    `-X k8s.io/component-base/version.gitVersion=${K8S_VERSION}`,
    '-X k8s.io/component-base/version.gitMajor=1',
    `-X k8s.io/component-base/version.gitMinor=${K8S_VERSION.split('.')[1] ?? ''}`,
  ].join(' ');
  try {
    await run('go', ['version']);
  } catch {
    throw new Error('Go >= 1.26 is needed to build the local control plane (test/cluster)');
  }
  await run('go', ['build', '-trimpath', '-ldflags', ldflags, '-o', BINARY, '.'], {
    cwd: MODULE_DIR,
    // A go line newer than the local Go must fail here, not download a toolchain.
    env: { ...process.env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0' },
    maxBuffer: 64 * 1024 * 1024,
  });
}

interface KubeconfigFile {
  clusters: { cluster: { server: string; 'certificate-authority-data': string } }[];
  users: { user: { token: string } }[];
}

/** GET a path on the API server with the admin identity; resolves to status and body. */
export function apiGet(
  path: string,
  headers: Record<string, string> = {},
  kubeconfig = KUBECONFIG,
): Promise<{ status: number; body: string }> {
  const kc = parse(readFileSync(kubeconfig, 'utf8')) as KubeconfigFile;
  const cluster = kc.clusters[0]?.cluster;
  const token = kc.users[0]?.user.token;
  if (!cluster || !token) throw new Error(`${kubeconfig}: no cluster or user`);
  const url = new URL(path, cluster.server);
  return new Promise((resolvePromise, reject) => {
    const req = request(
      url,
      {
        ca: Buffer.from(cluster['certificate-authority-data'], 'base64'),
        headers: { ...headers, Authorization: `Bearer ${token}` },
        timeout: 5000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          resolvePromise({ status: res.statusCode ?? 0, body });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** PID of the running supervisor of the control plane in `dir`, if any. */
export function supervisorPid(dir = CLUSTER_DIR): number | undefined {
  const { pid: pidFile } = files(dir);
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
}

/** True when a control plane started from `dir` is running and ready. */
export async function isUp(dir = CLUSTER_DIR): Promise<boolean> {
  const { kubeconfig } = files(dir);
  if (supervisorPid(dir) === undefined || !existsSync(kubeconfig)) return false;
  try {
    const { status, body } = await apiGet('/readyz', {}, kubeconfig);
    return status === 200 && body === 'ok';
  } catch {
    return false;
  }
}

export interface UpResult {
  kubeconfig: string;
  /** False when an already running control plane was reused. */
  started: boolean;
}

/** Starts the control plane in the background (or reuses a running one) and waits until ready. */
export async function up(dir = CLUSTER_DIR, timeoutMs = 180_000): Promise<UpResult> {
  const { kubeconfig, log: logFile } = files(dir);
  if (await isUp(dir)) return { kubeconfig, started: false };
  await down(dir);
  if (!existsSync(BINARY)) await build();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const log = openSync(logFile, 'w');
  // Own session and process group: it outlives this process, and down() signals the group.
  const child = spawn(BINARY, ['up', '--dir', dir], {
    detached: true,
    stdio: ['ignore', log, log],
  });
  child.unref();
  const state: { exitCode?: number } = {};
  child.on('exit', (code) => (state.exitCode = code ?? -1));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (state.exitCode !== undefined) {
      throw new Error(
        `control plane exited with ${state.exitCode} while starting:\n${tail(logFile)}\n(logs in ${dir})`,
      );
    }
    if (await isUp(dir)) return { kubeconfig, started: true };
    await sleep(250);
  }
  await down(dir);
  throw new Error(`control plane not ready after ${timeoutMs} ms:\n${tail(logFile)}`);
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** True while a process with this PID exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops the control plane and every process it started. Safe to call when none runs. */
export async function down(dir = CLUSTER_DIR): Promise<boolean> {
  const pid = supervisorPid(dir);
  if (pid !== undefined) {
    const signalGroup = (sig: NodeJS.Signals) => {
      try {
        process.kill(-pid, sig);
      } catch {
        // the group is already gone
      }
    };
    signalGroup('SIGTERM');
    const deadline = Date.now() + 30_000;
    while (alive(pid) && Date.now() < deadline) await sleep(100);
    // Children die with the supervisor (Pdeathsig); this is for anything that hangs.
    signalGroup('SIGKILL');
  }
  rmSync(files(dir).pid, { force: true });
  rmSync(files(dir).kubeconfig, { force: true });
  return pid !== undefined;
}
