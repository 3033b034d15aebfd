import { ApiException } from '@kubernetes/client-node';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  NODE_MESSAGE_MAX_BYTES,
  type Condition,
  type NodeMaintenance,
  type NodeMaintenanceStatus,
  type NodeStatus,
} from '../../shared/api/index.js';
import { createLogger } from '../../shared/log.js';
import { STATUS_TAIL_BYTES } from '../../shared/protocol.js';
import {
  compactNode,
  compactStatus,
  createStatusStore,
  fenceEpoch,
  headBytes,
  STATUS_TAILS_BUDGET_BYTES,
  tailLimit,
  TRIMMED_TEXT_BYTES,
  WRITABLE_CONDITION,
  type StatusWriter,
} from './status-store.js';

const node = (i: number, extra: Partial<NodeStatus> = {}): NodeStatus => ({
  name: `gpu-${String(i).padStart(4, '0')}`,
  phase: 'Succeeded',
  ...extra,
});

describe('tailLimit', () => {
  it('keeps the full tail for small maintenances', () => {
    expect(tailLimit(1)).toBe(STATUS_TAIL_BYTES);
    expect(tailLimit(64)).toBe(STATUS_TAIL_BYTES);
  });
  it('shares the budget among many nodes, with a floor', () => {
    expect(tailLimit(2000)).toBe(Math.floor(STATUS_TAILS_BUDGET_BYTES / 2000));
    expect(tailLimit(100_000)).toBe(64);
  });
});

describe('compactStatus', () => {
  it('leaves out a drain of no pods and empty initial taints', () => {
    const s = compactStatus({
      nodes: [
        node(1, {
          drain: { total: 0, evicted: 0, pending: 0 },
          initialState: { unschedulable: true, taints: [] },
        }),
      ],
    });
    expect(s.nodes?.[0]).toEqual({
      name: 'gpu-0001',
      phase: 'Succeeded',
      initialState: { unschedulable: true },
    });
  });

  it('keeps a drain that counted pods or is blocked, and taints that were there', () => {
    const blocked = { kind: 'PodDisruptionBudget', namespace: 'a', name: 'pdb' };
    const taints = [{ key: 'k', effect: 'NoSchedule' }];
    const nodes = [
      node(1, { drain: { total: 3, evicted: 3, pending: 0 } }),
      node(2, { drain: { total: 0, evicted: 0, pending: 0, blockedBy: blocked } }),
      node(3, { initialState: { unschedulable: false, taints } }),
    ];
    expect(compactStatus({ nodes }).nodes).toEqual(nodes);
  });

  it('cuts output tails to their share so 2000 nodes fit in one object', () => {
    const long = `${'x'.repeat(10_000)}END`;
    const nodes = Array.from({ length: 2000 }, (_, i) => node(i, { outputTail: long }));
    const out = compactStatus({ nodes }).nodes ?? [];
    for (const n of out) {
      expect(Buffer.byteLength(n.outputTail ?? '')).toBeLessThanOrEqual(tailLimit(2000));
      expect(n.outputTail?.endsWith('END')).toBe(true);
    }
    expect(JSON.stringify(out).length).toBeLessThan(600 * 1024);
  });
});

describe('createStatusStore', () => {
  const cr = {
    apiVersion: 'noma.dev/v1alpha1',
    kind: 'NodeMaintenance',
    metadata: { name: 'm', namespace: 'ops', generation: 1 },
    spec: { operationName: 'op', linearTicket: 'ENG-1', nodeSelector: 'a=b', actions: [] },
  } as const satisfies NodeMaintenance;

  /** A status writer that holds each write until released, as a slow API server would. */
  function slowWriter() {
    const patches: Record<string, unknown>[] = [];
    let release: () => void = () => undefined;
    const write: StatusWriter = (patch) => {
      patches.push(structuredClone(patch));
      return new Promise<void>((r) => {
        release = r;
      });
    };
    return {
      patches,
      write,
      release: () => {
        release();
      },
    };
  }

  const store = (write: StatusWriter, clock: { now: Date }) =>
    createStatusStore({
      initial: { nodes: [node(1, { phase: 'Pending' }), node(2, { phase: 'Pending' })] },
      cr: () => cr,
      write,
      log: createLogger('test', 'silent'),
      now: () => clock.now,
      intervalMs: 10,
    });

  it('groups the transitions made while a write is in flight into the next write', async () => {
    const w = slowWriter();
    const s = store(w.write, { now: new Date('2026-11-21T00:00:00Z') });
    const first = s.setNode(node(1, { phase: 'Cordoned' }), false);
    const second = s.setNode(node(1, { phase: 'Draining' }), false);
    const third = s.setNode(node(2, { phase: 'Cordoned' }), false);
    expect(w.patches).toHaveLength(1);
    w.release();
    await first;
    await new Promise((r) => setImmediate(r));
    expect(w.patches).toHaveLength(2);
    const phases = (w.patches[1]?.['nodes'] as NodeStatus[]).map((n) => n.phase);
    expect(phases).toEqual(['Draining', 'Cordoned']);
    w.release();
    await Promise.all([second, third]);
    expect(s.writes).toBe(2);
  });

  it('writes the summary of the nodes as they are, and nothing when nothing changed', async () => {
    const clock = { now: new Date('2026-11-21T00:00:00Z') };
    const patches: Record<string, unknown>[] = [];
    const s = store((p) => {
      patches.push(p);
      return Promise.resolve();
    }, clock);
    await s.setNode(node(1), false);
    expect(patches.at(-1)?.['progress']).toBe('1/2');
    await s.setNode(node(2), false);
    expect(s.current.phase).toBe('Completed');
    const completedAt = s.current.completedAt;
    expect(completedAt).toBe(clock.now.toISOString());
    // A later read or flush must not move what was already decided.
    clock.now = new Date('2026-11-21T01:00:00Z');
    const before = patches.length;
    await s.flush();
    expect(patches).toHaveLength(before);
    expect(s.current.completedAt).toBe(completedAt);
  });

  it('writes progress within the interval, without being awaited', async () => {
    const patches: Record<string, unknown>[] = [];
    const s = store(
      (p) => {
        patches.push(p);
        return Promise.resolve();
      },
      { now: new Date() },
    );
    await s.setNode(node(1, { phase: 'Draining', message: 'waiting' }), true);
    expect(patches).toHaveLength(0);
    expect(s.node('gpu-0001')?.message).toBe('waiting');
    await new Promise((r) => setTimeout(r, 30));
    expect(patches).toHaveLength(1);
  });
});

describe('headBytes', () => {
  it.each([
    ['short', 10, 'short'],
    ['abcdefghij', 10, 'abcdefghij'],
    ['abcdefghijk', 10, 'abcdefg…'],
    // é is 2 bytes: 7 bytes left for text hold 3 of them, not 3.5.
    ['ééééééé', 10, 'ééé…'],
    // 🙂 is 4 bytes: never half of one.
    ['🙂🙂🙂', 10, '🙂…'],
    ['🙂🙂🙂', 6, '…'],
  ])('%j in %d bytes is %j', (text, max, want) => {
    const out = headBytes(text, max);
    expect(out).toBe(want);
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(max);
    expect(out).not.toContain('\uFFFD');
  });
});

describe('compactNode message', () => {
  it('keeps a message of up to 1 KiB as it is', () => {
    const message = 'x'.repeat(NODE_MESSAGE_MAX_BYTES);
    expect(compactNode(node(1, { message }), 4096).message).toBe(message);
  });

  it.each([
    ['ASCII', 'drain failed: '.padEnd(5_000, 'x')],
    ['2-byte UTF-8', 'é'.repeat(3_000)],
    ['4-byte UTF-8', `x${'🙂'.repeat(2_000)}`],
  ])('cuts a longer one (%s) to 1 KiB at a character boundary, keeping its start', (_, message) => {
    const out = compactNode(node(1, { message }), 4096).message ?? '';
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(NODE_MESSAGE_MAX_BYTES);
    expect(Buffer.byteLength(out)).toBeGreaterThan(NODE_MESSAGE_MAX_BYTES - 8);
    expect(out.endsWith('…')).toBe(true);
    expect(message.startsWith(out.slice(0, -1))).toBe(true);
    expect(out).not.toContain('\uFFFD');
  });

  it('applies to the nodes of an initial status and to setNode', async () => {
    const long = 'y'.repeat(10_000);
    const patches: Record<string, unknown>[] = [];
    const s = createStatusStore({
      initial: { nodes: [node(1, { phase: 'Failed', message: long }), node(2)] },
      cr: () => refusedCr,
      write: (p) => {
        patches.push(p);
        return Promise.resolve();
      },
      log: createLogger('test', 'silent'),
      now: () => new Date(),
      intervalMs: 10,
    });
    expect(Buffer.byteLength(s.node('gpu-0001')?.message ?? '')).toBe(NODE_MESSAGE_MAX_BYTES);
    await s.setNode(node(2, { phase: 'Failed', message: long }), false);
    const written = patches.at(-1)?.['nodes'] as NodeStatus[];
    for (const n of written) {
      expect(Buffer.byteLength(n.message ?? '')).toBeLessThanOrEqual(NODE_MESSAGE_MAX_BYTES);
    }
  });
});

const refusedCr = {
  apiVersion: 'noma.dev/v1alpha1',
  kind: 'NodeMaintenance',
  metadata: { name: 'm', namespace: 'ops', generation: 1 },
  spec: { operationName: 'op', linearTicket: 'ENG-1', nodeSelector: 'a=b', actions: [] },
} as const satisfies NodeMaintenance;

/** An error as client-node throws it for an answer of `code`, with a metav1.Status body. */
function apiError(code: number, reason: string, message: string): ApiException<string> {
  const body = JSON.stringify({ kind: 'Status', status: 'Failure', code, reason, message });
  return new ApiException(code, 'refused', body, {});
}

const networkError = (): Error =>
  Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' });

/** A writer that answers each call with the next of `answers` (an error), then accepts. */
function scriptedWriter(answers: readonly Error[]) {
  const patches: Record<string, unknown>[] = [];
  const write: StatusWriter = (patch) => {
    const answer = answers[patches.length];
    patches.push(structuredClone(patch));
    return answer === undefined ? Promise.resolve() : Promise.reject(answer);
  };
  return { patches, write };
}

const writable = (p: Record<string, unknown> | undefined): Condition | undefined =>
  (p?.['conditions'] as Condition[] | undefined)?.find((c) => c.type === WRITABLE_CONDITION);

describe('createStatusStore when the API server refuses a write', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const failedNode = (i: number) =>
    node(i, {
      phase: 'Failed',
      message: `step 1 failed: ${'m'.repeat(900)}`,
      outputTail: 'o'.repeat(2_000),
      drain: {
        total: 1,
        evicted: 0,
        pending: 1,
        blockedBy: { kind: 'PodDisruptionBudget', name: 'pdb', message: 'b'.repeat(900) },
      },
    });

  const store = (write: StatusWriter, initial: NodeMaintenanceStatus = {}) =>
    createStatusStore({
      initial: {
        nodes: [node(1, { phase: 'Pending' }), node(2, { phase: 'Pending' })],
        ...initial,
      },
      cr: () => refusedCr,
      write,
      log: createLogger('test', 'silent'),
      now: () => new Date('2026-11-21T00:00:00Z'),
      intervalMs: 10,
    });

  it.each([
    [422, 'Invalid'],
    [413, 'RequestEntityTooLarge'],
    [400, 'BadRequest'],
    [403, 'Forbidden'],
  ])(
    'answered %d: writes it once more, trimmed, with StatusWritable=False',
    async (code, reason) => {
      const w = scriptedWriter([apiError(code, reason, 'status.nodes[0].message: Too long')]);
      const s = store(w.write);
      await s.setNode(failedNode(1), false);
      expect(w.patches).toHaveLength(2);
      expect((w.patches[0]?.['nodes'] as NodeStatus[])[0]?.outputTail).toBeDefined();
      const trimmed = (w.patches[1]?.['nodes'] as NodeStatus[])[0];
      expect(trimmed?.outputTail).toBeUndefined();
      expect(trimmed?.phase).toBe('Failed');
      expect(Buffer.byteLength(trimmed?.message ?? '')).toBeLessThanOrEqual(TRIMMED_TEXT_BYTES);
      expect(Buffer.byteLength(trimmed?.drain?.blockedBy?.message ?? '')).toBeLessThanOrEqual(
        TRIMMED_TEXT_BYTES,
      );
      expect(writable(w.patches[1])).toMatchObject({
        status: 'False',
        reason: 'StatusWriteRefused',
      });
      expect(writable(w.patches[1])?.message).toContain(`${code} ${reason}`);
      expect(writable(w.patches[1])?.message).toContain('status.nodes[0].message: Too long');
      expect(s.refused).toBe(0);
      expect(s.lastRefusal).toContain(`${code} ${reason}: status.nodes[0].message: Too long`);
      // Trimmed from now on: the next write sends no tail again.
      await s.setNode(failedNode(2), false);
      expect(w.patches).toHaveLength(3);
      for (const n of w.patches[2]?.['nodes'] as NodeStatus[]) expect(n.outputTail).toBeUndefined();
    },
  );

  it('refused trimmed too: gives the write up, counts it, and says so in the next write', async () => {
    const denied = apiError(
      422,
      'Invalid',
      `ValidatingAdmissionPolicy denied: ${'x'.repeat(4_000)}`,
    );
    const w = scriptedWriter([denied, denied, denied]);
    const s = store(w.write);
    await s.setNode(failedNode(1), false); // resolves: no retry forever
    expect(w.patches).toHaveLength(2);
    expect(s.refused).toBe(1);
    expect(Buffer.byteLength(s.lastRefusal ?? '')).toBeLessThanOrEqual(512);
    // The status in memory says so, and the next write attempt carries it.
    expect(s.current.conditions?.find((c) => c.type === WRITABLE_CONDITION)?.status).toBe('False');
    await s.setNode(node(2, { phase: 'Cordoned' }), false);
    expect(w.patches).toHaveLength(3); // already trimmed: one attempt, then given up
    expect(s.refused).toBe(2);
    const c = writable(w.patches[2]);
    expect(c).toMatchObject({ status: 'False', reason: 'StatusWriteRefused' });
    expect(c?.message).toContain('ValidatingAdmissionPolicy denied');
    expect(Buffer.byteLength(c?.message ?? '')).toBeLessThan(1024);
    // Accepted at last: everything given up goes out with it.
    await s.setNode(node(1, { phase: 'Succeeded' }), false);
    expect(w.patches).toHaveLength(4);
    expect((w.patches[3]?.['nodes'] as NodeStatus[]).map((n) => n.phase)).toEqual([
      'Succeeded',
      'Cordoned',
    ]);
    expect(writable(w.patches[3])).toMatchObject({ status: 'False' });
    expect(writable(w.patches[3])?.message).toContain('2 write(s) refused even trimmed');
  });

  it('retries 409, 429, 5xx and network errors unchanged until the write lands', async () => {
    vi.useFakeTimers();
    const w = scriptedWriter([
      apiError(409, 'Conflict', 'the object has been modified'),
      apiError(429, 'TooManyRequests', 'slow down'),
      apiError(500, 'InternalError', 'etcdserver: leader changed'),
      apiError(503, 'ServiceUnavailable', 'unavailable'),
      networkError(),
    ]);
    const s = store(w.write);
    let done = false;
    const p = s.setNode(failedNode(1), false).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(60_000);
    await p;
    expect(done).toBe(true);
    expect(w.patches).toHaveLength(6);
    // The same full status each time: nothing trimmed, no condition raised.
    for (const patch of w.patches) expect(patch).toEqual(w.patches[0]);
    expect((w.patches[5]?.['nodes'] as NodeStatus[])[0]?.outputTail).toBeDefined();
    expect(writable(w.patches[5])).toBeUndefined();
    expect(s.refused).toBe(0);
    expect(s.lastRefusal).toBeUndefined();
  });

  it('keeps retrying a transient failure, with backoff, for as long as it lasts', async () => {
    vi.useFakeTimers();
    const w = scriptedWriter(Array.from({ length: 50 }, () => networkError()));
    const s = store(w.write);
    let done = false;
    void s.setNode(failedNode(1), false).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(10_000);
    const early = w.patches.length;
    expect(early).toBeGreaterThan(3);
    expect(early).toBeLessThan(20); // backed off, not a busy loop
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(done).toBe(true);
    expect(w.patches).toHaveLength(51);
  });

  it('gives up quietly on 404: the object is gone', async () => {
    const w = scriptedWriter([apiError(404, 'NotFound', 'not found')]);
    const s = store(w.write);
    await s.setNode(failedNode(1), false);
    expect(w.patches).toHaveLength(1);
    expect(s.refused).toBe(0);
    expect(s.lastRefusal).toBeUndefined();
  });

  it('a store that starts from StatusWritable=False sets it True once it writes', async () => {
    const w = scriptedWriter([]);
    const s = store(w.write, {
      conditions: [
        {
          type: WRITABLE_CONDITION,
          status: 'False',
          reason: 'StatusWriteRefused',
          message: 'earlier',
          lastTransitionTime: '2026-11-20T00:00:00Z',
        },
      ],
    });
    await s.setNode(node(1, { phase: 'Cordoned' }), false);
    expect(writable(w.patches[0])).toMatchObject({ status: 'True', reason: 'StatusWritten' });
  });
});

/**
 * The status subresource as the API server keeps it, for the fence: a merge patch with a
 * resourceVersion applies only to that version (409), and status.leaderEpoch may not go back
 * (the CRD's rule: 422 naming leaderEpoch).
 */
function fencedServer(initial: NodeMaintenanceStatus) {
  let version = 10;
  let status: Record<string, unknown> = structuredClone(initial);
  const writes: { by: string; patch: Record<string, unknown> }[] = [];
  const writer =
    (by: string): StatusWriter =>
    (patch, resourceVersion) => {
      if (resourceVersion !== undefined && resourceVersion !== String(version)) {
        return Promise.reject(apiError(409, 'Conflict', 'the object has been modified'));
      }
      const next = Object.fromEntries(
        Object.entries({ ...status, ...structuredClone(patch) }).filter(([, v]) => v !== null),
      );
      const [was, now] = [status['leaderEpoch'], next['leaderEpoch']];
      if (typeof was === 'number' && !(typeof now === 'number' && now >= was)) {
        return Promise.reject(apiError(422, 'Invalid', 'status.leaderEpoch may not go back'));
      }
      status = next;
      version++;
      writes.push({ by, patch: structuredClone(patch) });
      return Promise.resolve(String(version));
    };
  return {
    writes,
    writer,
    read: () => Promise.resolve({ resourceVersion: String(version), status }),
    /** Someone else changes the object (an annotation, the spec): a new version. */
    touch: () => {
      version++;
    },
    get version() {
      return String(version);
    },
    get status() {
      return status as NodeMaintenanceStatus;
    },
  };
}

describe('createStatusStore fenced by resourceVersion and leader epoch', () => {
  const fencedCr = (resourceVersion: string): NodeMaintenance => ({
    apiVersion: 'noma.dev/v1alpha1',
    kind: 'NodeMaintenance',
    metadata: { name: 'm', namespace: 'ops', generation: 1, resourceVersion },
    spec: { operationName: 'op', linearTicket: 'ENG-1', nodeSelector: 'a=b', actions: [] },
  });
  const initial: NodeMaintenanceStatus = {
    nodes: [node(1, { phase: 'Pending' }), node(2, { phase: 'Pending' })],
  };

  const leader = (
    server: ReturnType<typeof fencedServer>,
    name: string,
    epoch: number,
    seenVersion: string,
  ) => {
    const lost = new AbortController();
    const deposed: string[] = [];
    const store = createStatusStore({
      initial: structuredClone(server.status),
      cr: () => fencedCr(seenVersion),
      write: server.writer(name),
      read: server.read,
      fence: { epoch, signal: lost.signal },
      onDeposed: (why) => deposed.push(why),
      log: createLogger('test', 'silent'),
      now: () => new Date('2026-11-21T00:00:00Z'),
      intervalMs: 10,
    });
    return { store, lost, deposed };
  };

  it('writes against the version it read, and re-applies its status after a conflict', async () => {
    const server = fencedServer(initial);
    const a = leader(server, 'a', 3, server.version);
    await a.store.setNode(node(1, { phase: 'Cordoned' }), false);
    expect(server.status.leaderEpoch).toBe(3);
    server.touch(); // a user edits an annotation: the version a holds is old now
    await a.store.setNode(node(1, { phase: 'Draining' }), false);
    expect(server.status.nodes?.[0]?.phase).toBe('Draining');
    expect(server.writes.map((w) => w.by)).toEqual(['a', 'a']);
    expect(a.deposed).toEqual([]);
  });

  it("drops a deposed leader's late write instead of rolling status back", async () => {
    const server = fencedServer(initial);
    const old = leader(server, 'old', 1, server.version);
    await old.store.setNode(node(1, { phase: 'Drained' }), false);
    // A newer leader reads the object and moves node 1 on: the reboot is under way.
    const next = leader(server, 'new', 2, server.version);
    await next.store.setNode(node(1, { phase: 'InAction', currentActionType: 'Reboot' }), false);
    // The old leader wakes up (SIGCONT) and writes what it had: Drained.
    await old.store.setNode(node(1, { phase: 'Drained', message: 'late' }), false);
    expect(server.status.nodes?.[0]?.phase).toBe('InAction');
    expect(server.writes.map((w) => w.by)).toEqual(['old', 'new']);
    expect(old.deposed).toHaveLength(1);
    // …and it writes nothing more, whatever it is asked.
    await old.store.setNode(node(2, { phase: 'Cordoned' }), false);
    expect(server.writes.map((w) => w.by)).toEqual(['old', 'new']);
  });

  it('refused for leaderEpoch without a re-read: deposed too', async () => {
    const server = fencedServer({ ...initial, leaderEpoch: 7 });
    const lost = new AbortController();
    const deposed: string[] = [];
    const store = createStatusStore({
      initial,
      cr: () => fencedCr(server.version),
      write: server.writer('old'),
      fence: { epoch: 6, signal: lost.signal },
      onDeposed: (why) => deposed.push(why),
      log: createLogger('test', 'silent'),
      now: () => new Date('2026-11-21T00:00:00Z'),
      intervalMs: 10,
    });
    await store.setNode(node(1, { phase: 'Cordoned' }), false);
    expect(server.writes).toHaveLength(0);
    expect(deposed[0]).toMatch(/leaderEpoch/);
    expect(store.refused).toBe(0); // not a refusal of content: no trimming, no condition
  });

  it('stops retrying the moment leadership is lost, and flush does not wait', async () => {
    vi.useFakeTimers();
    try {
      const w = scriptedWriter(Array.from({ length: 1000 }, () => apiError(503, 'x', 'busy')));
      const lost = new AbortController();
      const store = createStatusStore({
        initial,
        cr: () => fencedCr('1'),
        write: w.write,
        fence: { epoch: 1, signal: lost.signal },
        log: createLogger('test', 'silent'),
        now: () => new Date('2026-11-21T00:00:00Z'),
        intervalMs: 10,
      });
      let done = false;
      void store.setNode(node(1, { phase: 'Cordoned' }), false).then(() => {
        done = true;
      });
      await vi.advanceTimersByTimeAsync(3_000);
      expect(done).toBe(false);
      const before = w.patches.length;
      lost.abort();
      await vi.advanceTimersByTimeAsync(0);
      expect(done).toBe(true);
      await vi.advanceTimersByTimeAsync(60_000);
      expect(w.patches.length).toBe(before);
      await store.flush(); // resolves at once: nothing is written by a deposed leader
      expect(w.patches.length).toBe(before);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('fenceEpoch', () => {
  it.each([
    [5, [], 5],
    [5, [{}, { status: {} }, { status: { leaderEpoch: 4 } }], 5],
    [5, [{ status: { leaderEpoch: 5 } }], 5], // the same leader, restarted
    [0, [{ status: { leaderEpoch: 7 } }, { status: { leaderEpoch: 3 } }], 8], // Lease recreated
    [2, [{ status: { leaderEpoch: 'x' } }], 2],
  ])('lease epoch %i with statuses %j → %i', (lease, objects, expected) => {
    expect(fenceEpoch(lease, objects)).toBe(expected);
  });
});
