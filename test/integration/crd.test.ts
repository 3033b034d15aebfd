// deploy/crd.yaml on the real API server: it installs, is discoverable as `noma`, accepts the
// DESIGN.md example and rejects every invalid object of the shared fixtures, naming the field.
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiGet } from '../cluster/cluster.js';
import { invalidCases, invalidMaintenance, validMaintenance } from '../fixtures/nodemaintenance.js';
import { installCRD } from '../support/crd.js';
import { adminKubeConfig, createNamespace, waitFor } from '../support/kube.js';
import { GROUP, PLURAL, VERSION, validateNodeMaintenance } from '../../shared/api/index.js';

let kc: KubeConfig;
let custom: CustomObjectsApi;
let ns: Awaited<ReturnType<typeof createNamespace>>;

beforeAll(async () => {
  kc = adminKubeConfig();
  await installCRD(kc);
  custom = kc.makeApiClient(CustomObjectsApi);
  ns = await createNamespace('crd');
});
afterAll(async () => {
  await ns.remove();
});

const create = (body: object) =>
  custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns.name,
    plural: PLURAL,
    body,
  });

function errorText(err: unknown): string {
  const e = err as { code?: number; body?: unknown; message?: string };
  return `${e.code ?? ''} ${typeof e.body === 'string' ? e.body : JSON.stringify(e.body)} ${e.message ?? ''}`;
}

describe('NodeMaintenance CRD on the API server', () => {
  it('is discoverable with the shortName noma', async () => {
    const { body } = await apiGet(`/apis/${GROUP}/${VERSION}`);
    const list = JSON.parse(body) as {
      resources: { name: string; shortNames?: string[]; namespaced: boolean }[];
    };
    const res = list.resources.find((r) => r.name === PLURAL);
    expect(res).toMatchObject({ shortNames: ['noma'], namespaced: true });
    expect(list.resources.map((r) => r.name)).toContain(`${PLURAL}/status`);
  });

  it('publishes field descriptions (kubectl explain noma.spec.options)', async () => {
    // The API server publishes a new CRD's OpenAPI asynchronously.
    const body = await waitFor('OpenAPI v3 of the CRD', async () => {
      const res = await apiGet(`/openapi/v3/apis/${GROUP}/${VERSION}`);
      return res.status === 200 && res.body.includes('linearTicket') ? res.body : undefined;
    });
    expect(body).toContain('After drainTimeout, delete the pods that are still on the node');
    expect(body).toContain('Ticket that authorizes this maintenance');
  });

  it('accepts the DESIGN.md example, and prints its columns', async () => {
    const created = (await create(validMaintenance('valid'))) as { spec: unknown };
    expect(created.spec).toEqual(validMaintenance('valid')['spec']);
    const { body } = await apiGet(`/apis/${GROUP}/${VERSION}/namespaces/${ns.name}/${PLURAL}`, {
      Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
    });
    const table = JSON.parse(body) as {
      columnDefinitions: { name: string }[];
      rows: { cells: unknown[] }[];
    };
    expect(table.columnDefinitions.map((c) => c.name)).toEqual([
      'Name',
      'Phase',
      'Nodes',
      'Action',
      'Ticket',
      'Age',
    ]);
    expect(table.rows[0]?.cells.slice(0, 1)).toEqual(['valid']);
    expect(table.rows[0]?.cells[4]).toBe('ENG-1234');
  });

  it.each(invalidCases)('rejects $name, naming $field', async (c) => {
    const obj = invalidMaintenance(c, `invalid-${invalidCases.indexOf(c)}`);
    // The in-process validator and the API server agree.
    expect(validateNodeMaintenance(obj).ok).toBe(false);
    let text = '';
    try {
      await create(obj);
    } catch (err) {
      text = errorText(err);
    }
    expect(text).toContain('422');
    expect(text).toContain(c.field);
  });
});
