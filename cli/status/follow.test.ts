import { describe, expect, it } from 'vitest';
import {
  applyEvent,
  diff,
  follow,
  WatchError,
  worthRetrying,
  type Change,
  type WatchSource,
} from './follow.js';

const obj = (name: string, rv: string, namespace = 'ops') => ({
  metadata: { namespace, name, resourceVersion: rv },
});
const map = (...objs: ReturnType<typeof obj>[]) =>
  new Map<string, unknown>(objs.map((o) => [`${o.metadata.namespace}/${o.metadata.name}`, o]));
const apiError = (code: number) => Object.assign(new Error(`HTTP ${code}`), { code });

describe('diff', () => {
  it.each([
    ['nothing to something', map(), map(obj('a', '1')), [['ADDED', 'ops/a']]],
    ['a new resourceVersion', map(obj('a', '1')), map(obj('a', '2')), [['MODIFIED', 'ops/a']]],
    ['the same resourceVersion', map(obj('a', '1')), map(obj('a', '1')), []],
    ['one gone', map(obj('a', '1'), obj('b', '1')), map(obj('b', '1')), [['DELETED', 'ops/a']]],
    [
      'in key order',
      map(obj('c', '1'), obj('b', '1')),
      map(obj('a', '1'), obj('b', '2')),
      [
        ['ADDED', 'ops/a'],
        ['MODIFIED', 'ops/b'],
        ['DELETED', 'ops/c'],
      ],
    ],
  ])('%s', (_, before, after, want) => {
    expect(diff(before, after).map((c) => [c.type, c.key])).toEqual(want);
  });
});

describe('applyEvent', () => {
  const before = map(obj('a', '1'));
  it.each([
    ['ADDED', obj('b', '2'), ['ops/a', 'ops/b'], '2'],
    ['MODIFIED', obj('a', '3'), ['ops/a'], '3'],
    ['DELETED', obj('a', '4'), [], '4'],
    ['BOOKMARK', { metadata: { resourceVersion: '5' } }, ['ops/a'], '5'],
  ])('%s', (type, object, keys, rv) => {
    const r = applyEvent(before, type, object);
    expect([...r.objects.keys()]).toEqual(keys);
    expect(r.resourceVersion).toBe(rv);
    expect([...before.keys()]).toEqual(['ops/a']); // not changed in place
  });

  it('throws the Status of an ERROR event; 410 Gone is worth a new list', () => {
    const gone = { kind: 'Status', code: 410, message: 'too old resource version: 1 (7)' };
    expect(() => applyEvent(before, 'ERROR', gone)).toThrow(/410 too old resource version/);
    try {
      applyEvent(before, 'ERROR', gone);
    } catch (err) {
      expect(err).toBeInstanceOf(WatchError);
      expect(worthRetrying(err)).toBe(true);
    }
  });

  it('refuses an event type it does not know', () => {
    expect(() => applyEvent(before, 'SURPRISE', {})).toThrow(/unknown event type/);
  });
});

describe('worthRetrying', () => {
  it.each([
    [apiError(503), true],
    [apiError(429), true],
    [new WatchError(410, 'gone'), true],
    [Object.assign(new Error('fetch failed'), { cause: { code: 'ECONNREFUSED' } }), true],
    [apiError(403), false],
    [apiError(404), false],
    [new WatchError(500, 'server'), true],
  ])('%s → %s', (err, want) => {
    expect(worthRetrying(err)).toBe(want);
  });
});

/**
 * A scripted API server: each list answers the next entry of `lists` (an error is thrown), and
 * each watch plays the next entry of `watches`: events, then an end (or a failure). After the
 * script, watches wait for the abort.
 */
function scripted(
  lists: ({ items: unknown[]; resourceVersion: string } | Error)[],
  watches: { events: [string, unknown][]; fail?: Error }[],
) {
  const calls: string[] = [];
  const source: WatchSource = {
    list() {
      calls.push('list');
      const next = lists.shift();
      if (next === undefined) return new Promise(() => undefined);
      return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
    },
    async watch(rv, onEvent, signal) {
      calls.push(`watch ${rv}`);
      const next = watches.shift();
      if (next === undefined) {
        await new Promise<void>((resolve) => {
          signal.addEventListener('abort', () => {
            resolve();
          });
        });
        return;
      }
      for (const [type, o] of next.events) {
        if (signal.aborted) return;
        await Promise.resolve();
        onEvent(type, o);
      }
      if (next.fail !== undefined) throw next.fail;
    },
  };
  return { source, calls };
}

function record() {
  const changes: string[][] = [];
  const troubles: string[] = [];
  const hooks = {
    onChange: (_: ReadonlyMap<string, unknown>, c: readonly Change[]) =>
      changes.push(c.map((x) => `${x.type} ${x.key}`)),
    onTrouble: (err: unknown) => troubles.push((err as Error).message),
  };
  return { changes, troubles, hooks };
}

const fast = { baseMs: 1, maxMs: 2 };

/** Aborts once `until` holds (polled), so a test ends when the script has played out. */
function abortWhen(until: () => boolean): AbortSignal {
  const ac = new AbortController();
  const poll = setInterval(() => {
    if (until()) {
      clearInterval(poll);
      ac.abort();
    }
  }, 2);
  return ac.signal;
}

describe('follow', () => {
  it('lists, then follows the watch from the list’s resourceVersion', async () => {
    const { source, calls } = scripted(
      [{ items: [obj('a', '1')], resourceVersion: '10' }],
      [
        {
          events: [
            ['ADDED', obj('b', '11')],
            ['MODIFIED', obj('a', '12')],
            ['BOOKMARK', { metadata: { resourceVersion: '13' } }],
            ['DELETED', obj('b', '14')],
          ],
        },
      ],
    );
    const r = record();
    const signal = abortWhen(() => calls.length === 3);
    expect(await follow(source, r.hooks, signal, false, fast)).toBe('interrupted');
    expect(r.changes).toEqual([
      ['ADDED ops/a'],
      ['ADDED ops/b'],
      ['MODIFIED ops/a'],
      ['DELETED ops/b'],
    ]);
    // The server ended the watch: the next one resumes from the last event, without a list.
    expect(calls).toEqual(['list', 'watch 10', 'watch 14']);
    expect(r.troubles).toEqual([]);
  });

  it('lists again after a failed watch and shows only what changed meanwhile', async () => {
    const { source, calls } = scripted(
      [
        { items: [obj('a', '1'), obj('b', '1')], resourceVersion: '10' },
        apiError(503),
        { items: [obj('a', '5'), obj('c', '6')], resourceVersion: '20' },
      ],
      [
        {
          events: [['MODIFIED', obj('a', '2')]],
          fail: new Error('fetch failed', { cause: { code: 'ECONNRESET' } }),
        },
      ],
    );
    const r = record();
    const signal = abortWhen(() => calls.length === 5);
    expect(await follow(source, r.hooks, signal, false, fast)).toBe('interrupted');
    expect(calls).toEqual(['list', 'watch 10', 'list', 'list', 'watch 20']);
    expect(r.troubles).toEqual(['fetch failed', 'HTTP 503']);
    expect(r.changes).toEqual([
      ['ADDED ops/a', 'ADDED ops/b'],
      ['MODIFIED ops/a'],
      ['MODIFIED ops/a', 'DELETED ops/b', 'ADDED ops/c'],
    ]);
  });

  it('lists again on 410 Gone', async () => {
    const { source, calls } = scripted(
      [
        { items: [obj('a', '1')], resourceVersion: '10' },
        { items: [obj('a', '30')], resourceVersion: '31' },
      ],
      [{ events: [['ERROR', { kind: 'Status', code: 410, message: 'too old' }]] }],
    );
    const r = record();
    const signal = abortWhen(() => calls.length === 4);
    expect(await follow(source, r.hooks, signal, false, fast)).toBe('interrupted');
    expect(calls).toEqual(['list', 'watch 10', 'list', 'watch 31']);
    expect(r.troubles).toEqual(['watch: 410 too old']);
  });

  it('throws what no retry mends (403), after no trouble', async () => {
    const { source } = scripted([apiError(403)], []);
    const r = record();
    await expect(
      follow(source, r.hooks, new AbortController().signal, false, fast),
    ).rejects.toThrow('HTTP 403');
    expect(r.troubles).toEqual([]);
  });

  it('named: a 404 before it was ever seen is an error', async () => {
    const { source } = scripted([apiError(404)], []);
    const r = record();
    await expect(follow(source, r.hooks, new AbortController().signal, true, fast)).rejects.toThrow(
      'HTTP 404',
    );
  });

  it('named: ends when the watch says it was deleted', async () => {
    const { source } = scripted(
      [{ items: [obj('a', '1')], resourceVersion: '1' }],
      [{ events: [['DELETED', obj('a', '2')]] }],
    );
    const r = record();
    expect(await follow(source, r.hooks, new AbortController().signal, true, fast)).toBe('deleted');
    expect(r.changes).toEqual([['ADDED ops/a'], ['DELETED ops/a']]);
  });

  it('named: deleted while the watch was down (the new list answers 404)', async () => {
    const { source } = scripted(
      [{ items: [obj('a', '1')], resourceVersion: '1' }, apiError(404)],
      [{ events: [], fail: new WatchError(503, 'unavailable') }],
    );
    const r = record();
    expect(await follow(source, r.hooks, new AbortController().signal, true, fast)).toBe('deleted');
    expect(r.changes).toEqual([['ADDED ops/a'], ['DELETED ops/a']]);
  });

  it('stops on interrupt while a list hangs and while waiting to retry', async () => {
    const hanging = scripted([], []);
    const ac = new AbortController();
    setTimeout(() => {
      ac.abort();
    }, 20);
    expect(await follow(hanging.source, record().hooks, ac.signal, false, fast)).toBe(
      'interrupted',
    );
    const down = scripted([apiError(503)], []);
    const ac2 = new AbortController();
    const r = record();
    const slow = { baseMs: 60_000, maxMs: 60_000 };
    setTimeout(() => {
      ac2.abort();
    }, 20);
    expect(await follow(down.source, r.hooks, ac2.signal, false, slow)).toBe('interrupted');
    expect(r.troubles).toEqual(['HTTP 503']);
  });
});
