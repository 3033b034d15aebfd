// What a row leaves behind for whoever reads a failure: its timeline (faults, leadership,
// reboots, side effects), each coordinator's and each agent's log, and every status version,
// all with times relative to the row's start.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { summary } from './faults.js';
import type { Rig } from './rig.js';

const rel = (rig: Rig, at: number) => `+${((at - rig.t0) / 1000).toFixed(2).padStart(7)}s`;

export async function writeRowLogs(rig: Rig, dir: string, result: unknown): Promise<void> {
  await mkdir(dir, { recursive: true });
  const timeline = rig.timeline.map((t) => `${rel(rig, t.at)} ${t.what}`).join('\n');
  const status = rig.versions
    .map((v) => {
      const msgs = (v.m.status?.nodes ?? [])
        .filter((n) => n.message !== undefined)
        .map((n) => `${n.name.split('-').at(-1) ?? ''}: ${n.message ?? ''}`)
        .join(' | ');
      return `${rel(rig, v.at)} rv=${v.rv} ${summary(v.m)}${msgs === '' ? '' : `  [${msgs}]`}`;
    })
    .join('\n');
  const writes: Promise<void>[] = [
    writeFile(join(dir, 'timeline.txt'), `${timeline}\n`),
    writeFile(join(dir, 'status.txt'), `${status}\n`),
    writeFile(join(dir, 'status-last.json'), JSON.stringify(rig.latest ?? null, null, 2)),
    writeFile(join(dir, 'result.json'), JSON.stringify(result, null, 2)),
  ];
  for (const r of rig.replicas) {
    const text = r.logs.map((l) => `${rel(rig, l.at)} ${l.line}`).join('\n');
    writes.push(writeFile(join(dir, `coordinator-${r.identity}.log`), `${text}\n`));
  }
  for (const n of rig.nodes) {
    const text = n.agents
      .map((a, i) => `=== agent process ${i + 1} (pid ${String(a.proc.pid)})\n${a.logs.join('\n')}`)
      .join('\n');
    writes.push(writeFile(join(dir, `agent-${n.name}.log`), `${text}\n`));
  }
  await Promise.all(writes);
}
