import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAllYaml } from '@kubernetes/client-node';
import { parse } from 'yaml';
import {
  ACCEPT_INVENTORY_ANNOTATION,
  GPU_HEALTH_DETAIL_ANNOTATION,
  MANAGED_LABELS_ANNOTATION,
} from '../../shared/labels.js';
import { LABEL_KEYS_CONFIGMAP } from '../../agent/labels/keys.js';
import { runNoma } from '../../test/support/cli.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'noma-rules-keys-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface KeysConfigMap {
  kind: string;
  metadata: { name: string; namespace: string };
  data: { keys: string; prefixes: string };
}
const lines = (text: string) => text.split('\n').filter((l) => l !== '');

async function keys(args: string[]): Promise<KeysConfigMap> {
  const run = await runNoma(['rules', 'keys', ...args], { cwd: dir });
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return parse(run.stdout) as KeysConfigMap;
}

describe('noma rules keys', () => {
  it('deploy/agent-label-keys.yaml is what it prints for deploy/label-rules.yaml (npm run gen)', async () => {
    const run = await runNoma(['rules', 'keys', '-f', 'deploy/label-rules.yaml'], { cwd: ROOT });
    expect(run.code).toBe(0);
    expect(await readFile(join(ROOT, 'deploy/agent-label-keys.yaml'), 'utf8')).toBe(run.stdout);
  });

  it('reads a plain rules file and names the ConfigMap as asked', async () => {
    await writeFile(
      join(dir, 'custom.yaml'),
      'gpuLabels: {example.com/gpu: "true"}\nskuLabel: {prefix: model.example.com/, value: "y"}\nnomaLabels: false\n',
    );
    const cm = await keys(['-f', 'custom.yaml', '--name', 'keys', '-n', 'ops']);
    expect(cm.kind).toBe('ConfigMap');
    expect(cm.metadata).toMatchObject({ name: 'keys', namespace: 'ops' });
    expect(lines(cm.data.keys)).toEqual([
      'example.com/gpu',
      'gpu.count',
      'hardware.tier',
      'noma.dev/gpu.health',
      'voice-pipeline',
    ]);
    expect(lines(cm.data.prefixes)).toEqual(['model.example.com/']);
  });

  it('with old and new rules, lists the keys of both', async () => {
    await writeFile(join(dir, 'old.yaml'), 'countLabel: old.count\n');
    await writeFile(join(dir, 'new.yaml'), 'countLabel: new.count\n');
    const cm = await keys(['-f', 'old.yaml', '-f', 'new.yaml']);
    expect(cm.metadata.name).toBe(LABEL_KEYS_CONFIGMAP);
    expect(lines(cm.data.keys)).toEqual(expect.arrayContaining(['old.count', 'new.count']));
  });

  it('refuses rules the agent would refuse, naming the file and the error', async () => {
    await writeFile(join(dir, 'bad.yaml'), 'countLabel: kubernetes.io/gpus\n');
    const run = await runNoma(['rules', 'keys', '-f', 'bad.yaml'], { cwd: dir });
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('bad.yaml: invalid rules');
    expect(run.stderr).toContain('reserved for Kubernetes');
    const none = await runNoma(['rules', 'keys'], { cwd: dir });
    expect(none.code).toBe(2);
  });

  it('writes --output', async () => {
    await writeFile(join(dir, 'new.yaml'), 'countLabel: new.count\n');
    const run = await runNoma(['rules', 'keys', '-f', 'new.yaml', '-o', 'out.yaml'], { cwd: dir });
    expect(run.code).toBe(0);
    const cm = parse(await readFile(join(dir, 'out.yaml'), 'utf8')) as KeysConfigMap;
    expect(lines(cm.data.keys)).toContain('new.count');
  });
});

describe("deploy/'s policy and its params", () => {
  const docs = async (file: string) =>
    loadAllYaml(await readFile(join(ROOT, 'deploy', file), 'utf8')) as {
      kind: string;
      metadata: { name: string };
      spec: Record<string, unknown>;
    }[];

  it('binds noma-agent-label-keys to the ConfigMap the CLI writes (open without it: see the YAML)', async () => {
    const binding = (await docs('agent-node-restriction.yaml')).find(
      (d) =>
        d.kind === 'ValidatingAdmissionPolicyBinding' &&
        d.metadata.name === 'noma-agent-label-keys',
    );
    expect(binding?.spec['paramRef']).toEqual({
      name: LABEL_KEYS_CONFIGMAP,
      namespace: 'noma-system',
      parameterNotFoundAction: 'Allow',
    });
    const kustomization = await readFile(join(ROOT, 'deploy/kustomization.yaml'), 'utf8');
    expect(kustomization).toMatch(/^ {2}- agent-label-keys\.yaml$/m);
  });

  it('lets the agent write exactly the annotations it writes (shared/labels.ts)', async () => {
    const text = await readFile(join(ROOT, 'deploy/agent-node-restriction.yaml'), 'utf8');
    const list = (name: string) =>
      new RegExp(`name: ${name}\\n\\s+expression: "\\[([^\\]]*)\\]"`).exec(text)?.[1];
    expect(list('agentAnnotations')).toBe(
      `'${MANAGED_LABELS_ANNOTATION}', '${GPU_HEALTH_DETAIL_ANNOTATION}'`,
    );
    expect(list('removableAnnotations')).toBe(`'${ACCEPT_INVENTORY_ANNOTATION}'`);
  });
});
