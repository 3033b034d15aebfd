import type { TSchema } from '@sinclair/typebox';

/**
 * A validation rule that the API server enforces as a CEL expression (x-kubernetes-validations)
 * and that noma enforces in-process with `check`. Both live side by side so that they cannot
 * drift apart unnoticed: test/integration/crd.test.ts runs the same invalid objects through both.
 */
export interface Rule<T> {
  /** CEL, evaluated by the API server with `self` bound to the value. */
  readonly rule: string;
  /** The error both sides report; says which field and what is expected. */
  readonly message: string;
  /** Relative JSON path of the field the error is about, e.g. `.script`. */
  readonly fieldPath?: string;
  readonly check: (self: T) => boolean;
}

/** Key under which the in-process checks of a schema node are kept (invisible to JSON). */
export const RuleChecks = Symbol.for('noma.dev/rule-checks');

export interface WithRules {
  [RuleChecks]?: readonly Rule<never>[];
  'x-kubernetes-validations'?: readonly { rule: string; message: string; fieldPath?: string }[];
}

/** Attaches rules to a schema node: CEL for the CRD, `check` for runtime validation. */
export function withRules<S extends TSchema, T>(schema: S, rules: readonly Rule<T>[]): S {
  const node = schema as S & WithRules;
  node['x-kubernetes-validations'] = rules.map(({ rule, message, fieldPath }) =>
    fieldPath === undefined ? { rule, message } : { rule, message, fieldPath },
  );
  node[RuleChecks] = rules;
  return schema;
}
