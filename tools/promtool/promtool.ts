// Builds promtool from the Prometheus Go module (pinned in tools/promtool/go.mod, the `tool`
// line) into tools/promtool/bin/promtool, for `promtool check rules` and `promtool test rules`
// on deploy/monitoring/. Like the local control plane (test/cluster) and Helm (tools/helm), it
// is compiled, not downloaded; Go's build cache makes a rebuild cheap, and a stamp of the
// inputs makes a call with nothing changed free.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const MODULE_DIR = resolve(fileURLToPath(new URL('.', import.meta.url)));
export const PROMTOOL = join(MODULE_DIR, 'bin', 'promtool');
const STAMP = join(MODULE_DIR, 'bin', 'promtool.stamp');
const PACKAGE = 'github.com/prometheus/prometheus/cmd/promtool';
const MODULE = 'github.com/prometheus/prometheus';
/**
 * Service discovery plugins (every cloud's SDK) are left out: promtool needs none of them to
 * check and test rules, and they are most of the build.
 */
const TAGS = 'remove_all_sd';

/** The version of a module required in go.mod (`github.com/prometheus/prometheus v0.316.0`). */
export function requiredVersion(goMod: string, module: string): string {
  const line = goMod.split('\n').find((l) => l.trim().startsWith(`${module} `));
  const version = line?.trim().split(/\s+/)[1];
  if (!version) throw new Error(`tools/promtool/go.mod does not require ${module}`);
  return version;
}

/** The Prometheus release of a Go module version: v0.316.0 is Prometheus 3.16.0. */
export function prometheusRelease(moduleVersion: string): string {
  const m = /^v0\.(\d+)(\d\d)\.(\d+)/.exec(moduleVersion);
  if (m === null) return moduleVersion;
  return `${String(Number(m[1]))}.${String(Number(m[2]))}.${m[3] ?? '0'}`;
}

function ldflags(goMod: string): string {
  const release = prometheusRelease(requiredVersion(goMod, MODULE));
  return ['-s', '-w', `-X github.com/prometheus/common/version.Version=${release}`].join(' ');
}

/** Builds tools/promtool/bin/promtool when missing or go.mod/go.sum changed; returns its path. */
export async function ensurePromtool(): Promise<string> {
  const goMod = readFileSync(join(MODULE_DIR, 'go.mod'), 'utf8');
  const goSum = readFileSync(join(MODULE_DIR, 'go.sum'), 'utf8');
  const flags = ldflags(goMod);
  const stamp = createHash('sha256')
    .update(goMod)
    .update(goSum)
    .update(flags)
    .update(TAGS)
    .digest('hex');
  if (existsSync(PROMTOOL) && existsSync(STAMP) && readFileSync(STAMP, 'utf8') === stamp) {
    return PROMTOOL;
  }
  try {
    await run('go', ['version']);
  } catch {
    throw new Error('Go >= 1.26.7 is needed to build promtool (tools/promtool)');
  }
  mkdirSync(join(MODULE_DIR, 'bin'), { recursive: true });
  // Build beside the target and rename: a build that dies half-way leaves no broken promtool.
  const tmp = `${PROMTOOL}.tmp`;
  await run('go', ['build', '-trimpath', '-tags', TAGS, '-ldflags', flags, '-o', tmp, PACKAGE], {
    cwd: MODULE_DIR,
    // A go line newer than the local Go must fail here, not download a toolchain.
    env: { ...process.env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0' },
    maxBuffer: 64 * 1024 * 1024,
  });
  renameSync(tmp, PROMTOOL);
  writeFileSync(STAMP, stamp);
  return PROMTOOL;
}

/**
 * Runs promtool with `args` (and `stdin`, e.g. an exposition for `check metrics`); resolves to
 * its exit code and output, whatever the code.
 */
export async function promtool(
  args: readonly string[],
  cwd: string,
  stdin = '',
): Promise<{ code: number; output: string }> {
  const bin = await ensurePromtool();
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [...args], { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      resolve({ code: code ?? 1, output });
    });
    child.stdin.end(stdin);
  });
}
