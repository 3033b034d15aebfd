// Invalid `noma init` invocations: each exits non-zero, names the flag at fault and prints no
// manifest. None of them needs a cluster.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CASES_DIR } from '../../test/fixtures/cli/init-cases.js';
import { runNoma } from '../../test/support/cli.js';

const base = ['--name', 'm', '--ticket', 'ENG-1'];

const invalid: [string, string[], string][] = [
  ['no node selection', ['init', 'reboot', ...base], '--nodes'],
  [
    '--nodes and --selector',
    ['init', 'reboot', ...base, '--nodes', 'a', '-l', 'x=y'],
    '--selector',
  ],
  [
    '--nodes and --node-count',
    ['init', 'reboot', ...base, '--nodes', 'a', '--node-count', '2'],
    '--node-count',
  ],
  [
    'a bad duration',
    ['init', 'reboot', ...base, '--nodes', 'a', '--drain-timeout', '30 minutes'],
    '--drain-timeout',
  ],
  [
    'a duration without unit',
    ['init', 'reboot', ...base, '--nodes', 'a', '--drain-timeout', '30'],
    '--drain-timeout',
  ],
  [
    'a drain timeout over 30 days',
    ['init', 'reboot', ...base, '--nodes', 'a', '--drain-timeout', '721h'],
    '--drain-timeout: "721h" is longer than 720h',
  ],
  [
    'a bad skip-wait-for-delete timeout',
    ['init', 'delete-node', ...base, '--nodes', 'a', '--skip-wait-for-delete-timeout', '2'],
    '--skip-wait-for-delete-timeout',
  ],
  [
    'a step timeout over 30 days',
    ['init', 'run', ...base, '--nodes', 'a', '--timeout', '720h1s', '--', 'true'],
    '--timeout: "720h1s" is longer than 720h',
  ],
  [
    'a lowercase ticket',
    ['init', 'reboot', '--name', 'm', '--ticket', 'eng-1234', '--nodes', 'a'],
    '--ticket',
  ],
  [
    'a ticket without number',
    ['init', 'reboot', '--name', 'm', '--ticket', 'ENG', '--nodes', 'a'],
    '--ticket',
  ],
  ['no ticket', ['init', 'reboot', '--name', 'm', '--nodes', 'a'], '--ticket'],
  ['no name', ['init', 'reboot', '--ticket', 'ENG-1', '--nodes', 'a'], '--name'],
  [
    'an invalid name',
    ['init', 'reboot', '--name', 'Reboot_GPU', '--ticket', 'ENG-1', '--nodes', 'a'],
    '--name',
  ],
  [
    'a name too long for a label with --node-count',
    ['init', '--name', 'a'.repeat(70), '--ticket', 'ENG-1', '--node-count', '1'],
    '--name',
  ],
  ['an empty node name', ['init', 'reboot', ...base, '--nodes', 'a,,b'], '--nodes'],
  ['a bad selector', ['init', 'reboot', ...base, '-l', 'gpu in h100'], '--selector'],
  ['a selector with a bad key', ['init', 'reboot', ...base, '-l', 'Bad Key=1'], '--selector'],
  ['a node count of 0', ['init', 'reboot', ...base, '--node-count', '0'], '--node-count'],
  [
    'a node count that is no number',
    ['init', 'reboot', ...base, '--node-count', 'four'],
    '--node-count',
  ],
  [
    'a bad max-unavailable',
    ['init', 'reboot', ...base, '--nodes', 'a', '--max-unavailable', '-1'],
    '--max-unavailable',
  ],
  [
    'a bad max-failed-nodes',
    ['init', 'reboot', ...base, '--nodes', 'a', '--max-failed-nodes', 'one'],
    '--max-failed-nodes',
  ],
  [
    'a max-failed-nodes fraction',
    ['init', 'reboot', ...base, '--nodes', 'a', '--max-failed-nodes', '0.5'],
    '--max-failed-nodes',
  ],
  [
    'a value for --delete-emptydir-data',
    ['init', 'reboot', ...base, '--nodes', 'a', '--delete-emptydir-data=true'],
    '--delete-emptydir-data',
  ],
  [
    'a bad taint effect',
    ['init', 'reboot', ...base, '--nodes', 'a', '--taint', 'runai=drain:NoRun'],
    '--taint',
  ],
  [
    'a taint without effect',
    ['init', 'reboot', ...base, '--nodes', 'a', '--taint', 'runai=drain'],
    '--taint',
  ],
  ['a bad namespace', ['init', 'reboot', ...base, '--nodes', 'a', '-n', 'Ops'], '--namespace'],
  [
    '--complete with delete-node',
    ['init', 'delete-node', ...base, '--nodes', 'a', '--complete'],
    '--complete',
  ],
  [
    '--dry-run without --node-count',
    ['init', 'reboot', ...base, '--nodes', 'a', '--dry-run'],
    '--dry-run',
  ],
  ['--image on reboot', ['init', 'reboot', ...base, '--nodes', 'a', '--image', 'x'], '--image'],
  ['--image on the template', ['init', ...base, '--nodes', 'a', '--image', 'x'], '--image'],
  [
    'an empty --image',
    ['init', 'run', ...base, '--nodes', 'a', '--image', '', '--', 'true'],
    '--image',
  ],
  [
    'a bad step timeout',
    ['init', 'run', ...base, '--nodes', 'a', '--timeout', 'soon', '--', 'true'],
    '--timeout',
  ],
  ['run without a command', ['init', 'run', ...base, '--nodes', 'a'], 'command'],
  [
    'a script file that does not exist',
    ['init', 'script', 'nope.sh', ...base, '--nodes', 'a'],
    'nope.sh',
  ],
  ['an unknown flag', ['init', 'reboot', ...base, '--nodes', 'a', '--force'], '--force'],
];

describe('noma init rejects invalid flags', () => {
  it.each(invalid)('%s', async (_what, args, flag) => {
    const run = await runNoma(args, { cwd: CASES_DIR });
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^error: /);
    expect(run.stderr).toContain(flag);
  });

  it('reports every mistake at once', async () => {
    const run = await runNoma([
      'init',
      'reboot',
      '--name',
      'X',
      '--ticket',
      'x',
      '--drain-timeout',
      '1y',
    ]);
    expect(run.stderr.split('\n').filter((l) => l.startsWith('error: '))).toEqual([
      expect.stringContaining('--name'),
      expect.stringContaining('--ticket'),
      expect.stringContaining('--nodes'),
      expect.stringContaining('--drain-timeout'),
    ]);
  });

  it('names --context when the context is not in the kubeconfig (before any request)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'noma-kc-'));
    const kubeconfig = join(dir, 'config');
    await writeFile(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]',
        'users: [{name: u, user: {token: t}}]',
        'contexts: [{name: east, context: {cluster: c, user: u}}]',
        'current-context: east',
      ].join('\n'),
    );
    const run = await runNoma([
      'init',
      'reboot',
      ...base,
      '--nodes',
      'a',
      '--preview',
      '--kubeconfig',
      kubeconfig,
      '--context',
      'west',
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--context: no context "west"');
    expect(run.stderr).toContain('east');
  });

  it('does not read the kubeconfig without --node-count or --preview', async () => {
    const run = await runNoma([
      'init',
      'reboot',
      ...base,
      '--nodes',
      'a',
      '--kubeconfig',
      '/nonexistent/kubeconfig',
    ]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('kind: NodeMaintenance');
  });
});
