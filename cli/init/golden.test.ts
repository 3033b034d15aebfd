// `noma init` output for each subcommand and flag combination, against golden files
// (UPDATE_GOLDEN=1 rewrites them). Every golden file must also pass the CRD's schema.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { validateNodeMaintenance, formatErrors } from '../../shared/api/index.js';
import { CASES_DIR, GOLDEN_DIR, INIT_CASES } from '../../test/fixtures/cli/init-cases.js';
import { runNoma } from '../../test/support/cli.js';

describe('noma init golden files', () => {
  it.each(INIT_CASES)('$name', async ({ name, args }) => {
    const run = await runNoma(args, { cwd: CASES_DIR });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const file = join(GOLDEN_DIR, `${name}.yaml`);
    if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(file, run.stdout);
    expect(existsSync(file), `${file} is missing: run with UPDATE_GOLDEN=1`).toBe(true);
    expect(run.stdout).toBe(readFileSync(file, 'utf8'));
  });

  it.each(INIT_CASES)('$name.yaml is a valid NodeMaintenance', ({ name }) => {
    const obj: unknown = parse(readFileSync(join(GOLDEN_DIR, `${name}.yaml`), 'utf8'));
    const valid = validateNodeMaintenance(obj);
    expect(valid.ok ? '' : formatErrors(valid.errors)).toBe('');
  });

  it('writes --output to a file and says how to apply it', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'noma-init-'));
    const run = await runNoma(
      ['init', 'reboot', '--name', 'r', '--ticket', 'ENG-1', '--nodes', 'gpu-01', '-o', 'out.yaml'],
      { cwd },
    );
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('kubectl --context <cluster> apply -f out.yaml');
    expect(parse(readFileSync(join(cwd, 'out.yaml'), 'utf8'))).toMatchObject({
      spec: { nodeSelector: 'kubernetes.io/hostname in (gpu-01)', actions: [{ type: 'Reboot' }] },
    });
  });
});
