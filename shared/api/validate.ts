import { FormatRegistry, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { RuleChecks, type WithRules } from './rules.js';
import { NodeMaintenanceSchema, SpecSchema, type NodeMaintenance } from './nodemaintenance.js';

// TypeBox checks formats only once they are registered; the API server's date-time is RFC 3339.
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
if (!FormatRegistry.Has('date-time')) {
  FormatRegistry.Set('date-time', (v) => RFC3339.test(v) && !Number.isNaN(Date.parse(v)));
}

export interface FieldError {
  /** Dotted path in the object, as the API server writes it: `spec.actions[0].script`. */
  readonly path: string;
  readonly message: string;
}

export type Validated<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

/** `/spec/actions/0/script` → `spec.actions[0].script` */
function dotted(pointer: string, prefix: string): string {
  let out = prefix;
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(seg) ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Runs the rules attached with withRules() over a value that already passed the structural check. */
function checkRules(schema: TSchema, value: unknown, path: string, errors: FieldError[]): void {
  const checks = (schema as TSchema & WithRules)[RuleChecks];
  for (const rule of checks ?? []) {
    if (!rule.check(value as never)) {
      errors.push({ path: path + (rule.fieldPath ?? ''), message: rule.message });
    }
  }
  const properties: unknown = schema['properties'];
  if (isRecord(properties) && isRecord(value)) {
    for (const [key, sub] of Object.entries(properties)) {
      if (value[key] !== undefined) {
        checkRules(sub as TSchema, value[key], path === '' ? key : `${path}.${key}`, errors);
      }
    }
  }
  const items: unknown = schema['items'];
  if (isRecord(items) && Array.isArray(value)) {
    value.forEach((item, i) => {
      checkRules(items as TSchema, item, `${path}[${i}]`, errors);
    });
  }
}

/** Validates external data against a schema of shared/api: structure first, then the rules. */
export function validate<S extends TSchema>(
  schema: S,
  value: unknown,
  prefix = '',
): Validated<Static<S>> {
  const structural = [...Value.Errors(schema, value)].map((e) => ({
    path: dotted(e.path, prefix) || '(root)',
    message: e.message,
  }));
  if (structural.length > 0) return { ok: false, errors: structural };
  const errors: FieldError[] = [];
  checkRules(schema, value, prefix, errors);
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: value as Static<S> };
}

export const validateNodeMaintenance = (value: unknown): Validated<NodeMaintenance> =>
  validate(NodeMaintenanceSchema, value);

export const validateSpec = (value: unknown) => validate(SpecSchema, value, 'spec');

export function formatErrors(errors: readonly FieldError[]): string {
  return errors.map((e) => `${e.path}: ${e.message}`).join('; ');
}
