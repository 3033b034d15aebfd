import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { renderCRD } from './crd-yaml.js';

const committed = readFileSync(new URL('../../deploy/crd.yaml', import.meta.url), 'utf8');

describe('deploy/crd.yaml', () => {
  it('is what `npm run gen` produces from shared/api (run `npm run gen` if this fails)', () => {
    expect(committed).toBe(renderCRD());
  });

  it('carries no TypeBox-only keywords the API server would reject', () => {
    const text = JSON.stringify(parse(committed));
    for (const keyword of ['"const"', '"$id"', '"additionalProperties":false', '"$schema"']) {
      expect(text).not.toContain(keyword);
    }
  });

  it('describes every property, so kubectl explain is useful', () => {
    const crd = parse(committed) as {
      spec: {
        versions: { schema: { openAPIV3Schema: { properties: Record<string, unknown> } } }[];
      };
    };
    const root = crd.spec.versions[0]?.schema.openAPIV3Schema.properties;
    const missing: string[] = [];
    const walk = (node: unknown, path: string): void => {
      if (node === null || typeof node !== 'object') return;
      const n = node as {
        description?: string;
        properties?: Record<string, unknown>;
        items?: unknown;
      };
      if (path !== '' && !path.endsWith('[]') && typeof n.description !== 'string')
        missing.push(path);
      for (const [k, v] of Object.entries(n.properties ?? {})) walk(v, `${path}.${k}`);
      if (n.items !== undefined) walk(n.items, `${path}[]`);
    };
    walk(root?.['spec'], 'spec');
    walk(root?.['status'], 'status');
    expect(missing).toEqual([]);
  });
});
