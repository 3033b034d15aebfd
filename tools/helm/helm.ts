// Builds Helm from its Go module (pinned in tools/helm/go.mod, the `tool` line) into
// tools/helm/bin/helm, and runs it. Like the local control plane (test/cluster), Helm is
// compiled, not downloaded; Go's build cache makes a rebuild cheap, and a stamp of the inputs
// makes a call with nothing changed free.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const MODULE_DIR = resolve(fileURLToPath(new URL('.', import.meta.url)));
export const HELM = join(MODULE_DIR, 'bin', 'helm');
const STAMP = join(MODULE_DIR, 'bin', 'helm.stamp');
const PACKAGE = 'helm.sh/helm/v3/cmd/helm';

/** The version of a module required in go.mod (`helm.sh/helm/v3 v3.22.0`). */
export function requiredVersion(goMod: string, module: string): string {
  const line = goMod.split('\n').find((l) => l.trim().startsWith(`${module} `));
  const version = line?.trim().split(/\s+/)[1];
  if (!version) throw new Error(`tools/helm/go.mod does not require ${module}`);
  return version;
}

/**
 * The -ldflags Helm's own Makefile sets: its version, and the Kubernetes version that
 * `helm template` and `helm lint` assume without a cluster (client-go v0.X is Kubernetes 1.X).
 */
export function ldflags(goMod: string): string {
  const helm = requiredVersion(goMod, 'helm.sh/helm/v3');
  const minor = requiredVersion(goMod, 'k8s.io/client-go').split('.')[1] ?? '';
  const k8s = (pkg: string) => [
    `-X helm.sh/helm/v3/pkg/${pkg}.k8sVersionMajor=1`,
    `-X helm.sh/helm/v3/pkg/${pkg}.k8sVersionMinor=${minor}`,
  ];
  return [
    '-s',
    '-w',
    `-X helm.sh/helm/v3/internal/version.version=${helm}`,
    '-X helm.sh/helm/v3/internal/version.gitTreeState=clean',
    ...k8s('lint/rules'),
    ...k8s('chartutil'),
  ].join(' ');
}

/** Builds tools/helm/bin/helm when it is missing or go.mod/go.sum changed; returns its path. */
export async function ensureHelm(): Promise<string> {
  const goMod = readFileSync(join(MODULE_DIR, 'go.mod'), 'utf8');
  const goSum = readFileSync(join(MODULE_DIR, 'go.sum'), 'utf8');
  const flags = ldflags(goMod);
  const stamp = createHash('sha256').update(goMod).update(goSum).update(flags).digest('hex');
  if (existsSync(HELM) && existsSync(STAMP) && readFileSync(STAMP, 'utf8') === stamp) return HELM;
  try {
    await run('go', ['version']);
  } catch {
    throw new Error('Go >= 1.26 is needed to build Helm (tools/helm)');
  }
  mkdirSync(join(MODULE_DIR, 'bin'), { recursive: true });
  // Build beside the target and rename: a build that dies half-way leaves no broken helm.
  const tmp = `${HELM}.tmp`;
  await run('go', ['build', '-trimpath', '-ldflags', flags, '-o', tmp, PACKAGE], {
    cwd: MODULE_DIR,
    // A go line newer than the local Go must fail here, not download a toolchain.
    env: { ...process.env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0' },
    maxBuffer: 64 * 1024 * 1024,
  });
  renameSync(tmp, HELM);
  writeFileSync(STAMP, stamp);
  return HELM;
}
