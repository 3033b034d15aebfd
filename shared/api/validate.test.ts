import { describe, expect, it } from 'vitest';
import {
  invalidCases,
  invalidMaintenance,
  validMaintenance,
} from '../../test/fixtures/nodemaintenance.js';
import { formatErrors, validateNodeMaintenance, validateSpec } from './validate.js';

describe('NodeMaintenance validation', () => {
  it('accepts the DESIGN.md example with every action type', () => {
    const result = validateNodeMaintenance(validMaintenance());
    expect(result.ok ? [] : result.errors).toEqual([]);
  });

  it.each(invalidCases)('rejects $name, naming $field', (c) => {
    const result = validateNodeMaintenance(invalidMaintenance(c));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.map((e) => e.path)).toContain(c.field);
  });

  it('accepts a percentage maxUnavailable and an empty action list', () => {
    const obj = validMaintenance();
    const spec = obj['spec'] as Record<string, unknown>;
    spec['options'] = { maxUnavailable: '25%' };
    spec['actions'] = [];
    expect(validateNodeMaintenance(obj).ok).toBe(true);
  });

  it('accepts Go durations and rejects signed or unit-less ones', () => {
    const spec = validMaintenance()['spec'] as Record<string, unknown>;
    for (const d of ['30m', '1h30m', '90s', '1.5h', '0', '250ms']) {
      expect(validateSpec({ ...spec, options: { drainTimeout: d } }).ok, d).toBe(true);
    }
    for (const d of ['-5m', '30', 'm', '1d', '']) {
      expect(validateSpec({ ...spec, options: { drainTimeout: d } }).ok, d).toBe(false);
    }
  });

  it('accepts DeleteNode as the single last action', () => {
    const spec = validMaintenance()['spec'] as Record<string, unknown>;
    const ok = validateSpec({ ...spec, actions: [{ type: 'Reboot' }, { type: 'DeleteNode' }] });
    expect(ok.ok).toBe(true);
    const twice = validateSpec({
      ...spec,
      actions: [{ type: 'DeleteNode' }, { type: 'DeleteNode' }],
    });
    expect(twice.ok).toBe(false);
  });

  it('reports rule errors with the API server message and path', () => {
    const spec = validMaintenance()['spec'] as Record<string, unknown>;
    const result = validateSpec({ ...spec, actions: [{ type: 'Notify' }] });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(formatErrors(result.errors)).toBe(
      'spec.actions[0].notify: notify is required when type is Notify',
    );
  });

  it('accepts a status as the API server returns it, with RFC 3339 times', () => {
    const obj = validMaintenance();
    obj['status'] = {
      phase: 'Running',
      startedAt: '2026-11-21T06:15:14Z',
      conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: '2026-11-21T06:15:14Z' }],
      nodes: [{ name: 'gpu-01', phase: 'Draining', startedAt: '2026-11-21T06:15:14.123Z' }],
    };
    expect(validateNodeMaintenance(obj).ok).toBe(true);
    (obj['status'] as Record<string, unknown>)['startedAt'] = 'yesterday';
    expect(validateNodeMaintenance(obj).ok).toBe(false);
  });

  it('rejects non-objects without throwing', () => {
    for (const v of [null, 42, 'noma', [], { spec: null }]) {
      expect(validateNodeMaintenance(v).ok).toBe(false);
    }
  });
});
