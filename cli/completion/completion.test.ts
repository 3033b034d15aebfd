import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { beforeAll, describe, expect, it } from 'vitest';
import { runNoma } from '../../test/support/cli.js';
import { completionTree } from './tree.js';

const scripts: Record<string, string> = {};
/** The commands `noma --help` lists, in its order: what `noma <TAB>` offers. */
let rootCommands: string[] = [];

beforeAll(async () => {
  const help = (await runNoma(['--help'])).stdout;
  const commands = help.slice(
    help.indexOf('Commands:'),
    help.indexOf('\n\n', help.indexOf('Commands:')),
  );
  rootCommands = [...commands.matchAll(/^ {2}([a-z][\w-]*)/gm)].map((m) => m[1] ?? '');
  for (const shell of ['bash', 'zsh', 'fish']) {
    const run = await runNoma(['completion', shell]);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    scripts[shell] = run.stdout;
  }
});

describe('completionTree', () => {
  const cli = new Command('x')
    .addCommand(
      new Command('get')
        .argument('<file>')
        .option('--context <name>', 'context', (v: string, p: string[]) => [...p, v], [])
        .option('--kubeconfig <file>', 'kubeconfig')
        .addOption(new Option('-o, --output <format>', 'format').choices(['table', 'json']))
        .option('-w, --watch', 'follow\n  changes'),
    )
    .addCommand(new Command('secret').summary('not shown'), { hidden: true });

  it('reads commands, flags and what their values are from the help', () => {
    const tree = completionTree(cli);
    expect(tree.commands.map((c) => c.name)).toEqual(['get', 'help']);
    const get = tree.commands[0];
    expect(get?.path).toEqual(['get']);
    expect(get?.fileArguments).toBe(true);
    expect(get?.flags).toEqual([
      {
        names: ['--context'],
        description: 'context',
        value: { kind: 'text', name: 'name' },
        repeatable: true,
      },
      {
        names: ['--kubeconfig'],
        description: 'kubeconfig',
        value: { kind: 'files' },
        repeatable: false,
      },
      {
        names: ['-o', '--output'],
        description: 'format',
        value: { kind: 'choices', choices: ['table', 'json'] },
        repeatable: false,
      },
      {
        names: ['-w', '--watch'],
        description: 'follow changes',
        value: undefined,
        repeatable: false,
      },
      {
        names: ['-h', '--help'],
        description: 'display help for command',
        value: undefined,
        repeatable: false,
      },
    ]);
  });

  it('refuses a name that a script could not hold unquoted', () => {
    const bad = new Command('x').addOption(new Option('--mode <m>').choices(['a b']));
    expect(() => completionTree(bad)).toThrow(/cannot complete the word "a b"/);
  });
});

/** Sources the bash script in a real bash and completes each line (the cursor at its end). */
function bashComplete(lines: readonly string[][]): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'noma-completion-'));
  writeFileSync(join(dir, 'noma.bash'), scripts['bash'] ?? '');
  writeFileSync(join(dir, 'kubeconfig.yaml'), '');
  const calls = lines.map((words) => `t ${words.map((w) => `'${w}'`).join(' ')}`).join('\n');
  const script = `set -u
source ./noma.bash
t() { COMP_WORDS=("$@"); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _noma; echo "\${COMPREPLY[*]}"; }
complete -p noma kubectl-noma
${calls}`;
  const run = spawnSync('bash', ['--norc', '--noprofile', '-c', script], {
    cwd: dir,
    encoding: 'utf8',
  });
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  return run.stdout.split('\n').slice(0, -1);
}

describe('noma completion bash, in bash', () => {
  it('completes commands, subcommands, flags and their values', () => {
    const cases: [string[], string][] = [
      [['noma', 'st'], 'status'],
      [['noma', ''], rootCommands.join(' ')],
      [['noma', 'init', 're'], 'reboot'],
      [['noma', 'nodes', 'acc'], 'accept-inventory'],
      [['noma', '--ver'], '--version'],
      [['noma', 'status', '-A', '--w'], '--watch'],
      [['noma', 'status', '-o', ''], 'table json yaml'],
      [['noma', 'nodes', '-o', 'w'], 'wide'],
      // A flag's value is not taken for a subcommand: the command is still `nodes`.
      [['noma', 'nodes', '--context', 'prod', '--cont'], '--context'],
      [['noma', 'init', 'script', '--kubeconfig', 'kube'], 'kubeconfig.yaml'],
      [['noma', 'init', 'script', 'kube'], 'kubeconfig.yaml'],
      [['noma', 'status', '-n', ''], ''],
      [['kubectl-noma', 'comp'], 'completion'],
      [['noma', 'completion', ''], ''],
    ];
    const got = bashComplete(cases.map(([words]) => words));
    expect(got.slice(0, 2)).toEqual(['complete -F _noma noma', 'complete -F _noma kubectl-noma']);
    expect(rootCommands).toEqual(expect.arrayContaining(['init', 'nodes', 'status', 'completion']));
    expect(got.slice(2)).toEqual(cases.map(([, want]) => want));
  });
});

describe('noma completion zsh and fish (the text; the shells are not on every machine)', () => {
  it.each([
    ['zsh', '#compdef noma kubectl-noma'],
    ['zsh', '  compdef _noma noma kubectl-noma'],
    ['zsh', '_noma__nodes() {'],
    ['zsh', "    'status:show maintenances and per-node progress'"],
    ['zsh', '        accept-inventory) _noma__nodes__accept_inventory ;;'],
    ['zsh', "    '(-o --output)'{-o+,--output=}'[output format]:value:(table wide json yaml)' \\"],
    ['zsh', "    '*--context=[kubeconfig context to ask (repeatable)]:name: ' \\"],
    [
      'zsh',
      "    '--kubeconfig=[kubeconfig file (default: $KUBECONFIG or ~/.kube/config)]:file:_files' \\",
    ],
    [
      'zsh',
      "    '(-w --watch)'{-w,--watch}'[follow changes until Ctrl-C (or until the named one is deleted)]' \\",
    ],
    ['fish', 'complete -c noma -f'],
    [
      'fish',
      "complete -c noma -n '__noma_at \\'\\'' -a status -d 'show maintenances and per-node progress'",
    ],
    [
      'fish',
      "complete -c kubectl-noma -n '__noma_at \\'nodes\\'' -a accept-inventory -d 'take the GPUs that answer now as the node’s inventory (after removing a GPU)'",
    ],
    [
      'fish',
      "complete -c noma -n '__noma_at \\'nodes\\'' -s o -l output -x -a 'table wide json yaml' -d 'output format'",
    ],
    ['fish', "complete -c noma -n '__noma_at \\'init script\\'' -F"],
    [
      'fish',
      "complete -c noma -n '__noma_at \\'status\\'' -l kubeconfig -r -F -d 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)'",
    ],
    ['fish', "        case 'init'"],
    ['fish', '            echo script run reboot delete-node'],
  ])('%s has %s', (shell, line) => {
    expect((scripts[shell] ?? '').split('\n')).toContain(line);
  });

  it('exits 2 for a shell it does not know', async () => {
    const run = await runNoma(['completion', 'tcsh']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(
      /'tcsh' is invalid for argument 'shell'. Allowed choices are bash, zsh, fish/,
    );
  });
});
