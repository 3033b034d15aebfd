// The command tree as shell completion needs it: commands, flags, which flags take a value and
// what values, read from commander's own Help (what `--help` lists is what completes).
import type { Command, Option } from 'commander';

/** What the word after a flag (or a positional argument) is. */
export type ValueKind =
  | { readonly kind: 'choices'; readonly choices: readonly string[] }
  | { readonly kind: 'files' }
  | { readonly kind: 'text'; readonly name: string };

export interface CompletionFlag {
  /** `-o`, `--output`: one or both. */
  readonly names: readonly string[];
  readonly description: string;
  /** Undefined for a switch (no value). */
  readonly value: ValueKind | undefined;
  /** May be given more than once (`--context a --context b`). */
  readonly repeatable: boolean;
}

export interface CompletionCommand {
  /** Names from the root down, without the program's: `[]`, `['init']`, `['init', 'script']`. */
  readonly path: readonly string[];
  readonly name: string;
  readonly summary: string;
  readonly flags: readonly CompletionFlag[];
  readonly commands: readonly CompletionCommand[];
  /** Whether positional arguments are files (`init script <file>`). */
  readonly fileArguments: boolean;
}

/** Names go into shell scripts unquoted: only plain words, or generating fails loudly. */
const WORD = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const FLAG = /^--?[A-Za-z0-9][A-Za-z0-9-]*$/;

function checked(word: string, pattern: RegExp): string {
  if (!pattern.test(word)) throw new Error(`completion: cannot complete the word "${word}"`);
  return word;
}

/** One line, no shell-active backslashes, at most 100 characters. */
export function oneLine(text: string): string {
  const line = text.replace(/\\/g, '').replace(/\s+/g, ' ').trim();
  return line.length <= 100 ? line : `${line.slice(0, 99)}…`;
}

const FILE_VALUE = /file|dir|path|kubeconfig/i;

function valueOf(opt: Option): ValueKind | undefined {
  if (!opt.required && !opt.optional) return undefined;
  if (opt.argChoices !== undefined) {
    return { kind: 'choices', choices: opt.argChoices.map((c) => checked(c, WORD)) };
  }
  const name = /[<[]([^>\]]+)[>\]]/.exec(opt.flags)?.[1] ?? 'value';
  return FILE_VALUE.test(name) ? { kind: 'files' } : { kind: 'text', name: oneLine(name) };
}

function flagOf(opt: Option): CompletionFlag {
  const names = [opt.short, opt.long]
    .filter((n): n is string => n !== undefined)
    .map((n) => checked(n, FLAG));
  return {
    names,
    description: oneLine(opt.description),
    value: valueOf(opt),
    repeatable: Array.isArray(opt.defaultValue) || opt.variadic,
  };
}

/** The tree under `cmd`, as its `--help` shows it (hidden commands and flags left out). */
export function completionTree(cmd: Command, path: readonly string[] = []): CompletionCommand {
  const help = cmd.createHelp();
  return {
    path,
    name: path.at(-1) ?? cmd.name(),
    summary: oneLine(cmd.summary() || cmd.description()),
    flags: help.visibleOptions(cmd).map(flagOf),
    commands: help
      .visibleCommands(cmd)
      .map((sub) => completionTree(sub, [...path, checked(sub.name(), WORD)])),
    fileArguments: cmd.registeredArguments.some((a) => FILE_VALUE.test(a.name())),
  };
}

/** Every command of the tree, the root first, depth first. */
export function allCommands(root: CompletionCommand): CompletionCommand[] {
  return [root, ...root.commands.flatMap(allCommands)];
}
