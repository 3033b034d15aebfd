// deploy/crd.yaml on the real API server: it installs, is discoverable as `noma`, accepts the
// DESIGN.md example and rejects every invalid object of the shared fixtures, naming the field;
// durations over 720h are refused, and the spec is frozen once the maintenance has started.
import {
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiGet } from '../cluster/cluster.js';
import {
  invalidCases,
  invalidMaintenance,
  validMaintenance,
  type InvalidCase,
} from '../fixtures/nodemaintenance.js';
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

type Obj = Record<string, unknown>;
const specOf = (o: Obj) => o['spec'] as Obj;
const optionsOf = (spec: Obj) => spec['options'] as Obj;
const actionsOf = (spec: Obj) => spec['actions'] as Obj[];

/** 720h (30 days) is the longest duration anywhere: Node's timers cannot wait longer than ~24.8 days unaided. */
const overLongCases: readonly InvalidCase[] = [
  {
    name: 'drainTimeout of 721h',
    field: 'spec.options.drainTimeout',
    mutate: (s) => {
      optionsOf(s)['drainTimeout'] = '721h';
    },
  },
  {
    name: 'drainTimeout of 720h1s',
    field: 'spec.options.drainTimeout',
    mutate: (s) => {
      optionsOf(s)['drainTimeout'] = '720h1s';
    },
  },
  {
    name: 'action timeout of 721h',
    field: 'spec.actions[0].timeout',
    mutate: (s) => {
      actionsOf(s)[0] = { ...actionsOf(s)[0], timeout: '721h' };
    },
  },
  {
    name: 'action timeout of 43201m',
    field: 'spec.actions[1].timeout',
    mutate: (s) => {
      actionsOf(s)[1] = { ...actionsOf(s)[1], timeout: '43201m' };
    },
  },
];

describe('durations on the API server', () => {
  it.each(overLongCases)('rejects $name, naming $field', async (c) => {
    const obj = invalidMaintenance(c, `too-long-${overLongCases.indexOf(c)}`);
    const local = validateNodeMaintenance(obj);
    expect(local.ok).toBe(false);
    expect(local.ok ? [] : local.errors.map((e) => e.path)).toContain(c.field);
    let text = '';
    try {
      await create(obj);
    } catch (err) {
      text = errorText(err);
    }
    expect(text).toContain('422');
    expect(text).toContain(c.field);
    expect(text).toContain('720h');
  });

  it('accepts 720h for drainTimeout and an action timeout', async () => {
    const obj = validMaintenance('thirty-days');
    optionsOf(specOf(obj))['drainTimeout'] = '720h';
    optionsOf(specOf(obj))['forceDrain'] = true;
    actionsOf(specOf(obj))[0] = { ...actionsOf(specOf(obj))[0], timeout: '720h' };
    actionsOf(specOf(obj))[1] = { ...actionsOf(specOf(obj))[1], timeout: '43200m' };
    expect(validateNodeMaintenance(obj).ok).toBe(true);
    const created = (await create(obj)) as Obj;
    expect(optionsOf(specOf(created))['drainTimeout']).toBe('720h');
  });
});

describe('the spec once the maintenance has started', () => {
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  const ref = () => ({ group: GROUP, version: VERSION, plural: PLURAL, namespace: ns.name });

  const patchSpec = (name: string, spec: Obj) =>
    custom.patchNamespacedCustomObject({ ...ref(), name, body: { spec } }, merge);

  /** What the coordinator does at selection, done here as admin through the status subresource. */
  const markStarted = (name: string) =>
    custom.patchNamespacedCustomObjectStatus(
      { ...ref(), name, body: { status: { observedNodes: ['gpu-01', 'gpu-02'] } } },
      merge,
    );

  /** The refusal's text, or '' when the API server accepted the edit. */
  async function refusal(edit: Promise<unknown>): Promise<string> {
    try {
      await edit;
      return '';
    } catch (err) {
      return errorText(err);
    }
  }

  const otherActions = [{ type: 'Run', run: { command: ['true'] } }, { type: 'Complete' }];

  it('accepts any edit of the steps before selection (no status yet)', async () => {
    await create(validMaintenance('not-started'));
    expect(await refusal(patchSpec('not-started', { actions: otherActions }))).toBe('');
    expect(await refusal(patchSpec('not-started', { options: { drainTimeout: '2h' } }))).toBe('');
    const got = (await custom.getNamespacedCustomObject({ ...ref(), name: 'not-started' })) as Obj;
    expect(actionsOf(specOf(got))).toEqual(otherActions);
  });

  it('rejects an edit of spec.actions after selection, naming the field', async () => {
    await create(validMaintenance('started-actions'));
    await markStarted('started-actions');
    // Inserting a step before a running one would re-run that step under a new ID.
    const before = actionsOf(specOf(validMaintenance()));
    const text = await refusal(
      patchSpec('started-actions', { actions: [{ type: 'Reboot' }, ...before] }),
    );
    expect(text).toContain('422');
    expect(text).toContain('spec.actions');
    expect(text).toContain('immutable');
    // Also an edit of one step's content.
    const edited = structuredClone(before);
    edited[0] = { ...edited[0], timeout: '1h' };
    expect(await refusal(patchSpec('started-actions', { actions: edited }))).toContain(
      'spec.actions',
    );
    const got = (await custom.getNamespacedCustomObject({
      ...ref(),
      name: 'started-actions',
    })) as Obj;
    expect(actionsOf(specOf(got))).toEqual(before);
  });

  it('accepts spec.paused, maxUnavailable and maxFailedNodes after selection', async () => {
    await create(validMaintenance('started-mutable'));
    await markStarted('started-mutable');
    expect(await refusal(patchSpec('started-mutable', { paused: true }))).toBe('');
    expect(await refusal(patchSpec('started-mutable', { options: { maxUnavailable: 3 } }))).toBe(
      '',
    );
    expect(
      await refusal(patchSpec('started-mutable', { options: { maxFailedNodes: '50%' } })),
    ).toBe('');
    expect(await refusal(patchSpec('started-mutable', { paused: false }))).toBe('');
    const got = (await custom.getNamespacedCustomObject({
      ...ref(),
      name: 'started-mutable',
    })) as Obj;
    expect(optionsOf(specOf(got))).toMatchObject({ maxUnavailable: 3, maxFailedNodes: '50%' });
    expect(specOf(got)['paused']).toBe(false);
  });

  it('rejects an edit of options.drainTimeout, and of nodeSelector, after selection', async () => {
    await create(validMaintenance('started-options'));
    await markStarted('started-options');
    const timeout = await refusal(
      patchSpec('started-options', { options: { drainTimeout: '2h' } }),
    );
    expect(timeout).toContain('422');
    expect(timeout).toContain('spec.options.drainTimeout');
    // Adding an option that was not set is an edit too.
    const added = await refusal(
      patchSpec('started-options', { options: { deleteEmptyDirData: true } }),
    );
    expect(added).toContain('spec.options.deleteEmptyDirData');
    const selector = await refusal(
      patchSpec('started-options', { nodeSelector: 'kubernetes.io/hostname=gpu-03' }),
    );
    expect(selector).toContain('spec.nodeSelector');
  });
});

describe('the status fence', () => {
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  const ref = (name: string) => ({
    group: GROUP,
    version: VERSION,
    plural: PLURAL,
    namespace: ns.name,
    name,
  });
  const patchStatus = (name: string, body: Obj) =>
    custom.patchNamespacedCustomObjectStatus({ ...ref(name), body }, merge);
  const refused = async (edit: Promise<unknown>): Promise<string> =>
    edit.then(
      () => '',
      (err: unknown) => errorText(err),
    );

  it('refuses a status write with a lower leaderEpoch, naming the field', async () => {
    await create(validMaintenance('fenced'));
    await patchStatus('fenced', { status: { leaderEpoch: 3, phase: 'Running' } });
    const text = await refused(
      patchStatus('fenced', { status: { leaderEpoch: 2, phase: 'Pending' } }),
    );
    expect(text).toMatch(/^422 /);
    expect(text).toContain('leaderEpoch');
    // A write that leaves the epoch alone, or raises it, is taken.
    expect(await refused(patchStatus('fenced', { status: { progress: '0/2' } }))).toBe('');
    expect(await refused(patchStatus('fenced', { status: { leaderEpoch: 4 } }))).toBe('');
    expect(await refused(patchStatus('fenced', { status: { leaderEpoch: null } }))).toMatch(
      /^422 /,
    );
    const got = (await custom.getNamespacedCustomObject(ref('fenced'))) as Obj;
    expect(got['status']).toMatchObject({ leaderEpoch: 4, phase: 'Running', progress: '0/2' });
  });

  it('applies a status patch carrying a resourceVersion only to that version', async () => {
    const created = (await create(validMaintenance('versioned'))) as {
      metadata: { resourceVersion: string };
    };
    const rv = created.metadata.resourceVersion;
    const first = (await patchStatus('versioned', {
      metadata: { resourceVersion: rv },
      status: { phase: 'Running' },
    })) as { metadata: { resourceVersion: string } };
    // The same version again: the object changed since, so the write is refused with 409.
    const text = await refused(
      patchStatus('versioned', { metadata: { resourceVersion: rv }, status: { phase: 'Pending' } }),
    );
    expect(text).toMatch(/^409 /);
    expect(
      await refused(
        patchStatus('versioned', {
          metadata: { resourceVersion: first.metadata.resourceVersion },
          status: { phase: 'Completed' },
        }),
      ),
    ).toBe('');
  });
});
