import type { TSchema } from '@sinclair/typebox';
import {
  GROUP,
  KIND,
  NodeMaintenanceSchema,
  OptionsSchema,
  PLURAL,
  PRINTER_COLUMNS,
  SHORT_NAMES,
  SINGULAR,
  SpecSchema,
  StatusSchema,
  VERSION,
} from './nodemaintenance.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };
const isObject = (v: Json): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Turns a TypeBox schema into a structural OpenAPI v3 schema as the API server wants it:
 * JSON-only (TypeBox's symbol-keyed metadata and rule checks drop out), no `const`, and
 * int-or-string unions in the one `anyOf` form the API server accepts.
 */
export function toStructural(schema: TSchema): Json {
  const json = JSON.parse(JSON.stringify(schema)) as Json;
  const walk = (node: Json): Json => {
    if (Array.isArray(node)) return node.map(walk);
    if (node === null || typeof node !== 'object') return node;
    // Literal unions (TypeBox: anyOf of {const}) become a plain string enum.
    const { anyOf, ...rest } = node;
    if (Array.isArray(anyOf) && anyOf.every((b) => isObject(b) && 'const' in b)) {
      return {
        type: 'string',
        ...walkProps(rest),
        enum: anyOf.map((b) => (b as Obj)['const'] ?? null),
      };
    }
    // int-or-string: the API server accepts only this exact anyOf; limits go in CEL rules.
    if (rest['x-kubernetes-int-or-string'] === true) {
      return { ...walkProps(rest), anyOf: [{ type: 'integer' }, { type: 'string' }] };
    }
    const out = walkProps(node);
    if ('const' in out) {
      const { const: value, ...others } = out;
      return { ...others, enum: [value ?? null] };
    }
    return out;
  };
  const walkProps = (node: Obj): Obj => {
    const out: Obj = {};
    for (const [k, v] of Object.entries(node)) {
      if (k !== '$id') out[k] = walk(v);
    }
    return out;
  };
  return walk(json);
}

/** Options that stay editable while a maintenance runs: they only widen or narrow its pace. */
export const MUTABLE_OPTIONS: readonly string[] = ['maxUnavailable', 'maxFailedNodes'];

/**
 * Transition rules (API server only: they compare with the stored object): once the selection
 * is recorded (status.observedNodes), the selector, the steps and every option but the mutable
 * ones are frozen, so that an edit never re-runs a step under a new ID or changes what a node
 * half-way through expects. spec.paused, maxUnavailable and maxFailedNodes stay editable. On
 * the main resource the API server keeps the stored status, so `self.status` is the old one.
 */
export function frozenSpecRules(): Obj[] {
  const started = '!has(oldSelf.status) || !has(oldSelf.status.observedNodes)';
  const frozen = (field: string, message: string): Obj => ({
    rule: `${started} || (has(self.spec.${field}) == has(oldSelf.spec.${field}) && (!has(self.spec.${field}) || self.spec.${field} == oldSelf.spec.${field}))`,
    message: `spec.${field} is immutable once the maintenance has started (${message})`,
    fieldPath: `.spec.${field}`,
  });
  const options = Object.keys(OptionsSchema.properties).filter((k) => !MUTABLE_OPTIONS.includes(k));
  const opt = (k: string): Obj => ({
    rule:
      `${started} || (` +
      `(has(self.spec.options) && has(self.spec.options.${k})) == (has(oldSelf.spec.options) && has(oldSelf.spec.options.${k})) && ` +
      `(!has(self.spec.options) || !has(self.spec.options.${k}) || self.spec.options.${k} == oldSelf.spec.options.${k}))`,
    message:
      `spec.options.${k} is immutable once the maintenance has started ` +
      `(only ${MUTABLE_OPTIONS.join(', ')} and spec.paused may change)`,
    fieldPath: `.spec.options.${k}`,
  });
  return [
    frozen('nodeSelector', 'the selection is frozen in status.observedNodes'),
    frozen('actions', 'create a new NodeMaintenance for other steps'),
    ...options.map(opt),
  ];
}

/**
 * The status's fence (transition rule, API server only): status.leaderEpoch never goes back, so a
 * write of a coordinator that lost its leadership to a newer one is refused even when it
 * arrives late (a process stopped and resumed, a request stuck in a black-holed connection).
 */
export function statusRules(): Obj[] {
  return [
    {
      rule: '!has(oldSelf.leaderEpoch) || (has(self.leaderEpoch) && self.leaderEpoch >= oldSelf.leaderEpoch)',
      message:
        'status.leaderEpoch may not go back: a newer coordinator leads and writes this status',
      fieldPath: '.leaderEpoch',
    },
  ];
}

/** The CustomResourceDefinition of NodeMaintenance, written to deploy/crd.yaml by `npm run gen`. */
export function nodeMaintenanceCRD(): Json {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${PLURAL}.${GROUP}`,
      labels: { 'app.kubernetes.io/name': 'noma', 'app.kubernetes.io/part-of': 'noma' },
    },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: SINGULAR,
        shortNames: [...SHORT_NAMES],
        categories: ['noma'],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: PRINTER_COLUMNS.map((c) => ({ ...c })),
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: NodeMaintenanceSchema.description ?? KIND,
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: toStructural(SpecSchema),
                status: {
                  ...(toStructural(StatusSchema) as Obj),
                  'x-kubernetes-validations': statusRules(),
                },
              },
              'x-kubernetes-validations': frozenSpecRules(),
            },
          },
        },
      ],
    },
  };
}
