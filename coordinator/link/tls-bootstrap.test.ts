import { describe, expect, it } from 'vitest';
import type { CoreV1Api } from '@kubernetes/client-node';
import pino from 'pino';
import { ensureLinkTls } from './tls-bootstrap.js';

const apiError = (code: number) => Object.assign(new Error(`HTTP ${String(code)}`), { code });

/**
 * The Secret and ConfigMap endpoints of an API server in memory: a resourceVersion per write,
 * 409 for a create of what exists or a replace from a stale version, and `before` to play
 * another replica writing between our read and our write.
 */
/** What the test's API server stores: the parts of a Secret or ConfigMap that it reads. */
interface Obj {
  metadata?: { name?: string; resourceVersion?: string };
  data?: Record<string, string>;
}

function apiServer(before: (kind: 'secret' | 'configmap', call: number) => void = () => undefined) {
  const objects = new Map<string, { resourceVersion: string; body: Obj }>();
  let version = 0;
  const calls = { secret: 0, configmap: 0 };
  const read = (key: string) => {
    const o = objects.get(key);
    if (o === undefined) return Promise.reject(apiError(404));
    return Promise.resolve(
      structuredClone({
        ...o.body,
        metadata: { ...o.body.metadata, resourceVersion: o.resourceVersion },
      }),
    );
  };
  const write = (kind: 'secret' | 'configmap', key: string, body: Obj, create: boolean) => {
    before(kind, ++calls[kind]);
    const o = objects.get(key);
    if (create ? o !== undefined : o?.resourceVersion !== body.metadata?.resourceVersion)
      return Promise.reject(apiError(409));
    objects.set(key, { resourceVersion: String(++version), body: structuredClone(body) });
    return Promise.resolve(body);
  };
  const key = (kind: string, ns: string, name: string) => `${kind}/${ns}/${name}`;
  type Ref = { namespace: string; name: string };
  type Body<T> = { namespace: string; name?: string; body: T };
  const api = {
    readNamespacedSecret: (r: Ref) => read(key('secret', r.namespace, r.name)),
    createNamespacedSecret: (r: Body<Obj>) =>
      write('secret', key('secret', r.namespace, r.body.metadata?.name ?? ''), r.body, true),
    replaceNamespacedSecret: (r: Body<Obj>) =>
      write('secret', key('secret', r.namespace, r.name ?? ''), r.body, false),
    readNamespacedConfigMap: (r: Ref) => read(key('configmap', r.namespace, r.name)),
    createNamespacedConfigMap: (r: Body<Obj>) =>
      write('configmap', key('configmap', r.namespace, r.body.metadata?.name ?? ''), r.body, true),
    replaceNamespacedConfigMap: (r: Body<Obj>) =>
      write('configmap', key('configmap', r.namespace, r.name ?? ''), r.body, false),
  };
  return { api: api as unknown as CoreV1Api, objects, calls };
}

const opts = {
  secret: { namespace: 'noma-system', name: 'tls' },
  caConfigMap: { namespace: 'noma-system', name: 'ca' },
  hosts: ['localhost'],
  log: pino({ level: 'silent' }),
};

describe('ensureLinkTls', () => {
  it('creates the Secret and publishes its CA', async () => {
    const server = apiServer();
    const material = await ensureLinkTls(server.api, opts);
    expect(material.cert).toContain('BEGIN CERTIFICATE');
    const cm = server.objects.get('configmap/noma-system/ca')?.body;
    expect(cm?.data?.['ca.crt']).toBe(material.caCert);
  });

  it('uses what the replica that won the race stored, and publishes that CA', async () => {
    const winner = apiServer();
    const theirs = await ensureLinkTls(winner.api, { ...opts, caConfigMap: undefined });
    const stored = winner.objects.get('secret/noma-system/tls');
    const server = apiServer((kind, call) => {
      // The other replica creates the Secret between our read and our create.
      if (kind === 'secret' && call === 1 && stored !== undefined)
        server.objects.set('secret/noma-system/tls', stored);
    });
    const material = await ensureLinkTls(server.api, opts);
    expect(material).toEqual(theirs);
    expect(server.calls.secret).toBe(1);
    const cm = server.objects.get('configmap/noma-system/ca')?.body;
    expect(cm?.data?.['ca.crt']).toBe(theirs.caCert);
  });

  it('gives up after five lost races, saying so', async () => {
    let bump = 0;
    const server = apiServer((kind) => {
      // Someone rewrites the ConfigMap between every read and write of ours.
      if (kind === 'configmap')
        server.objects.set('configmap/noma-system/ca', {
          resourceVersion: `other-${String(++bump)}`,
          body: { metadata: { name: 'ca' }, data: { 'ca.crt': 'someone else' } },
        });
    });
    await expect(ensureLinkTls(server.api, opts)).rejects.toThrow(
      'ConfigMap noma-system/ca: kept conflicting',
    );
    expect(server.calls.configmap).toBe(5);
  });

  it('does not retry a refusal', async () => {
    const server = apiServer((kind) => {
      if (kind === 'secret') throw apiError(403);
    });
    await expect(ensureLinkTls(server.api, opts)).rejects.toMatchObject({ code: 403 });
    expect(server.calls.secret).toBe(1);
  });
});
