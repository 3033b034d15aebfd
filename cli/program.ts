import { Command, CommanderError } from 'commander';
import { VERSION } from '../shared/version.js';
import { completionCommand } from './completion/command.js';
import { dashboardCommand } from './dashboard/command.js';
import { UsageError, UsageErrors } from './errors.js';
import { initCommand } from './init/command.js';
import type { CliIO } from './io.js';
import {
  pauseCommand,
  restoreCommand,
  resumeCommand,
  retryCommand,
} from './maintenance/command.js';
import { acceptInventoryCommand } from './nodes/accept-inventory.js';
import { nodesCommand } from './nodes/command.js';
import { rulesCommand } from './rules/command.js';
import { statusCommand } from './status/command.js';

/** `kubectl noma` when run as the kubectl plugin, else `noma`: help shows what was typed. */
export function binName(argv1: string | undefined): string {
  return argv1 !== undefined && /(^|[\\/])kubectl-noma(\.[cm]?js)?$/.test(argv1)
    ? 'kubectl noma'
    : 'noma';
}

/** `nodes` lists; `nodes accept-inventory NODE` acts on one node (its own file). */
function nodesWithSubcommands(io: CliIO, bin: string, setExit: (code: number) => void): Command {
  // Positional: the subcommand's --context/--kubeconfig are its own, not the listing's.
  return nodesCommand(io, bin, setExit)
    .enablePositionalOptions()
    .addCommand(acceptInventoryCommand(io, bin, setExit));
}

function buildProgram(io: CliIO, bin: string, setExit: (code: number) => void): Command {
  const program = new Command(bin)
    .description(
      'Write NodeMaintenance manifests and look at GPU nodes and maintenances.\n\n' +
        'The workflow: find the nodes (nodes), write the manifest (init), review it, apply it ' +
        'with `kubectl --context <cluster> apply -f`, follow it (status). When it goes ' +
        'wrong: pause/resume it, restore failed nodes or retry them.',
    )
    .version(VERSION, '-V, --version', 'print the version')
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    // Lets `init` and its subcommands share flag names: a flag belongs to the command before it.
    .enablePositionalOptions()
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      `
Examples:
  ${bin} nodes --all-contexts 'gpu-07*'
  ${bin} init reboot --name reboot-gpu --ticket ENG-1234 --nodes gpu-01,gpu-02 --complete -o reboot.yaml
  kubectl --context <cluster> apply -f reboot.yaml
  ${bin} status reboot-gpu --watch
  ${bin} restore reboot-gpu --node gpu-02

Run '${bin} <command> --help' for a command's flags and examples.
`,
    );
  for (const cmd of [
    initCommand(io, bin),
    nodesWithSubcommands(io, bin, setExit),
    statusCommand(io, bin, setExit),
    dashboardCommand(io, bin, setExit),
    pauseCommand(io, bin, setExit),
    resumeCommand(io, bin, setExit),
    restoreCommand(io, bin, setExit),
    retryCommand(io, bin, setExit),
    rulesCommand(io, bin),
    completionCommand(io, bin, () => program),
  ]) {
    program.addCommand(cmd);
  }
  // Subcommands inherit output, exit and error settings only when created through the parent.
  const configure = (cmd: Command) => {
    cmd.configureOutput({ writeOut: io.out, writeErr: io.err }).exitOverride();
    cmd.showHelpAfterError('(add --help for usage)');
    cmd.commands.forEach(configure);
  };
  program.commands.forEach(configure);
  return program;
}

/** Runs the CLI on `args` (without node and script) and returns the exit status. */
export async function runCli(args: readonly string[], io: CliIO, bin = 'noma'): Promise<number> {
  let code = 0;
  const program = buildProgram(io, bin, (c) => (code = c));
  try {
    await program.parseAsync([...args], { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version "errors" are successes; everything else is a usage mistake.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof UsageError || err instanceof UsageErrors) {
      io.err(
        err.message
          .split('\n')
          .map((l) => `error: ${l}\n`)
          .join(''),
      );
      return 2;
    }
    io.err(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
