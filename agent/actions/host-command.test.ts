import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  actionEnv,
  nsenterArgv,
  parseExitFile,
  parseSystemctlShow,
  systemctlKillArgv,
  systemctlShowArgv,
  systemdRunArgv,
  unitName,
  WRAPPER,
  wrapperArgv,
} from './host-command.js';
import { signalMarked } from './procs.js';

const run = promisify(execFile);

describe('systemdRunArgv', () => {
  it.each([
    [
      'a script',
      {
        unit: 'noma-abc.service',
        id: 'u/n/0/1',
        env: { PATH: '/bin', NOMA_ACTION_ID: 'u/n/0/1' },
        argv: ['/bin/sh', '-c', 'W', 'noma-action', '/x/exit', '/x/output', '0', 'bash', '/s.sh'],
      },
      [
        'systemd-run',
        '--unit=noma-abc.service',
        '--description=noma action u/n/0/1',
        '--collect',
        '--quiet',
        '--property=KillMode=process',
        '--property=StandardInput=null',
        '--setenv=PATH=/bin',
        '--setenv=NOMA_ACTION_ID=u/n/0/1',
        '--',
        '/bin/sh',
        '-c',
        'W',
        'noma-action',
        '/x/exit',
        '/x/output',
        '0',
        'bash',
        '/s.sh',
      ],
    ],
    [
      'an argument that looks like an option stays the command’s',
      { unit: 'noma-b.service', id: 'i', env: {}, argv: ['--help', '--unit=evil'] },
      [
        'systemd-run',
        '--unit=noma-b.service',
        '--description=noma action i',
        '--collect',
        '--quiet',
        '--property=KillMode=process',
        '--property=StandardInput=null',
        '--',
        '--help',
        '--unit=evil',
      ],
    ],
  ])('%s', (_name, req, want) => {
    expect(systemdRunArgv(req)).toEqual(want);
  });

  it('runs under nsenter into the target pid, the host in production', () => {
    expect(nsenterArgv(1, ['systemctl', 'reboot'])).toEqual([
      'nsenter',
      '--target',
      '1',
      '--mount',
      '--uts',
      '--ipc',
      '--net',
      '--pid',
      '--',
      'systemctl',
      'reboot',
    ]);
    expect(nsenterArgv(4242, ['true'])[2]).toBe('4242');
  });

  it('names one unit per ID and asks systemd the right things', () => {
    expect(unitName('0123abcd')).toBe('noma-0123abcd.service');
    expect(systemctlShowArgv('noma-a.service')).toEqual([
      'systemctl',
      'show',
      '--property=LoadState,ActiveState,ExecMainCode,ExecMainStatus,MainPID',
      'noma-a.service',
    ]);
    expect(systemctlKillArgv('noma-a.service', 'SIGTERM')).toEqual([
      'systemctl',
      'kill',
      '--kill-who=all',
      '--signal=SIGTERM',
      'noma-a.service',
    ]);
  });
});

describe('parseSystemctlShow', () => {
  const show = (o: Record<string, string>): string =>
    Object.entries(o)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n');
  it.each([
    [
      'running',
      { LoadState: 'loaded', ActiveState: 'active', MainPID: '812' },
      { active: true, mainPid: 812 },
    ],
    [
      'starting',
      { LoadState: 'loaded', ActiveState: 'activating', MainPID: '0' },
      { active: true },
    ],
    [
      'exited 3, still loaded',
      {
        LoadState: 'loaded',
        ActiveState: 'failed',
        ExecMainCode: '1',
        ExecMainStatus: '3',
        MainPID: '0',
      },
      { active: false, exitCode: 3 },
    ],
    [
      'killed by SIGKILL',
      { LoadState: 'loaded', ActiveState: 'failed', ExecMainCode: '2', ExecMainStatus: '9' },
      { active: false, signal: 9 },
    ],
    [
      'collected (gone)',
      { LoadState: 'not-found', ActiveState: 'inactive', ExecMainCode: '0', ExecMainStatus: '0' },
      { active: false },
    ],
    ['empty output', {}, { active: false }],
  ])('%s', (_name, fields, want) => {
    expect(parseSystemctlShow(show(fields))).toEqual(want);
  });
});

describe('parseExitFile', () => {
  it.each([
    ['0\n', 0],
    ['137\n', 137],
    ['', undefined],
    ['1', 1],
    ['12x', undefined],
    ['-1', undefined],
  ])('%j → %s', (text, want) => {
    expect(parseExitFile(text)).toBe(want);
  });
});

describe('actionEnv', () => {
  it('is a clean environment marked with the action ID', () => {
    expect(actionEnv('u/n/0/1', '/usr/bin:/bin')).toEqual({
      PATH: '/usr/bin:/bin',
      HOME: '/root',
      LANG: 'C.UTF-8',
      NOMA_ACTION: '1',
      NOMA_ACTION_ID: 'u/n/0/1',
    });
  });
});

describe('the wrapper', () => {
  const inTmp = async (fn: (dir: string) => Promise<void>): Promise<void> => {
    const dir = await mkdtemp(join(tmpdir(), 'wrapper-'));
    try {
      await fn(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  it('records the exit code and appends output to the file, without a gate', async () => {
    await inTmp(async (dir) => {
      const paths = { exit: join(dir, 'exit'), output: join(dir, 'out') };
      const argv = wrapperArgv(['sh', '-c', 'echo out; echo err >&2; exit 7', 'x'], paths, false);
      const r = await run(argv[0] ?? '', argv.slice(1)).then(
        () => 0,
        (e: unknown) => (e as { code: number }).code,
      );
      expect(r).toBe(7);
      expect(await readFile(paths.exit, 'utf8')).toBe('7\n');
      expect(await readFile(paths.output, 'utf8')).toBe('out\nerr\n');
    });
  });

  it('with the gate, runs nothing until it reads `go`, and nothing at all on EOF', async () => {
    await inTmp(async (dir) => {
      const paths = { exit: join(dir, 'exit'), output: join(dir, 'out') };
      const argv = wrapperArgv(['sh', '-c', 'echo ran >> ran'], paths, true);
      const child = execFile(argv[0] ?? '', argv.slice(1), { cwd: dir });
      child.stdin?.end(); // the agent died before recording the process
      const code = await new Promise((r) => child.on('exit', r));
      expect(code).toBe(125);
      await expect(readFile(join(dir, 'ran'), 'utf8')).rejects.toThrow();
      await expect(readFile(paths.exit, 'utf8')).rejects.toThrow();

      const ok = execFile(argv[0] ?? '', argv.slice(1), { cwd: dir });
      ok.stdin?.end('go\n');
      expect(await new Promise((r) => ok.on('exit', r))).toBe(0);
      expect(await readFile(join(dir, 'ran'), 'utf8')).toBe('ran\n');
      expect(await readFile(paths.exit, 'utf8')).toBe('0\n');
    });
  });

  it('says `started` while the command runs: killed then, it recorded no exit code', async () => {
    await inTmp(async (dir) => {
      const paths = { exit: join(dir, 'exit'), output: join(dir, 'out') };
      const argv = wrapperArgv(['sleep', '30'], paths, false);
      const id = `wrapper-test/${process.pid}/${Date.now()}`;
      const child = execFile(argv[0] ?? '', argv.slice(1), {
        cwd: dir,
        env: { ...process.env, NOMA_ACTION_ID: id },
      });
      for (let i = 0; i < 100; i++) {
        if ((await readFile(paths.exit, 'utf8').catch(() => '')) !== '') break;
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(await readFile(paths.exit, 'utf8')).toBe('started\n');
      expect(parseExitFile('started\n')).toBeUndefined();
      child.kill('SIGKILL');
      await new Promise((r) => child.on('exit', r));
      expect(await readFile(paths.exit, 'utf8')).toBe('started\n');
      await signalMarked(id, 'SIGKILL'); // the orphaned sleep
    });
  });

  it('is plain POSIX sh', () => {
    expect(WRAPPER).not.toMatch(/\[\[|function |local /);
  });
});
