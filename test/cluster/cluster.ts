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

const PID_FILE = join(CLUSTER_DIR, 'supervisor.pid');
const LOG_FILE = join(CLUSTER_DIR, 'supervisor.log');

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

function supervisorPid(): number | undefined {
  if (!existsSync(PID_FILE)) return undefined;
  const pid = Number(readFileSync(PID_FILE, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** True when a control plane started from CLUSTER_DIR is running and ready. */
export async function isUp(): Promise<boolean> {
  if (supervisorPid() === undefined || !existsSync(KUBECONFIG)) return false;
  try {
    const { status, body } = await apiGet('/readyz');
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
export async function up(timeoutMs = 180_000): Promise<UpResult> {
  if (await isUp()) return { kubeconfig: KUBECONFIG, started: false };
  await down();
  if (!existsSync(BINARY)) await build();
  mkdirSync(CLUSTER_DIR, { recursive: true, mode: 0o700 });
  const log = openSync(LOG_FILE, 'w');
  // Own session and process group: it outlives this process, and down() signals the group.
  const child = spawn(BINARY, ['up', '--dir', CLUSTER_DIR], {
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
        `control plane exited with ${state.exitCode} while starting:\n${tail(LOG_FILE)}\n(logs in ${CLUSTER_DIR})`,
      );
    }
    if (await isUp()) return { kubeconfig: KUBECONFIG, started: true };
    await sleep(250);
  }
  await down();
  throw new Error(`control plane not ready after ${timeoutMs} ms:\n${tail(LOG_FILE)}`);
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops the control plane and every process it started. Safe to call when none runs. */
export async function down(): Promise<boolean> {
  const pid = supervisorPid();
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
  rmSync(PID_FILE, { force: true });
  rmSync(KUBECONFIG, { force: true });
  return pid !== undefined;
}
