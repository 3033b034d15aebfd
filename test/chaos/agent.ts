// The agent process of a chaos node: test/support/agent-process.ts's startAgent, but from the
// suite's own build of the working tree (build.ts) when there is one. A row starts an agent per
// node and again after every reboot, on a 2-core machine: tsx's transform at each start is a
// good part of a row's time.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { AgentProcess } from '../support/agent-process.js';
import { FAKE_FIXTURE_ENV, FAKE_NVIDIA_SMI, fixturePath } from '../support/nvidia-smi.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** `node <entry>` of a program: the build's JavaScript, or the source through tsx. */
export function entry(buildDir: string, program: 'agent' | 'coordinator'): string[] {
  return buildDir === ''
    ? ['--import', 'tsx', `${program}/main.ts`]
    : [join(buildDir, program, 'main.js')];
}

export interface ChaosAgentOptions {
  readonly nodeName: string;
  readonly kubeconfig: string;
  readonly buildDir: string;
  readonly args: readonly string[];
}

/** Resolves to the health server's address once the agent logs it; rejects if it exits first. */
function listening(
  proc: ChildProcess & { stdout: Readable; stderr: Readable },
  logs: string[],
  exited: Promise<number | null>,
): Promise<string> {
  return new Promise<string>((res, rej) => {
    let buffer = '';
    proc.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        logs.push(line);
        const m = /"address":"(http:\/\/[^"]+)"/.exec(line);
        if (m?.[1] !== undefined) res(m[1]);
      }
    });
    proc.stderr.on('data', (c: Buffer) => logs.push(c.toString()));
    void exited.then((code) => {
      rej(new Error(`agent exited with ${String(code)} before listening:\n${logs.join('\n')}`));
    });
  });
}

/** Starts the agent (fake nvidia-smi, L4 fixture); resolves once its health server listens. */
export async function startChaosAgent(opts: ChaosAgentOptions): Promise<AgentProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'noma-agent-'));
  const fixtureFile = join(dir, 'nvidia-smi-output');
  await copyFile(fixturePath('l4.csv'), fixtureFile);
  const proc = spawn(
    process.execPath,
    [
      ...entry(opts.buildDir, 'agent'),
      ...['--node-name', opts.nodeName, '--kubeconfig', opts.kubeconfig],
      ...['--nvidia-smi', FAKE_NVIDIA_SMI, '--health-host', '127.0.0.1', '--health-port', '0'],
      ...opts.args,
    ],
    {
      cwd: ROOT,
      env: { ...process.env, [FAKE_FIXTURE_ENV]: fixtureFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const logs: string[] = [];
  const exited = new Promise<number | null>((res) => {
    proc.once('exit', (code) => {
      res(code);
    });
  });
  const baseUrl = await listening(proc, logs, exited);
  return {
    proc,
    baseUrl,
    logs,
    dir,
    useFixture: (name) => copyFile(fixturePath(name), fixtureFile),
    signal: (sig) => proc.kill(sig),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
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
