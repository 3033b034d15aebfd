import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inClusterAccess, kubeconfigAccess } from './access.js';

function kubeconfig(user: Record<string, unknown>, cluster: Record<string, unknown> = {}): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'ctx',
    contexts: [
      { name: 'other', context: { cluster: 'nope', user: 'nope' } },
      { name: 'ctx', context: { cluster: 'c', user: 'u' } },
    ],
    clusters: [{ name: 'c', cluster: { server: 'https://10.0.0.1:6443/', ...cluster } }],
    users: [{ name: 'u', user }],
  });
}

describe('kubeconfigAccess', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'noma-kc-'));
    await writeFile(join(dir, 'ca.crt'), 'CA');
    await writeFile(join(dir, 'token'), 'file-token\n');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function load(text: string) {
    const path = join(dir, 'config');
    await writeFile(path, text);
    return kubeconfigAccess(path);
  }

  it('reads the current context with inline data and a token', async () => {
    const access = await load(
      kubeconfig(
        { token: 'abc', 'client-certificate-data': Buffer.from('CERT').toString('base64') },
        { 'certificate-authority-data': Buffer.from('CA').toString('base64') },
      ),
    );
    expect(access.server).toBe('https://10.0.0.1:6443');
    expect(access.ca?.toString()).toBe('CA');
    expect(access.cert?.toString()).toBe('CERT');
    expect(await access.token?.()).toBe('abc');
    expect(access.insecureSkipTLSVerify).toBe(false);
  });

  it('resolves files relative to the kubeconfig', async () => {
    const access = await load(
      kubeconfig({ tokenFile: 'token' }, { 'certificate-authority': 'ca.crt' }),
    );
    expect(access.ca?.toString()).toBe('CA');
    expect(await access.token?.()).toBe('file-token');
  });

  it('refuses exec plugins with a clear message', async () => {
    await expect(load(kubeconfig({ exec: { command: 'aws' } }))).rejects.toThrow(
      /exec or auth-provider plugin, which the agent does not support/,
    );
  });

  it('names a missing context', async () => {
    await expect(load(JSON.stringify({ 'current-context': 'gone', contexts: [] }))).rejects.toThrow(
      /no context named "gone"/,
    );
  });
});

describe('inClusterAccess', () => {
  it('says what is missing outside a cluster', async () => {
    await expect(inClusterAccess({})).rejects.toThrow(/not running in a cluster.*--kubeconfig/);
  });
});
