// Actions that outlive the agent, for real: a process running the agent's action side (ledger +
// runner + executor) is SIGKILLed mid-script; a new one on the same state dir follows the
// script again; the script ran once and its result lands once. Once with the local executor, and
// once through nsenter into a "host" this test makes itself (new PID, mount, UTS, IPC and network
// namespaces with unshare) — never PID 1 of the machine running the tests.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ActionResult, MessageOf } from '../../shared/protocol.js';
import { NsenterExecutor } from './executor.js';
import { Ledger } from './ledger.js';
import { markedProcesses, signalMarked } from './procs.js';
import { ActionRunner } from './runner.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const url = (p: string): string => pathToFileURL(join(repo, p)).href;

/** The agent's action side in a process of its own, printing results as JSON lines. */
const CHILD = `
import { createLogger } from '${url('shared/log.ts')}';
import { LocalExecutor, NsenterExecutor } from '${url('agent/actions/executor.ts')}';
import { Ledger } from '${url('agent/actions/ledger.ts')}';
import { ActionRunner } from '${url('agent/actions/runner.ts')}';
const c = JSON.parse(process.argv[2]);
const executor = c.targetPid === undefined
  ? new LocalExecutor(c.workDir, c.bootIdFile, undefined)
  : new NsenterExecutor(c.workDir, c.workDir, c.bootIdFile, { targetPid: c.targetPid, systemd: false });
const bootID = await executor.bootID();
const ledger = new Ledger(c.stateDir);
await ledger.load(bootID);
const print = (x) => process.stdout.write(JSON.stringify(x) + '\\n');
const runner = new ActionRunner({
  log: createLogger('child', 'silent'), ledger, executor, bootID, pollMs: 100, progressMs: 200,
  result: (r) => print({ type: 'result', result: r }),
  progress: () => undefined,
});
await runner.resume();
if (c.start !== undefined) await runner.start(c.start);
print({ type: 'ready' });
setInterval(() => undefined, 60_000);
`;

interface Child {
  readonly proc: ChildProcess;
  readonly lines: { type: string; result?: ActionResult }[];
  waitFor(
    pred: (l: { type: string; result?: ActionResult }) => boolean,
    ms?: number,
  ): Promise<void>;
}

function startChild(childFile: string, config: Record<string, unknown>): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', childFile, JSON.stringify(config)], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: Child['lines'] = [];
  const listeners = new Set<() => void>();
  createInterface({ input: proc.stdout }).on('line', (l) => {
    lines.push(JSON.parse(l) as Child['lines'][number]);
    for (const f of listeners) f();
  });
  return {
    proc,
    lines,
    waitFor: (pred, ms = 20_000) =>
      new Promise((res, rej) => {
        const check = (): void => {
          if (lines.some(pred)) {
            listeners.delete(check);
            clearTimeout(timer);
            res();
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          rej(new Error(`timed out; lines: ${JSON.stringify(lines)}`));
        }, ms);
        listeners.add(check);
        check();
      }),
  };
}

async function killed(c: Child): Promise<void> {
  if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
  const exit = new Promise((r) => c.proc.once('exit', r));
  c.proc.kill('SIGKILL');
  await exit;
}

/** A "host" of our own: new namespaces with a process in them whose pid nsenter targets. */
interface FakeHost {
  readonly targetPid: number;
  close(): Promise<void>;
}

const UNSHARE = ['--fork', '--pid', '--mount-proc', '--mount', '--uts', '--ipc', '--net'];

function canMakeHost(): boolean {
  const r = spawnSync('unshare', [...UNSHARE, 'true'], { stdio: 'ignore', timeout: 10_000 });
  return r.status === 0 && spawnSync('nsenter', ['--version'], { stdio: 'ignore' }).status === 0;
}

async function startFakeHost(): Promise<FakeHost> {
  const proc = spawn(
    'unshare',
    [...UNSHARE, 'sh', '-c', 'hostname noma-fake-host && exec sleep infinity'],
    { stdio: 'ignore' },
  );
  const pid = proc.pid ?? 0;
  let targetPid = 0;
  for (let i = 0; i < 100 && targetPid === 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
    targetPid = Number(children.trim().split(' ')[0] ?? 0);
  }
  if (targetPid === 0) throw new Error('the fake host did not start');
  // Its hostname is set once `sleep` runs there.
  for (let i = 0; i < 100; i++) {
    const comm = await readFile(`/proc/${targetPid}/comm`, 'utf8').catch(() => '');
    if (comm.trim() === 'sleep') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    targetPid,
    close: async () => {
      const exit = new Promise((r) => proc.once('exit', r));
      // The namespace's init: when it goes, everything in the namespace goes.
      try {
        process.kill(targetPid, 'SIGKILL');
      } catch {
        // gone
      }
      await exit;
    },
  };
}

describe('actions that outlive the agent', () => {
  let dir = '';
  let childFile = '';
  let host: FakeHost | undefined;
  const children: Child[] = [];
  const ids: string[] = [];
  beforeAll(async () => {
    // The CI machine runs as root with unshare: a machine that cannot make the fake host fails
    // these tests rather than skip them.
    if (!canMakeHost()) throw new Error('unshare --pid --mount is not allowed here (needs root)');
    host = await startFakeHost();
  });
  afterAll(async () => {
    await host?.close();
  });
  afterEach(async () => {
    await Promise.all(children.splice(0).map(killed));
    for (const id of ids.splice(0)) await signalMarked(id, 'SIGKILL');
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  async function setup(): Promise<Record<string, string>> {
    dir = await mkdtemp(join(tmpdir(), 'outlive-'));
    childFile = join(dir, 'child.mts');
    await writeFile(childFile, CHILD);
    const workDir = join(dir, 'work');
    await mkdir(workDir);
    const bootIdFile = join(dir, 'boot_id');
    await writeFile(bootIdFile, 'boot-1\n');
    return { stateDir: join(dir, 'state'), workDir, bootIdFile };
  }

  const scriptStart = (id: string, script: string): MessageOf<'action.start'> => {
    ids.push(id);
    return {
      v: 1,
      type: 'action.start',
      id,
      action: { type: 'Script', script, args: [] },
      timeoutMs: 60_000,
      retryable: false,
    };
  };

  async function killMidScript(targetPid: number | undefined): Promise<void> {
    const paths = await setup();
    const count = join(paths.workDir ?? '', 'count');
    const marker = join(paths.workDir ?? '', 'started');
    const msg = scriptStart(
      `u/outlive/${String(targetPid ?? 'local')}/${Date.now()}`,
      `echo run >> ${count}; touch ${marker}; sleep 2; echo done; exit 5`,
    );
    const target = targetPid === undefined ? {} : { targetPid };
    const first = startChild(childFile, { ...paths, ...target, start: msg });
    children.push(first);
    for (let i = 0; i < 400 && !existsSync(marker); i++)
      await new Promise((r) => setTimeout(r, 25));
    expect(existsSync(marker)).toBe(true);
    await killed(first); // SIGKILL mid-script
    expect(first.lines.filter((l) => l.type === 'result')).toEqual([]);
    // The script did not die with the agent.
    expect((await markedProcesses(msg.id)).length).toBeGreaterThan(0);

    const second = startChild(childFile, { ...paths, ...target });
    children.push(second);
    await second.waitFor((l) => l.type === 'result');
    // The coordinator re-sends after the new agent's hello: the recorded result, no new run.
    const third = startChild(childFile, { ...paths, ...target, start: msg });
    children.push(third);
    await third.waitFor((l) => l.type === 'ready');
    await new Promise((r) => setTimeout(r, 500));

    const results = second.lines.filter((l) => l.type === 'result').map((l) => l.result);
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({
      id: msg.id,
      outcome: 'failed',
      exitCode: 5,
      outputTail: 'done\n',
    });
    const resent = third.lines.filter((l) => l.type === 'result').map((l) => l.result);
    expect(resent).toEqual(results);
    expect(await readFile(count, 'utf8')).toBe('run\n');
  }

  it('local executor: SIGKILL of the agent mid-script; the script keeps running, its result lands once', async () => {
    await killMidScript(undefined);
  }, 60_000);

  it('nsenter (no systemd): SIGKILL of the agent mid-script; followed again, result lands once', async () => {
    await killMidScript(host?.targetPid);
  }, 60_000);

  it('nsenter runs the action in the target’s namespaces, not the agent’s', async () => {
    const paths = await setup();
    const targetPid = host?.targetPid ?? 0;
    const executor = new NsenterExecutor(
      paths.workDir ?? '',
      paths.workDir ?? '',
      paths.bootIdFile,
      {
        targetPid,
        systemd: false,
      },
    );
    expect(executor.usesSystemd).toBe(false);
    const ledger = new Ledger(paths.stateDir ?? '');
    await ledger.load('boot-1');
    const results: ActionResult[] = [];
    const runner = new ActionRunner({
      log: pino({ level: 'silent' }),
      ledger,
      executor,
      bootID: 'boot-1',
      pollMs: 50,
      result: (r) => results.push(r),
      progress: () => undefined,
    });
    const msg = scriptStart(
      `u/ns/${Date.now()}`,
      'hostname; cat /proc/1/comm; echo "$$"; env | grep -c ^NOMA_ACTION_ID=',
    );
    await runner.start(msg);
    for (let i = 0; i < 200 && results.length === 0; i++)
      await new Promise((r) => setTimeout(r, 25));
    await runner.stop();
    expect(results[0]?.outcome).toBe('succeeded');
    const [hostname, init, pid, marked] = (results[0]?.outputTail ?? '').trim().split('\n');
    expect(hostname).toBe('noma-fake-host');
    expect(init).toBe('sleep'); // the fake host's PID 1
    expect(Number(pid)).toBeLessThan(100); // numbered in the fake host's PID namespace
    expect(marked).toBe('1');
  }, 30_000);
});
