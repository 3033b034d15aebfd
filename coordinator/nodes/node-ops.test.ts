import { describe, expect, it } from 'vitest';
import type { CoreV1Api, V1Node } from '@kubernetes/client-node';
import { guardedNodeUpdate } from './node-ops.js';

/**
 * An API server's Node endpoint in memory: a resourceVersion per write, a 409 for a stale one,
 * and `interfere` to play another controller writing between our read and our write.
 */
function nodeServer(interfere: (n: V1Node) => void = () => undefined) {
  let node: V1Node | undefined = { metadata: { name: 'n', resourceVersion: '1' }, spec: {} };
  const patches: Record<string, unknown>[] = [];
  const api = {
    readNode: () =>
      node === undefined
        ? Promise.reject(Object.assign(new Error('not found'), { code: 404 }))
        : Promise.resolve(structuredClone(node)),
    patchNode: ({ body }: { body: Record<string, unknown> }) => {
      if (node === undefined)
        return Promise.reject(Object.assign(new Error('gone'), { code: 404 }));
      interfere(node);
      const meta = body['metadata'] as { resourceVersion?: string };
      if (meta.resourceVersion !== node.metadata?.resourceVersion) {
        return Promise.reject(Object.assign(new Error('conflict'), { code: 409 }));
      }
      patches.push(body);
      const rv = String(Number(node.metadata?.resourceVersion ?? '0') + 1);
      node.metadata = Object.assign(node.metadata ?? {}, { resourceVersion: rv });
      node.spec = Object.assign(node.spec ?? {}, body['spec']);
      return Promise.resolve(structuredClone(node));
    },
  };
  return {
    core: api as unknown as CoreV1Api,
    patches,
    gone: () => {
      node = undefined;
    },
  };
}

const direct = <T>(fn: () => Promise<T>) => fn();

describe('guardedNodeUpdate', () => {
  it('decides again on the fresh node after a conflict, and keeps what the other writer did', async () => {
    let interfered = false;
    const server = nodeServer((n) => {
      if (interfered) return;
      interfered = true;
      n.spec = Object.assign(n.spec ?? {}, { taints: [{ key: 'theirs', effect: 'NoSchedule' }] });
      n.metadata = Object.assign(n.metadata ?? {}, { resourceVersion: '7' });
    });
    const seen: (string | undefined)[] = [];
    const written = await guardedNodeUpdate(server.core, direct, 'n', (node) => {
      seen.push(node.metadata?.resourceVersion);
      return {
        spec: { taints: [...(node.spec?.taints ?? []), { key: 'ours', effect: 'NoSchedule' }] },
      };
    });
    expect(seen).toEqual(['1', '7']);
    expect(written?.spec?.taints?.map((t) => t.key)).toEqual(['theirs', 'ours']);
    expect(server.patches).toHaveLength(1);
  });

  it('writes nothing when there is nothing to do, and nothing for a node that is gone', async () => {
    const server = nodeServer();
    expect(await guardedNodeUpdate(server.core, direct, 'n', () => undefined)).toBeUndefined();
    server.gone();
    expect(await guardedNodeUpdate(server.core, direct, 'n', () => ({ spec: {} }))).toBeUndefined();
    expect(server.patches).toHaveLength(0);
  });

  it('gives up after repeated conflicts rather than spinning', async () => {
    let writes = 0;
    const server = nodeServer((n) => {
      writes++;
      n.metadata = Object.assign(n.metadata ?? {}, { resourceVersion: String(Math.random()) });
    });
    await expect(
      guardedNodeUpdate(server.core, direct, 'n', () => ({ spec: { unschedulable: true } })),
    ).rejects.toMatchObject({ code: 409 });
    expect(writes).toBe(11); // the first write and ten redone
  });

  it('does not redo a refusal', async () => {
    let reads = 0;
    const api = {
      readNode: () => {
        reads++;
        return Promise.resolve({ metadata: { name: 'n', resourceVersion: '1' } });
      },
      patchNode: () => Promise.reject(Object.assign(new Error('forbidden'), { code: 403 })),
    };
    await expect(
      guardedNodeUpdate(api as unknown as CoreV1Api, direct, 'n', () => ({ spec: {} })),
    ).rejects.toMatchObject({ code: 403 });
    expect(reads).toBe(1);
  });
});
