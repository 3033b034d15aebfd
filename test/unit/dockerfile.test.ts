// No Docker engine runs in CI, so the Dockerfile is checked as text: every path it copies from
// the build context exists, the build stage compiles the entry points the image and deploy/
// run, and the runtime stage installs production dependencies only.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { deployObject } from '../support/deploy.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const lines = dockerfile
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));

/** Sources of every COPY from the build context (not --from=another stage). */
function contextCopies(): string[] {
  return lines
    .filter((l) => l.startsWith('COPY ') && !l.includes('--from='))
    .flatMap((l) => l.split(/\s+/).slice(1, -1));
}

const dockerignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));

const build = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as {
  include: string[];
};

/** dist/<dir>/main.js comes from <dir>/main.ts when tsconfig.build.json compiles <dir>. */
function isBuilt(entry: string): boolean {
  const m = /^dist\/(.+)\.js$/.exec(entry);
  if (m?.[1] === undefined) return false;
  const source = `${m[1]}.ts`;
  const top = source.split('/')[0] ?? '';
  return existsSync(join(ROOT, source)) && build.include.includes(top);
}

describe('Dockerfile', () => {
  it('copies only paths that exist and that .dockerignore keeps in the context', () => {
    const sources = contextCopies();
    expect(sources.length).toBeGreaterThan(0);
    for (const src of sources) {
      expect(existsSync(join(ROOT, src)), `${src} exists`).toBe(true);
      expect(dockerignore, `${src} is not ignored`).not.toContain(src);
    }
  });

  it('copies the source of every directory tsconfig.build.json compiles', () => {
    const copied = new Set(contextCopies());
    for (const dir of build.include) expect(copied, dir).toContain(dir);
  });

  it('has built entry points for the agent, the coordinator and the CLI', () => {
    for (const entry of ['dist/agent/main.js', 'dist/coordinator/main.js', 'dist/cli/main.js']) {
      expect(isBuilt(entry), entry).toBe(true);
    }
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node"\]$/m);
    const cmd = /^CMD \["([^"]+)"\]$/m.exec(dockerfile)?.[1];
    expect(cmd !== undefined && isBuilt(cmd), `CMD ${String(cmd)}`).toBe(true);
  });

  it('runs what deploy/ runs: the commands of the DaemonSet and the Deployment are built', () => {
    for (const [kind, name] of [
      ['DaemonSet', 'noma-agent'],
      ['Deployment', 'noma-coordinator'],
    ] as const) {
      const obj = deployObject(kind, name) as unknown as {
        spec: { template: { spec: { containers: { command?: string[]; image?: string }[] } } };
      };
      const [c] = obj.spec.template.spec.containers;
      expect(c?.command?.[0]).toBe('node');
      expect(isBuilt(c?.command?.[1] ?? ''), `${kind} ${name}: ${String(c?.command)}`).toBe(true);
      expect(c?.image).toBe('noma');
    }
  });

  it('is multi-stage, on Node LTS, with production dependencies only and a non-root user', () => {
    const froms = lines.filter((l) => l.startsWith('FROM '));
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const f of froms) {
      const major = Number(/node:(\d+)/.exec(f)?.[1]);
      // Even majors are the LTS lines.
      expect(major % 2, f).toBe(0);
      expect(major, f).toBeGreaterThanOrEqual(20);
    }
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('FROM '));
    expect(runtime).toContain('npm ci --omit=dev');
    expect(runtime).toMatch(/^USER node$/m);
  });
});
