// vitest's default output, then the fault table and the one RESULT line, last, for CI and the
// closing note. Rows come from each test's meta (chaos.test.ts sets task.meta.chaos).
import type { RunnerTask, RunnerTestFile } from 'vitest';
import { DefaultReporter } from 'vitest/reporters';
import type { RowResult } from './evaluate.js';

declare module 'vitest' {
  interface TaskMeta {
    chaos?: RowResult;
  }
}

function rowsOf(tasks: readonly RunnerTask[]): RowResult[] {
  return tasks.flatMap((t) => {
    if (t.type === 'suite') return rowsOf(t.tasks);
    return t.meta.chaos === undefined ? [] : [t.meta.chaos];
  });
}

const mark = (r: RowResult, name: string): string => {
  const c = r.checks.find((x) => x.name === name);
  return c === undefined ? '-' : c.ok ? 'ok' : 'FAIL';
};

function pad(cells: readonly string[], widths: readonly number[]): string {
  return cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
}

export function table(rows: readonly RowResult[]): string[] {
  const head = [
    'row',
    'result',
    'final',
    'once',
    'cordon',
    'no-rollback',
    'recover_s',
    'stall_s',
    'fault point',
  ];
  const body = rows.map((r) => [
    r.id,
    r.ok ? 'PASS' : 'FAIL',
    mark(r, 'final'),
    mark(r, 'once'),
    mark(r, 'cordon'),
    mark(r, 'no-rollback'),
    r.recoveryS === undefined ? '-' : r.recoveryS.toFixed(1),
    r.stallS === undefined ? '-' : r.stallS.toFixed(1),
    r.point,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const lines = [
    pad(head, widths),
    pad(
      widths.map((w) => '-'.repeat(w)),
      widths,
    ),
  ];
  lines.push(...body.map((b) => pad(b, widths)));
  const failed = rows.filter((r) => !r.ok);
  if (failed.length > 0) lines.push('', 'failed checks:');
  for (const r of failed) {
    for (const c of r.checks.filter((x) => !x.ok)) lines.push(`  ${r.id} ${c.name}: ${c.detail}`);
    lines.push(`  ${r.id} fault: ${r.detail}`, `  ${r.id} logs: ${r.logDir}`);
  }
  return lines;
}

export function resultLine(rows: readonly RowResult[], expected: number): string {
  const sum = (f: (r: RowResult) => number) => rows.reduce((n, r) => n + f(r), 0);
  const maxRecovery = Math.max(0, ...rows.map((r) => r.recoveryS ?? 0));
  return (
    `RESULT chaos faults=${expected} passed=${rows.filter((r) => r.ok).length} ` +
    `repeated_actions=${sum((r) => r.repeatedActions)} lost_nodes=${sum((r) => r.lostNodes)} ` +
    `rollbacks=${sum((r) => r.rollbacks)} max_recovery_s=${maxRecovery.toFixed(1)}`
  );
}

function countRows(tasks: readonly RunnerTask[]): number {
  return tasks.reduce(
    (n, t) => n + (t.type === 'suite' ? countRows(t.tasks) : t.name.startsWith('row ') ? 1 : 0),
    0,
  );
}

export default class ChaosReporter extends DefaultReporter {
  // onFinished, not onTestRunEnd: the default summary is printed here, and the table and the
  // RESULT line must come after it.
  override onFinished(files: RunnerTestFile[] = [], errors: unknown[] = []): void {
    // eslint-disable-next-line @typescript-eslint/no-deprecated
    super.onFinished(files, errors);
    const rows = rowsOf(files);
    // A row that crashed before it could report still counts, as not passed.
    const expected = Math.max(rows.length, countRows(files));
    if (expected === 0) return;
    console.log(
      ['', 'chaos fault table', ...table(rows), '', resultLine(rows, expected)].join('\n'),
    );
  }
}
