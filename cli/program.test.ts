import { describe, expect, it } from 'vitest';
import { VERSION } from '../shared/version.js';
import { runNoma } from '../test/support/cli.js';
import { binName } from './program.js';

describe('noma CLI', () => {
  it('prints its version', async () => {
    expect(await runNoma(['--version'])).toEqual({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
  });

  it('lists its commands with examples in --help', async () => {
    const { code, stdout } = await runNoma(['--help']);
    expect(code).toBe(0);
    for (const cmd of ['init', 'nodes', 'status', 'completion'])
      expect(stdout).toMatch(new RegExp(`^  ${cmd} `, 'm'));
    expect(stdout).toContain('Examples:');
  });

  it.each([
    ['init'],
    ['init', 'script'],
    ['init', 'run'],
    ['init', 'reboot'],
    ['init', 'delete-node'],
    ['nodes'],
    ['status'],
    ['completion'],
  ])('%s --help has examples', async (...cmd) => {
    const { code, stdout } = await runNoma([...cmd, '--help']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/Examples?:/);
    expect(stdout).toContain(`noma ${cmd.join(' ')}`);
  });

  it('calls itself kubectl noma when run as the plugin', async () => {
    expect(binName('/usr/local/bin/kubectl-noma')).toBe('kubectl noma');
    expect(binName('/usr/local/bin/noma')).toBe('noma');
    const { stdout } = await runNoma(['init', 'reboot', '--help'], { bin: 'kubectl noma' });
    expect(stdout).toMatch(/^Usage: kubectl noma init reboot \[options\]/);
    expect(stdout).toContain('kubectl noma init reboot --name reboot-gpu');
  });

  it('exits 2 on an unknown command', async () => {
    const run = await runNoma(['apply']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("unknown command 'apply'");
  });
});
