// `-o json|yaml` for the commands that show objects (`status`, `nodes`): one option and one way
// of writing documents, so that every command's machine-readable output looks alike.
import { Option } from 'commander';
import { stringify } from 'yaml';

export type DocumentFormat = 'json' | 'yaml';

/** `-o, --output <format>`, table first: the default, for people. */
export function outputOption<F extends string>(formats: readonly [F, ...F[]]): Option {
  return new Option('-o, --output <format>', 'output format').choices(formats).default(formats[0]);
}

export const isDocumentFormat = (format: string): format is DocumentFormat =>
  format === 'json' || format === 'yaml';

/** One document: indented JSON, or YAML (a `---` separator is the caller's, between documents). */
export function renderDocument(value: unknown, format: DocumentFormat): string {
  return format === 'json' ? JSON.stringify(value, null, 2) + '\n' : stringify(value);
}

/**
 * One document of a stream (`status --watch -o json|yaml`): JSON on one line, so that each line
 * is a document (`jq` reads them one by one), or YAML opened by `---`.
 */
export function renderStreamDocument(value: unknown, format: DocumentFormat): string {
  return format === 'json' ? JSON.stringify(value) + '\n' : `---\n${stringify(value)}`;
}
