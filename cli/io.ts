/** What a command may touch of its process, so tests can run the CLI in-process. */
export interface CliIO {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** Directory that relative paths (script files, --output) are resolved against. */
  readonly cwd: string;
  /** Whether stdout is a terminal (the `status --watch` view redraws the screen). */
  readonly isTTY: boolean;
  /** Resolves when the user interrupts (Ctrl-C): ends `status --watch`. */
  readonly interrupted: Promise<void>;
}
