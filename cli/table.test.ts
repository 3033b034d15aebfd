import { describe, expect, it } from 'vitest';
import { globToRegExp, renderTable } from './table.js';

describe('renderTable', () => {
  it('pads every column but the last', () => {
    expect(
      renderTable(
        ['A', 'LONGER'],
        [
          ['xyz', '1'],
          ['', '22'],
        ],
      ),
    ).toBe('A     LONGER\nxyz   1\n      22\n');
  });
});

describe('globToRegExp', () => {
  it.each([
    ['gpu-0*', 'gpu-07', true],
    ['gpu-0?', 'gpu-07', true],
    ['gpu-0?', 'gpu-007', false],
    ['gpu.07', 'gpu-07', false],
    ['*', 'anything', true],
    ['a+b', 'a+b', true],
  ])('%s on %s → %s', (glob, name, want) => {
    expect(globToRegExp(glob).test(name)).toBe(want);
  });
});
