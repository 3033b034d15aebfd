import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  describeLeftovers,
  environHas,
  isAlive,
  markedProcesses,
  parseStat,
  readStat,
  signalMarked,
} from './procs.js';

describe('parseStat', () => {
  it('reads the fields after a name with spaces and parentheses', () => {
    const rest = Array.from({ length: 49 }, (_, i) => String(i + 3));
    rest[0] = 'S';
    rest[2] = '400'; // pgrp
    rest[3] = '401'; // session
    rest[19] = '123456'; // starttime
    const s = parseStat(42, `42 (my (odd) name) ${rest.join(' ')}`);
    expect(s).toEqual({
      pid: 42,
      comm: 'my (odd) name',
      state: 'S',
      pgrp: 400,
      session: 401,
      startTime: 123456,
    });
    expect(parseStat(1, 'garbage')).toBeUndefined();
  });
});

describe('environHas', () => {
  const env = (...e: string[]): Buffer => Buffer.from(e.map((x) => `${x}\0`).join(''));
  it.each([
    [env('A=1', 'NOMA_ACTION_ID=u/n/0/1', 'B=2'), 'u/n/0/1', true],
    [env('NOMA_ACTION_ID=u/n/0/1'), 'u/n/0/1', true],
    [Buffer.from('A=1\0NOMA_ACTION_ID=u/n/0/1'), 'u/n/0/1', true],
    [env('NOMA_ACTION_ID=u/n/0/10'), 'u/n/0/1', false],
    [env('XNOMA_ACTION_ID=u/n/0/1'), 'u/n/0/1', false],
    [env(), 'u/n/0/1', false],
  ])('%#', (buf, id, want) => {
    expect(environHas(buf, 'NOMA_ACTION_ID', id)).toBe(want);
  });
});

describe('describeLeftovers', () => {
  const p = (pid: number, comm: string) => ({
    pid,
    comm,
    state: 'S',
    pgrp: 1,
    session: 1,
    startTime: pid,
  });
  it('is empty for none and bounded for many', () => {
    expect(describeLeftovers([])).toBe('');
    expect(describeLeftovers([p(5, 'sleep')])).toBe(
      '1 process it started still running (not waited for): 5 sleep',
    );
    const many = describeLeftovers(Array.from({ length: 50 }, (_, i) => p(i, 'x'.repeat(100))));
    expect(many).toMatch(/and 42 more$/);
    expect(many.length).toBeLessThan(600);
  });
});

describe('live processes', () => {
  it('finds, checks and signals the processes marked with an action ID', async () => {
    const id = `test/${process.pid}/${Date.now()}`;
    const child = spawn('sh', ['-c', 'setsid sleep 30 & exec sleep 30'], {
      env: { PATH: process.env['PATH'] ?? '/bin', NOMA_ACTION_ID: id },
      stdio: 'ignore',
    });
    try {
      let marked = await markedProcesses(id);
      // Until both have exec'd sleep (sh and setsid are marked too, for a moment).
      const settled = () => marked.length === 2 && marked.every((m) => m.comm === 'sleep');
      for (let i = 0; i < 100 && !settled(); i++) {
        await new Promise((r) => setTimeout(r, 50));
        marked = await markedProcesses(id);
      }
      expect(marked.map((m) => m.comm)).toEqual(['sleep', 'sleep']);
      const stat = await readStat(child.pid ?? 0);
      expect(stat).toBeDefined();
      expect(await isAlive(child.pid ?? 0, stat?.startTime ?? 0)).toBe(true);
      // A pid whose start time differs is another process.
      expect(await isAlive(child.pid ?? 0, (stat?.startTime ?? 0) + 1)).toBe(false);
      expect(await signalMarked(id, 'SIGKILL')).toBe(2);
      await new Promise((r) => child.on('exit', r));
      expect(await isAlive(child.pid ?? 0, stat?.startTime ?? 0)).toBe(false);
    } finally {
      await signalMarked(id, 'SIGKILL');
    }
  });
});
