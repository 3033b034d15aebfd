// The flags of pause/resume/restore/retry, checked before anything is read from a cluster.
import { describe, expect, it } from 'vitest';
import { runNoma } from '../../test/support/cli.js';

describe('noma pause/resume/restore/retry', () => {
  it.each([
    [
      'pause',
      `kubectl patch noma reboot-gpu -n default --type merge -p '{"spec":{"paused":true}}'`,
    ],
    [
      'resume',
      `kubectl patch noma reboot-gpu -n default --type merge -p '{"spec":{"paused":false}}'`,
    ],
    [
      'restore',
      'kubectl annotate noma reboot-gpu -n default noma.dev/restore=gpu-01,gpu-02 --overwrite',
    ],
    [
      'retry',
      'kubectl annotate noma reboot-gpu -n default noma.dev/retry=gpu-01,gpu-02 --overwrite',
    ],
  ])('%s --help has examples and the kubectl equivalent', async (cmd, kubectl) => {
    const { code, stdout } = await runNoma([cmd, '--help']);
    expect(code).toBe(0);
    expect(stdout).toContain('Examples:');
    expect(stdout).toContain(`noma ${cmd} reboot-gpu`);
    expect(stdout).toContain(kubectl);
  });

  it('are listed in the top-level help', async () => {
    const { stdout } = await runNoma(['--help']);
    for (const cmd of ['pause', 'resume', 'restore', 'retry'])
      expect(stdout).toMatch(new RegExp(`^  ${cmd} `, 'm'));
  });

  it.each<[string, string[], RegExp]>([
    [
      'restore needs nodes',
      ['restore', 'm'],
      /error: --node: name the nodes to restore: --node NODE \(repeatable\), or --all-failed/,
    ],
    [
      '--node and --all-failed exclude each other',
      ['restore', 'm', '--node', 'a', '--all-failed'],
      /error: --all-failed: cannot be combined with --node/,
    ],
    [
      '* is not a node name',
      ['restore', 'm', '--node', '*'],
      /--node: not a node name: \*; use --all-failed/,
    ],
    [
      'retry needs nodes',
      ['retry', 'm'],
      /error: --node: name the nodes to retry: --node NODE \(repeatable\)$/m,
    ],
    ['retry has no --all-failed', ['retry', 'm', '--all-failed'], /unknown option '--all-failed'/],
    ['a name is required', ['pause'], /missing required argument 'name'/],
    [
      '--timeout is a duration',
      ['pause', 'm', '--wait', '--timeout', 'soon'],
      /--timeout: "soon" must be a duration/,
    ],
  ])('usage: %s (exit 2)', async (_what, args, message) => {
    const run = await runNoma([...args, '--kubeconfig', '/nonexistent']);
    expect(run.stderr).toMatch(message);
    expect(run.code).toBe(2);
  });
});
