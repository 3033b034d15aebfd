// The Kubernetes client is most of the CLI's start-up time: only the commands that talk to a
// cluster load it. A module-loading hook in a real `node` process records every module loaded.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'noma-startup-'));
const hooks = join(dir, 'hooks.mjs');
const register = join(dir, 'register.mjs');
writeFileSync(
  hooks,
  `import { appendFileSync } from 'node:fs';
let log;
export function initialize(data) { log = data.log; }
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(log, result.url + '\\n');
  return result;
}
`,
);

/** Runs the CLI from source in a new node; returns the URLs of the modules it loaded. */
function loadedBy(args: readonly string[]): { urls: string[]; status: number | null } {
  const log = join(dir, `loads-${args.join('-').replace(/[^\w-]/g, '')}.txt`);
  writeFileSync(log, '');
  writeFileSync(
    register,
    `import { register } from 'node:module';
register(${JSON.stringify(pathToFileURL(hooks).href)}, { data: { log: ${JSON.stringify(log)} } });
`,
  );
  const run = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--import', pathToFileURL(register).href, 'cli/main.ts', ...args],
    { encoding: 'utf8', env: { ...process.env, KUBECONFIG: join(dir, 'no-kubeconfig') } },
  );
  return { urls: readFileSync(log, 'utf8').split('\n').filter(Boolean), status: run.status };
}

const client = (urls: string[]) => urls.filter((u) => u.includes('@kubernetes/client-node'));

describe('CLI start-up', () => {
  it.each([
    [['init', '--help']],
    [['--help']],
    [['--version']],
    [['completion', 'bash']],
    [['init', 'reboot', '--name', 'r', '--ticket', 'ENG-1', '--nodes', 'gpu-01']],
  ])(
    '%j does not load @kubernetes/client-node',
    (args) => {
      const { urls, status } = loadedBy(args);
      expect(status).toBe(0);
      expect(urls.some((u) => u.endsWith('/cli/program.ts'))).toBe(true);
      expect(client(urls)).toEqual([]);
    },
    30_000,
  );

  it('a command that talks to a cluster does load it', () => {
    // No kubeconfig: the command fails, after loading the client to read one.
    const { urls, status } = loadedBy(['status']);
    expect(status).toBe(1);
    expect(client(urls).length).toBeGreaterThan(0);
  }, 30_000);
});
