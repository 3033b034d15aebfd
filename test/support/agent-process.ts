// Runs the real agent as a child process (from source through tsx, or from dist for the
// benchmark), with the fake nvidia-smi, and finds its health port in its logs.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FAKE_FIXTURE_ENV, FAKE_NVIDIA_SMI, fixturePath } from './nvidia-smi.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export interface AgentProcess {
  readonly proc: ChildProcess;
  readonly baseUrl: string;
  readonly logs: string[];
  readonly dir: string;
  /** Replaces what the fake nvidia-smi prints with another fixture. */
  useFixture(name: string): Promise<void>;
  signal(sig: NodeJS.Signals): void;
  /** SIGTERM and wait; resolves to the exit code. */
  stop(): Promise<number | null>;
  get(path: string): Promise<{ status: number; body: unknown }>;
}

export interface StartAgentOptions {
  nodeName: string;
  kubeconfig: string;
  fixture: string;
  args?: string[];
  /** Run dist/agent/main.js instead of the TypeScript source. */
  fromDist?: boolean;
  env?: Record<string, string>;
}

/** Starts the agent and resolves once its health server listens. */
export async function startAgent(opts: StartAgentOptions): Promise<AgentProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'noma-agent-'));
  const fixtureFile = join(dir, 'nvidia-smi-output');
  await copyFile(fixturePath(opts.fixture), fixtureFile);
  const entry =
    opts.fromDist === true ? ['dist/agent/main.js'] : ['--import', 'tsx', 'agent/main.ts'];
  const proc = spawn(
    process.execPath,
    [
      ...entry,
      '--node-name',
      opts.nodeName,
      '--kubeconfig',
      opts.kubeconfig,
      '--nvidia-smi',
      FAKE_NVIDIA_SMI,
      '--health-host',
      '127.0.0.1',
      '--health-port',
      '0',
      '--state-dir',
      join(dir, 'state'),
      ...(opts.args ?? []),
    ],
    {
      cwd: ROOT,
      env: { ...process.env, ...opts.env, [FAKE_FIXTURE_ENV]: fixtureFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const logs: string[] = [];
  const exited = new Promise<number | null>((res) => {
    proc.once('exit', (code) => {
      res(code);
    });
  });
  const baseUrl = await new Promise<string>((res, rej) => {
    let buffer = '';
    const onData = (chunk: Buffer): void => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        logs.push(line);
        const m = /"address":"(http:\/\/[^"]+)"/.exec(line);
        if (m?.[1] !== undefined) res(m[1]);
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', (c: Buffer) => logs.push(c.toString()));
    void exited.then((code) => {
      rej(new Error(`agent exited with ${String(code)} before listening:\n${logs.join('\n')}`));
    });
  });
  return {
    proc,
    baseUrl,
    logs,
    dir,
    useFixture: (name) => copyFile(fixturePath(name), fixtureFile),
    signal: (sig) => proc.kill(sig),
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      const code = await exited;
      await rm(dir, { recursive: true, force: true });
      return code;
    },
    async get(path) {
      const res = await fetch(`${baseUrl}${path}`);
      const text = await res.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // /metrics is text
      }
      return { status: res.status, body };
    },
  };
}
