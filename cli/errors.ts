/**
 * A mistake in how the CLI was called. It names the flag (or argument) so the user knows what
 * to fix; main prints it and exits with status 2, like commander's own usage errors.
 */
export class UsageError extends Error {
  constructor(
    readonly flag: string,
    detail: string,
  ) {
    super(`${flag}: ${detail}`);
    this.name = 'UsageError';
  }
}

/** Several usage errors found at once, so the user can fix them all in one go. */
export class UsageErrors extends Error {
  constructor(readonly errors: readonly UsageError[]) {
    super(errors.map((e) => e.message).join('\n'));
    this.name = 'UsageErrors';
  }
}

export type Result<T> = { ok: true; value: T } | { ok: false; errors: UsageError[] };
