// `noma completion bash|zsh|fish`: prints the completion script of the command tree it is in.
import { Argument, Command } from 'commander';
import { VERSION } from '../../shared/version.js';
import type { CliIO } from '../io.js';
import { SHELLS, completionScript, type Shell } from './scripts.js';
import { completionTree } from './tree.js';

/** `program`: the root command, read when the script is asked for (once the tree is built). */
export function completionCommand(io: CliIO, bin: string, program: () => Command): Command {
  return new Command('completion')
    .summary('print a shell completion script (bash, zsh or fish)')
    .description(
      'Print a script that completes commands, subcommands, flags and flag values (e.g. -o ' +
        'table|json|yaml) of noma and kubectl-noma in bash, zsh or fish. It is generated from ' +
        'the command tree and needs noma only when it is printed, not at each <TAB>.',
    )
    .addArgument(new Argument('<shell>', 'the shell').choices(SHELLS))
    .addHelpText(
      'after',
      `
Examples:
  # bash: now, and in every new shell
  source <(${bin} completion bash)
  echo 'source <(${bin} completion bash)' >> ~/.bashrc

  # zsh (after compinit): now, or saved in a directory of $fpath
  source <(${bin} completion zsh)
  ${bin} completion zsh > "\${fpath[1]}/_noma"

  # fish
  ${bin} completion fish > ~/.config/fish/completions/noma.fish
`,
    )
    .action((shell: Shell) => {
      io.out(completionScript(shell, completionTree(program()), VERSION));
    });
}
