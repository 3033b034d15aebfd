// LeaderElector against a fake Lease (an in-memory record with resourceVersion checks, whose
// calls can be made to hang or fail) and a fake monotonic clock: the timing rules of the
// election, each of which the old elector broke. The real Lease port is checked against a
// black-holed socket here and against the API server in test/integration/leader.test.ts.
import { createServer, type Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../shared/log.js';
import {
  judge,
  kubeLeasePort,
  LeaderElector,
  type Clock,
  type LeasePort,
  type LeaseRecord,
} from './leader.js';

const LEASE_MS = 15_000;
const DEADLINE_MS = 10_000;
const RETRY_MS = 2_000;
const HOUR = 3_600_000;

/** Monotonic time that moves only when the test says; wall time can be skewed at will. */
class FakeClock implements Clock {
  t = 0;
  wallOffsetMs = 0;
  #timers: { at: number; seq: number; fn: () => void }[] = [];
  #seq = 0;

  now = (): number => this.t;
  wall = (): Date => new Date(Date.UTC(2030, 0, 1) + this.t + this.wallOffsetMs);
  setTimer = (fn: () => void, ms: number): (() => void) => {
    const timer = { at: this.t + Math.max(0, ms), seq: this.#seq++, fn };
    this.#timers.push(timer);
    return () => {
      this.#timers = this.#timers.filter((x) => x !== timer);
    };
  };

  /** Moves time forward, firing due timers in order and letting promises settle after each. */
  async advance(ms: number, each?: () => void): Promise<void> {
    const target = this.t + ms;
    for (;;) {
      await settle();
      const next = this.#timers
        .filter((x) => x.at <= target)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (next === undefined) break;
      this.#timers = this.#timers.filter((x) => x !== next);
      this.t = next.at;
      next.fn();
      each?.();
    }
    this.t = target;
    await settle();
  }
}

const settle = () => new Promise<void>((r) => setImmediate(r));

const apiError = (code: number) => Object.assign(new Error(`HTTP ${code}`), { code });

/** One Lease in memory, shared by the electors of a test as the API server would be. */
class FakeLease {
  record: LeaseRecord | undefined;
  #rv = 0;
  /** While true, every call hangs until its signal aborts. */
  hang = false;
  /** Calls that hung, and whether their signal aborted them. */
  hung: { call: string; aborted: boolean }[] = [];
  /** When set, every call fails with it. */
  failWith: Error | undefined;
  /** Runs just before a replace is applied (another process writing in between). */
  beforeReplace: (() => void) | undefined;
  calls: string[] = [];

  /** A write by some other process, straight to the "API server". */
  write(fields: Partial<LeaseRecord>): LeaseRecord {
    const record: LeaseRecord = {
      holderIdentity: '',
      leaseDurationSeconds: LEASE_MS / 1000,
      leaseTransitions: 0,
      acquireTime: undefined,
      renewTime: undefined,
      ...this.record,
      ...fields,
      resourceVersion: String(++this.#rv),
    };
    this.record = record;
    return record;
  }

  port(): LeasePort {
    return {
      read: (signal) => this.#call('read', signal, () => this.record),
      create: (record, signal) =>
        this.#call('create', signal, () => {
          if (this.record !== undefined) throw apiError(409);
          return this.write(record);
        }),
      replace: (record, signal) =>
        this.#call('replace', signal, () => {
          this.beforeReplace?.();
          if (this.record?.resourceVersion !== record.resourceVersion) throw apiError(409);
          return this.write(record);
        }),
    };
  }

  async #call<T>(call: string, signal: AbortSignal, apply: () => T): Promise<T> {
    this.calls.push(call);
    await Promise.resolve();
    if (this.hang) {
      const entry = { call, aborted: false };
      this.hung.push(entry);
      // A black hole: nothing comes back unless the caller aborts.
      await new Promise<never>((_, reject) => {
        signal.addEventListener('abort', () => {
          entry.aborted = true;
          reject(signal.reason as Error);
        });
      });
    }
    signal.throwIfAborted();
    if (this.failWith !== undefined) throw this.failWith;
    return apply();
  }
}

interface Candidate {
  readonly elector: LeaderElector;
  /** When onLost was called (fake clock), if it was; how often. */
  lostAt: number | undefined;
  lostCalls: number;
  /** Set when run() settles. */
  ledAt: number | undefined;
  runError: unknown;
}

const electors: LeaderElector[] = [];
afterEach(async () => {
  for (const e of electors.splice(0)) await e.release();
});

function candidate(identity: string, lease: FakeLease, clock: FakeClock): Candidate {
  const elector = new LeaderElector({
    log: createLogger('test', 'silent'),
    namespace: 'noma-system',
    name: 'noma-coordinator',
    identity,
    leaseDurationMs: LEASE_MS,
    renewDeadlineMs: DEADLINE_MS,
    retryPeriodMs: RETRY_MS,
    lease: lease.port(),
    clock,
  });
  electors.push(elector);
  const c: Candidate = {
    elector,
    lostAt: undefined,
    lostCalls: 0,
    ledAt: undefined,
    runError: undefined,
  };
  elector
    .run(() => {
      c.lostCalls++;
      c.lostAt = clock.now();
    })
    .then(
      () => (c.ledAt = clock.now()),
      (err: unknown) => (c.runError = err),
    );
  return c;
}

/** Someone else holds the Lease and keeps renewing it every retry period (its own clock). */
function otherHolderRenewing(lease: FakeLease, clock: FakeClock, skewMs = 0): () => void {
  const renew = () => {
    lease.write({ holderIdentity: 'b', renewTime: new Date(clock.wall().getTime() + skewMs) });
  };
  renew();
  let cancel = clock.setTimer(function again() {
    renew();
    cancel = clock.setTimer(again, RETRY_MS);
  }, RETRY_MS);
  return () => {
    cancel();
  };
}

describe('judge', () => {
  const base = { identity: 'a', unchangedForMs: 0, leaseDurationMs: LEASE_MS };
  it.each([
    { holder: 'a', leading: true, unchangedForMs: 0, want: 'renew' },
    { holder: 'b', leading: true, unchangedForMs: 0, want: 'lost' },
    { holder: '', leading: true, unchangedForMs: 0, want: 'lost' },
    { holder: '', leading: false, unchangedForMs: 0, want: 'take' },
    { holder: 'a', leading: false, unchangedForMs: 0, want: 'take' },
    { holder: 'b', leading: false, unchangedForMs: 0, want: 'wait' },
    { holder: 'b', leading: false, unchangedForMs: LEASE_MS - 1, want: 'wait' },
    { holder: 'b', leading: false, unchangedForMs: LEASE_MS, want: 'take' },
  ])('holder $holder, leading $leading, unchanged $unchangedForMs ms: $want', (row) => {
    expect(judge({ ...base, ...row })).toBe(row.want);
  });
});

describe('LeaderElector', () => {
  it('creates a missing Lease and leads at epoch 0', async () => {
    const clock = new FakeClock();
    const lease = new FakeLease();
    const a = candidate('a', lease, clock);
    await clock.advance(0);
    expect(a.ledAt).toBe(0);
    expect(a.elector.isLeader).toBe(true);
    expect(a.elector.epoch).toBe(0);
    expect(a.elector.signal.aborted).toBe(false);
    expect(lease.record).toMatchObject({ holderIdentity: 'a', leaseTransitions: 0 });
    // It renews every retry period and keeps leading.
    await clock.advance(60_000);
    expect(a.elector.isLeader).toBe(true);
    expect(lease.calls.filter((c) => c === 'replace').length).toBeGreaterThanOrEqual(25);
  });

  it('aborts a hung renewal and loses leadership within renewDeadline + one retry period', async () => {
    const clock = new FakeClock();
    const lease = new FakeLease();
    const a = candidate('a', lease, clock);
    await clock.advance(0); // led at 0: the last successful renewal started at 0
    lease.hang = true;
    await clock.advance(DEADLINE_MS + RETRY_MS + 1);
    // Within renewDeadline + retryPeriod is what client-go promises; the deadline's own timer
    // makes it the deadline itself (a standby may take over leaseDuration after it).
    expect(a.lostAt).toBe(DEADLINE_MS);
    expect(a.lostCalls).toBe(1);
    expect(a.elector.isLeader).toBe(false);
    expect(a.elector.signal.aborted).toBe(true);
    // The hung request was aborted, not waited for.
    expect(lease.hung.length).toBeGreaterThan(0);
    expect(lease.hung.every((h) => h.aborted)).toBe(true);
  });

  it('loses leadership at the renew deadline when renewals keep failing, not before', async () => {
    const clock = new FakeClock();
    const lease = new FakeLease();
    const a = candidate('a', lease, clock);
    await clock.advance(0);
    lease.failWith = apiError(503);
    await clock.advance(DEADLINE_MS - 1);
    expect(a.elector.isLeader).toBe(true);
    await clock.advance(1);
    expect(a.lostAt).toBe(DEADLINE_MS);
    expect(a.elector.isLeader).toBe(false);
  });

  it('stays leader through failures shorter than the renew deadline', async () => {
    const clock = new FakeClock();
    const lease = new FakeLease();
    const a = candidate('a', lease, clock);
    await clock.advance(0);
    lease.failWith = apiError(500);
    await clock.advance(DEADLINE_MS - RETRY_MS - 1);
    lease.failWith = undefined;
    // Each success moves the deadline: 3 deadlines later it still leads.
    await clock.advance(3 * DEADLINE_MS);
    expect(a.lostCalls).toBe(0);
    expect(a.elector.isLeader).toBe(true);
  });

  it('ends leadership the moment it sees another holder, without writing over it', async () => {
    const clock = new FakeClock();
    const lease = new FakeLease();
    const a = candidate('a', lease, clock);
    await clock.advance(0);
    const order: string[] = [];
    a.elector.signal.addEventListener('abort', () => {
      order.push(`abort isLeader=${String(a.elector.isLeader)} lostCalls=${a.lostCalls}`);
      queueMicrotask(() => order.push(`microtask lostCalls=${a.lostCalls}`));
    });
    lease.write({ holderIdentity: 'b', leaseTransitions: 1 });
    await clock.advance(RETRY_MS);
    expect(a.lostAt).toBe(RETRY_MS); // the first read after the change, far before the deadline
    expect(a.lostCalls).toBe(1);
    expect(lease.record?.holderIdentity).toBe('b');
    // onLost runs synchronously with the abort: before any promise callback can act.
    expect(order).toEqual(['abort isLeader=false lostCalls=0', 'microtask lostCalls=1']);
    await clock.advance(DEADLINE_MS * 2);
    expect(a.lostCalls).toBe(1);
  });

  it('ends leadership when isLeader is read past the deadline, before the timer fires', async () => {
    const clock = new FakeClock();
    const lease = new FakeLease();
    const a = candidate('a', lease, clock);
    await clock.advance(0);
    // A paused process (SIGSTOP): its clock moved, no timer has run yet.
    clock.t += DEADLINE_MS;
    expect(a.elector.isLeader).toBe(false);
    expect(a.elector.signal.aborted).toBe(true);
    expect(a.lostCalls).toBe(1);
  });

  it('takes a held Lease only after a whole lease duration of no change', async () => {
    const clock = new FakeClock();
    const lease = new FakeLease();
    const stopB = otherHolderRenewing(lease, clock);
    const a = candidate('a', lease, clock);
    // b keeps renewing for 4 lease durations: a never leads.
    await clock.advance(4 * LEASE_MS);
    expect(a.ledAt).toBeUndefined();
    stopB(); // b's last write was at 4 * LEASE_MS; a sees it at once (it reads every RETRY_MS)
    const lastChange = 4 * LEASE_MS;
    await clock.advance(LEASE_MS - 1);
    expect(a.ledAt).toBeUndefined();
    await clock.advance(RETRY_MS + 1);
    expect(a.ledAt).toBeGreaterThanOrEqual(lastChange + LEASE_MS);
    expect(a.ledAt).toBeLessThanOrEqual(lastChange + LEASE_MS + RETRY_MS);
  });

  it('makes a fresh process wait a whole lease duration for a Lease it has just read', async () => {
    const clock = new FakeClock();
    const lease = new FakeLease();
    lease.write({ holderIdentity: 'b', renewTime: new Date(0) }); // renewed "in 1970"
    clock.t = 1_000_000;
    const a = candidate('a', lease, clock);
    await clock.advance(LEASE_MS - 1);
    expect(a.ledAt).toBeUndefined();
    await clock.advance(RETRY_MS);
    expect(a.ledAt).toBeDefined();
  });

  it.each([
    { skew: 'an hour behind', skewMs: -HOUR },
    { skew: 'an hour ahead', skewMs: HOUR },
    { skew: 'a year behind', skewMs: -365 * 24 * HOUR },
  ])("judges expiry by local observation when the holder's clock is $skew", async ({ skewMs }) => {
    const clock = new FakeClock();
    const lease = new FakeLease();
    const stopB = otherHolderRenewing(lease, clock, skewMs);
    const a = candidate('a', lease, clock);
    // A live holder is not deposed, however old its renewTime looks.
    await clock.advance(3 * LEASE_MS);
    expect(a.ledAt).toBeUndefined();
    // A dead holder's Lease is taken after one lease duration, however new it looks.
    stopB();
    await clock.advance(LEASE_MS + RETRY_MS);
    expect(a.ledAt).toBeDefined();
    expect(a.elector.epoch).toBe(1);
  });

  it('does not depose itself when its own wall clock is skewed', async () => {
    const clock = new FakeClock();
    clock.wallOffsetMs = -HOUR;
    const lease = new FakeLease();
    const a = candidate('a', lease, clock);
    await clock.advance(0);
    clock.wallOffsetMs = HOUR; // NTP steps the wall clock forward by two hours
    await clock.advance(3 * LEASE_MS);
    expect(a.elector.isLeader).toBe(true);
  });

  it('is not leader when its takeover replace conflicts (409), and waits again', async () => {
    const clock = new FakeClock();
    const lease = new FakeLease();
    lease.write({ holderIdentity: '', leaseTransitions: 3 }); // released: free to take
    // Between a's read and its replace, c takes the Lease.
    lease.beforeReplace = () => {
      lease.beforeReplace = undefined;
      lease.write({ holderIdentity: 'c', leaseTransitions: 4 });
    };
    const a = candidate('a', lease, clock);
    await clock.advance(0);
    expect(lease.calls).toEqual(['read', 'replace']);
    expect(a.ledAt).toBeUndefined();
    expect(a.elector.isLeader).toBe(false);
    expect(lease.record?.holderIdentity).toBe('c');
    // c now holds it, and a sees that at its next read: a whole lease duration from then.
    await clock.advance(RETRY_MS + LEASE_MS - 1);
    expect(a.ledAt).toBeUndefined();
    await clock.advance(RETRY_MS + 1);
    expect(a.ledAt).toBeDefined();
    expect(a.elector.epoch).toBe(5);
  });

  it('increments the epoch at each takeover and keeps it while renewing', async () => {
    const clock = new FakeClock();
    const lease = new FakeLease();
    lease.write({ holderIdentity: 'b', leaseTransitions: 4, acquireTime: new Date(0) });
    const a = candidate('a', lease, clock);
    await clock.advance(LEASE_MS + RETRY_MS);
    expect(a.elector.epoch).toBe(5);
    expect(lease.record).toMatchObject({ holderIdentity: 'a', leaseTransitions: 5 });
    const acquired = lease.record?.acquireTime;
    expect(acquired?.getTime()).not.toBe(0);
    await clock.advance(5 * RETRY_MS);
    expect(a.elector.epoch).toBe(5);
    expect(lease.record).toMatchObject({ leaseTransitions: 5, acquireTime: acquired });
  });

  it('takes its own identity at once after a restart, as a new epoch', async () => {
    const clock = new FakeClock();
    const lease = new FakeLease();
    lease.write({ holderIdentity: 'a', leaseTransitions: 2 }); // the previous run of this pod
    const a = candidate('a', lease, clock);
    await clock.advance(0);
    expect(a.ledAt).toBe(0);
    expect(a.elector.epoch).toBe(3);
  });

  it('aborts a hung acquire attempt and keeps trying', async () => {
    const clock = new FakeClock();
    const lease = new FakeLease();
    lease.hang = true;
    const a = candidate('a', lease, clock);
    await clock.advance(DEADLINE_MS);
    expect(lease.hung).toEqual([{ call: 'read', aborted: true }]);
    lease.hang = false;
    await clock.advance(RETRY_MS);
    expect(a.ledAt).toBeDefined();
  });

  it('hands over on release: the standby takes over at once, at the next epoch', async () => {
    const clock = new FakeClock();
    const lease = new FakeLease();
    const a = candidate('a', lease, clock);
    await clock.advance(0);
    const b = candidate('b', lease, clock);
    await clock.advance(5 * RETRY_MS);
    expect(b.ledAt).toBeUndefined();
    await a.elector.release();
    expect(lease.record?.holderIdentity).toBe('');
    expect(a.elector.isLeader).toBe(false);
    expect(a.elector.signal.aborted).toBe(true);
    expect(a.lostCalls).toBe(0); // a release is no loss
    const released = clock.now();
    await clock.advance(RETRY_MS);
    expect(b.ledAt).toBeLessThanOrEqual(released + RETRY_MS);
    expect(b.elector.epoch).toBe(1);
    // a stopped: it never writes again.
    const writes = lease.calls.length;
    await clock.advance(3 * RETRY_MS);
    expect(lease.record?.holderIdentity).toBe('b');
    expect(lease.calls.length).toBeGreaterThan(writes); // b renews
  });

  it('does not clear the Lease on release when another holder has it', async () => {
    const clock = new FakeClock();
    const lease = new FakeLease();
    const a = candidate('a', lease, clock);
    await clock.advance(0);
    lease.write({ holderIdentity: 'b', leaseTransitions: 1 });
    await a.elector.release();
    expect(lease.record?.holderIdentity).toBe('b');
  });

  it('rejects run() when released before it leads', async () => {
    const clock = new FakeClock();
    const lease = new FakeLease();
    lease.write({ holderIdentity: 'b' });
    const a = candidate('a', lease, clock);
    await clock.advance(RETRY_MS);
    await a.elector.release();
    await clock.advance(0);
    expect(a.runError).toBeInstanceOf(Error);
    expect(lease.record?.holderIdentity).toBe('b');
  });

  it('refuses timings that break the safety argument', () => {
    const make = (lease: number, deadline: number, retry: number) =>
      new LeaderElector({
        log: createLogger('test', 'silent'),
        namespace: 'n',
        name: 'l',
        identity: 'a',
        leaseDurationMs: lease,
        renewDeadlineMs: deadline,
        retryPeriodMs: retry,
        lease: new FakeLease().port(),
      });
    expect(() => make(10_000, 10_000, 2_000)).toThrow(/renewDeadline < leaseDuration/);
    expect(() => make(15_000, 2_000, 2_000)).toThrow(/retryPeriod < renewDeadline/);
  });
});

describe('kubeLeasePort', () => {
  it('aborts a request to a black-holed API server, closing its socket', async () => {
    const sockets: Socket[] = [];
    const closed: boolean[] = [];
    const server = createServer((s) => {
      const i = sockets.push(s) - 1;
      closed[i] = false;
      s.on('close', () => (closed[i] = true));
      s.on('error', () => undefined);
      s.resume(); // reads the request (so that the client's FIN is seen) and never answers
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as { port: number };
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
        users: [{ name: 'u', token: 't' }],
        contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
        currentContext: 'x',
      });
      const ctl = new AbortController();
      const started = performance.now();
      const read = kubeLeasePort(kc, 'ns', 'l').read(ctl.signal);
      setTimeout(() => {
        ctl.abort(new Error('deadline'));
      }, 200);
      await expect(read).rejects.toMatchObject({ name: 'AbortError' });
      expect(performance.now() - started).toBeLessThan(2_000);
      // A real abort, not a race: the connection is gone.
      for (let i = 0; i < 50 && closed[0] !== true; i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(sockets.length).toBe(1);
      expect(closed).toEqual([true]);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});
