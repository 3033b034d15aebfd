import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FLAGS } from './config.js';

// The entry point as a process: what an operator sees on a bad start.
const ROOT = fileURLToPath(new URL('..', import.meta.url));

function agent(args: string[], env: Record<string, string> = {}) {
  return execa(process.execPath, ['--import', 'tsx', 'agent/main.ts', ...args], {
    cwd: ROOT,
    reject: false,
    env: { NODE_NAME: '', ...env },
    timeout: 30_000,
  });
}

describe('noma-agent entry point', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'noma-main-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('--help documents every flag and exits 0', async () => {
    const result = await agent(['--help']);
    expect(result.exitCode).toBe(0);
    for (const f of FLAGS) expect(result.stdout).toContain(`--${f.flag}`);
  });

  it('exits 2 with a message on invalid flags', async () => {
    const result = await agent(['--node-name', 'n1', '--health-port', 'nope']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/--health-port: "nope" is not a port number/);
  });

  it('exits 2 naming the problem when the rules file is invalid', async () => {
    const rules = join(dir, 'rules.yaml');
    await writeFile(rules, 'gpuLabels: {accelerator: "nvidia gpu"}\n');
    const result = await agent([
      '--node-name',
      'n1',
      '--rules',
      rules,
      '--state-dir',
      join(dir, 'state'),
      '--log-level',
      'silent',
    ]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`label rules ${rules} rejected`);
    expect(result.stderr).toMatch(/gpuLabels.accelerator: label value "nvidia gpu"/);
  });
});
