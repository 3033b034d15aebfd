// The CLI installs on its own: `npm pack` of this package, installed into an empty project with
// nothing but Node and npm, runs `noma` and `kubectl-noma`. The CLI is built afresh into a temp
// dir (only what cli/main.ts imports, dynamic imports included), so the test needs no
// `npm run build` and leaves dist/ alone. The install uses the npm cache first (the project's own
// install filled it), and the registry for what is missing.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { VERSION } from '../../shared/version.js';

const repo = resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(join(tmpdir(), 'noma-pack-'));
const pkg = join(tmp, 'pkg');
const app = join(tmp, 'app');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/**
 * The modules that `entry` loads when every command runs: relative imports, static and dynamic,
 * of the emitted JavaScript (type-only imports are gone from it; tsc still emits their files).
 */
function runtimeGraph(entry: string): string[] {
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      visit(resolve(dirname(file), m[1] ?? ''));
    }
  };
  visit(entry);
  return [...seen].map((f) => relative(pkg, f)).sort();
}

let packed: string[] = [];
/** A cluster nobody serves: commands run as far as their first request. */
const kubeconfig = join(tmp, 'kubeconfig.yaml');
writeFileSync(
  kubeconfig,
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:1' } }],
    users: [{ name: 'u', user: { token: 't' } }],
    contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'c',
  }),
);

beforeAll(() => {
  writeFileSync(
    join(tmp, 'tsconfig.json'),
    JSON.stringify({
      extends: join(repo, 'tsconfig.json'),
      compilerOptions: {
        rootDir: repo,
        outDir: join(pkg, 'dist'),
        sourceMap: false,
        typeRoots: [join(repo, 'node_modules/@types')],
      },
      files: [join(repo, 'cli/main.ts')],
      include: [],
    }),
  );
  execFileSync(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', tmp], {
    stdio: 'pipe',
  });
  copyFileSync(join(repo, 'package.json'), join(pkg, 'package.json'));
  copyFileSync(join(repo, 'README.md'), join(pkg, 'README.md'));
  const out = execFileSync(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], {
    cwd: pkg,
    encoding: 'utf8',
  });
  const [info] = JSON.parse(out) as { filename: string; files: { path: string }[] }[];
  if (info === undefined) throw new Error('npm pack said nothing');
  packed = info.files.map((f) => f.path);
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
  execFileSync(
    npm,
    ['install', '--prefer-offline', '--no-audit', '--no-fund', join(tmp, info.filename)],
    { cwd: app, stdio: 'pipe' },
  );
}, 300_000);

/** Runs an installed bin as a user would, from the project it was installed into. */
function npx(bin: string, args: readonly string[]) {
  const run = spawnSync(npm, ['exec', '--no', '--', bin, ...args], {
    cwd: app,
    encoding: 'utf8',
    env: { ...process.env, KUBECONFIG: kubeconfig },
  });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('npm pack: the CLI on its own', () => {
  it('packs every module the CLI imports, and none of the coordinator or agent besides', () => {
    const needed = runtimeGraph(join(pkg, 'dist/cli/main.js'));
    expect(needed).toEqual(expect.arrayContaining(['dist/cli/status/kube-source.js']));
    expect(needed.filter((f) => !packed.includes(f))).toEqual([]);
    expect(packed).toContain('package.json');
    expect(packed.filter((f) => /^dist\/(coordinator|agent)\/.*main\.js$/.test(f))).toEqual([]);
  });

  it('noma --version and kubectl-noma --help run from the installed package', () => {
    // npx with no network: the bins are the installed package's, not fetched.
    expect(npx('noma', ['--version'])).toEqual({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
    const help = npx('kubectl-noma', ['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: kubectl noma \[options\] \[command\]/);
    expect(npx('noma', ['completion', 'bash']).stdout).toContain('complete -F _noma noma');
  });

  it.each([
    [['status']],
    [['nodes']],
    [['pause', 'x']],
    [['nodes', 'accept-inventory', 'gpu-01']],
    [['init', 'reboot', '--name', 'r', '--ticket', 'ENG-1', '--nodes', 'gpu-01', '--preview']],
  ])('%j loads what it imports when it runs (and fails only for want of a cluster)', (args) => {
    const run = npx('noma', args);
    expect(run.stderr).not.toMatch(/ERR_MODULE_NOT_FOUND|Cannot find (module|package)/);
    expect(run.stderr).toContain('connect ECONNREFUSED 127.0.0.1:1');
    expect(run.code).toBe(1);
  });
});
