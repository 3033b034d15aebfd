import type { V1ContainerState, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { Action } from '../../shared/api/index.js';
import { STATUS_TAIL_BYTES } from '../../shared/protocol.js';
import {
  escapeKubeExpansion,
  execCommand,
  isReleased,
  podActionTimeoutMs,
  podManifest,
  podName,
  podOutcome,
  podView,
  releaseCommand,
  RELEASE_ANNOTATION,
  runsAsPod,
  type PodJobInput,
} from './pod-job.js';

const maintenance = { namespace: 'ops', name: 'driver-upgrade', uid: 'uid-1' };
const input = (action: Action, over: Partial<PodJobInput> = {}): PodJobInput => ({
  name: 'noma-gpu-01-0-abc',
  namespace: 'noma-system',
  node: 'gpu-01',
  index: 0,
  actionId: 'uid-1/gpu-01/0/1',
  action,
  maintenance,
  timeoutMs: 600_000,
  ...over,
});
const manifest = (action: Action): V1Pod => {
  const m = podManifest(input(action));
  if (!m.ok) throw new Error(m.why);
  return m.pod;
};

/** The kubelet's expansion of command/args: `$$` → `$`, `$(NAME)` → its value when defined. */
function kubeletExpand(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([^)]*)\)/g, (m: string, name: string | undefined) =>
    m === '$$' ? '$' : name !== undefined && name in env ? (env[name] ?? '') : m,
  );
}

describe('runsAsPod', () => {
  it('takes Script and Run with an image, and InteractiveShell; leaves the rest to the agent', () => {
    expect(runsAsPod({ type: 'Script', script: { script: 'x', image: 'i' } })).toBe(true);
    expect(runsAsPod({ type: 'Script', script: { script: 'x' } })).toBe(false);
    expect(runsAsPod({ type: 'Run', run: { command: ['x'], image: 'i' } })).toBe(true);
    expect(runsAsPod({ type: 'Run', run: { command: ['x'] } })).toBe(false);
    expect(runsAsPod({ type: 'InteractiveShell', interactiveShell: { image: 'i' } })).toBe(true);
    expect(runsAsPod({ type: 'Reboot' })).toBe(false);
    expect(runsAsPod({ type: 'Complete' })).toBe(false);
  });
});

describe('podActionTimeoutMs', () => {
  it('is 1h for Script/Run and 24h for a shell unless the action says', () => {
    expect(podActionTimeoutMs({ type: 'Run', run: { command: ['x'], image: 'i' } })).toBe(
      3_600_000,
    );
    expect(podActionTimeoutMs({ type: 'InteractiveShell', interactiveShell: { image: 'i' } })).toBe(
      86_400_000,
    );
    expect(
      podActionTimeoutMs({ type: 'Run', timeout: '90s', run: { command: ['x'], image: 'i' } }),
    ).toBe(90_000);
  });
});

describe('podName', () => {
  it('follows from the action ID: the same ID gives the same pod, another attempt another', () => {
    const a = podName('uid/gpu-01/2/1', 'gpu-01', 2);
    expect(podName('uid/gpu-01/2/1', 'gpu-01', 2)).toBe(a);
    expect(podName('uid/gpu-01/2/2', 'gpu-01', 2)).not.toBe(a);
    expect(podName('other/gpu-01/2/1', 'gpu-01', 2)).not.toBe(a);
    expect(a).toMatch(/^noma-gpu-01-2-[0-9a-f]{10}$/);
  });

  it('is a valid DNS label of at most 63 characters for any node name', () => {
    for (const node of ['a', 'Node.Example.COM', `${'x'.repeat(200)}.dc1`, '-.-', 'gpu-01-']) {
      const name = podName(`uid/${node}/31/1`, node, 31);
      expect(name.length, node).toBeLessThanOrEqual(63);
      expect(name, node).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
  });
});

describe('escapeKubeExpansion', () => {
  it('makes the kubelet hand the text to the program unchanged', () => {
    const env = { NOMA_NODE_NAME: 'gpu-01', HOME: '/root' };
    for (const text of [
      'echo $$ $(date) $(NOMA_NODE_NAME) ${HOME} $HOME',
      '$$$(NOMA_NODE_NAME)$$$',
      'price: $5',
      'no dollars',
    ]) {
      expect(kubeletExpand(escapeKubeExpansion(text), env)).toBe(text);
    }
    // Without it, the kubelet changes the script.
    expect(kubeletExpand('echo $$ $(NOMA_NODE_NAME)', env)).toBe('echo $ gpu-01');
  });
});

describe('podManifest', () => {
  it('pins a Script to the node, privileged in the host namespaces with / at /host', () => {
    const pod = manifest({
      type: 'Script',
      script: { script: 'echo "$1" $$', args: ['a b', '$(X)'], image: 'tools:1' },
    });
    const spec = pod.spec;
    const c = spec?.containers[0];
    expect(spec?.nodeName).toBe('gpu-01');
    expect(spec?.restartPolicy).toBe('Never');
    expect(spec?.hostPID).toBe(true);
    expect(spec?.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(spec?.automountServiceAccountToken).toBe(false);
    // The kubelet's own deadline comes after the coordinator's timeout (600 s here).
    expect(spec?.activeDeadlineSeconds).toBeGreaterThan(600);
    expect(c?.image).toBe('tools:1');
    expect(c?.securityContext?.privileged).toBe(true);
    expect(c?.terminationMessagePolicy).toBe('FallbackToLogsOnError');
    expect(c?.command).toEqual(['bash', '-c', 'echo "$$1" $$$$', 'noma-script', 'a b', '$$(X)']);
    const mount = c?.volumeMounts?.find((m) => m.mountPath === '/host');
    const volume = spec?.volumes?.find((v) => v.name === mount?.name);
    expect(volume?.hostPath?.path).toBe('/');
    expect(pod.metadata?.namespace).toBe('noma-system');
    expect(pod.metadata?.labels).toMatchObject({
      'app.kubernetes.io/name': 'noma',
      'app.kubernetes.io/component': 'action',
      'noma.dev/maintenance-uid': 'uid-1',
      'noma.dev/action-index': '0',
    });
    expect(pod.metadata?.annotations?.['noma.dev/action-id']).toBe('uid-1/gpu-01/0/1');
    expect(pod.metadata?.ownerReferences).toBeUndefined();
    expect(c?.env).toContainEqual({ name: 'NOMA_NODE_NAME', value: 'gpu-01' });
  });

  it('runs a Run as command + args, without a shell', () => {
    const c = manifest({
      type: 'Run',
      run: { command: ['nvidia-smi', '-q'], args: ['-d', 'ECC'], image: 'tools:1' },
    }).spec?.containers[0];
    expect(c?.command).toEqual(['nvidia-smi', '-q']);
    expect(c?.args).toEqual(['-d', 'ECC']);
  });

  it('keeps a shell open for an InteractiveShell, with a TTY when asked', () => {
    const c = manifest({
      type: 'InteractiveShell',
      interactiveShell: { image: 'debug:1', tty: true },
    }).spec?.containers[0];
    expect(c?.name).toBe('shell');
    expect(c?.command).toEqual(['/bin/sh']);
    expect(c?.stdin).toBe(true);
    expect(c?.tty).toBe(true);
    const noTty = manifest({ type: 'InteractiveShell', interactiveShell: { image: 'debug:1' } });
    expect(noTty.spec?.containers[0]?.tty).toBe(false);
  });

  it('refuses actions that do not run as pods', () => {
    expect(podManifest(input({ type: 'Reboot' })).ok).toBe(false);
    expect(podManifest(input({ type: 'Script', script: { script: 'x' } })).ok).toBe(false);
  });
});

describe('commands shown to humans', () => {
  it('exec into the shell container, with -it only for a TTY', () => {
    expect(execCommand('noma-system', 'noma-gpu-01-0-abc', true)).toBe(
      'kubectl -n noma-system exec -it noma-gpu-01-0-abc -c shell -- /bin/sh',
    );
    expect(execCommand('noma-system', 'p', false)).toBe(
      'kubectl -n noma-system exec -i p -c shell -- /bin/sh',
    );
  });

  it('release exactly this node and step, and isReleased agrees', () => {
    const cmd = releaseCommand(maintenance, 'gpu-01', 3);
    expect(cmd).toBe(
      'kubectl -n ops annotate nodemaintenances.noma.dev driver-upgrade noma.dev/release=gpu-01/3 --overwrite',
    );
    const value = /noma\.dev\/release=(\S+)/.exec(cmd)?.[1] ?? '';
    expect(isReleased({ [RELEASE_ANNOTATION]: value }, 'gpu-01', 3)).toBe(true);
    expect(isReleased({ [RELEASE_ANNOTATION]: value }, 'gpu-01', 4)).toBe(false);
    expect(isReleased({ [RELEASE_ANNOTATION]: value }, 'gpu-02', 3)).toBe(false);
  });
});

describe('isReleased', () => {
  const rel = (value: string, node = 'gpu-01', index = 2) =>
    isReleased({ [RELEASE_ANNOTATION]: value }, node, index);

  it('reads node/index, node, */index and * entries, comma or space separated', () => {
    expect(rel('gpu-01/2')).toBe(true);
    expect(rel('gpu-01')).toBe(true);
    expect(rel('*/2')).toBe(true);
    expect(rel('*')).toBe(true);
    expect(rel('gpu-02/2, gpu-01/2')).toBe(true);
    expect(rel('gpu-02 gpu-01')).toBe(true);
  });

  it('does not release other nodes, other steps, or without the annotation', () => {
    expect(rel('gpu-01/1')).toBe(false);
    expect(rel('*/1')).toBe(false);
    expect(rel('gpu-010')).toBe(false);
    expect(rel('')).toBe(false);
    expect(isReleased({}, 'gpu-01', 2)).toBe(false);
    expect(isReleased(undefined, 'gpu-01', 2)).toBe(false);
    expect(isReleased({ 'noma.dev/other': 'gpu-01' }, 'gpu-01', 2)).toBe(false);
  });
});

const pod = (status: NonNullable<V1Pod['status']>): V1Pod => ({ metadata: { name: 'p' }, status });
/** A pod in `phase` whose container `action` is in `state`. */
const podWith = (phase: string, state: V1ContainerState): V1Pod =>
  pod({
    phase,
    containerStatuses: [
      { name: 'action', image: 'i', imageID: '', ready: false, restartCount: 0, state },
    ],
  });

describe('podView', () => {
  it('says what a pending pod waits for, and which waits do not end', () => {
    expect(podView(pod({ phase: 'Pending' }), 'action')).toEqual({
      state: 'pending',
      detail: 'pod p Pending',
      permanent: false,
    });
    const pull = podWith('Pending', {
      waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "i"' },
    });
    expect(podView(pull, 'action')).toEqual({
      state: 'pending',
      detail: 'pod p Pending: ImagePullBackOff: Back-off pulling image "i"',
      permanent: false,
    });
    const invalid = podWith('Pending', { waiting: { reason: 'InvalidImageName' } });
    expect(podView(invalid, 'action')).toMatchObject({ state: 'pending', permanent: true });
  });

  it('reads exit code, reason and termination message of a finished pod', () => {
    expect(podView(pod({ phase: 'Running' }), 'action')).toEqual({ state: 'running' });
    const failed = podWith('Failed', {
      terminated: { exitCode: 3, reason: 'Error', message: 'boom\n' },
    });
    expect(podView(failed, 'action')).toEqual({
      state: 'finished',
      succeeded: false,
      exitCode: 3,
      reason: 'Error',
      terminationMessage: 'boom\n',
    });
    expect(
      podView(pod({ phase: 'Failed', reason: 'Evicted', message: 'low on disk' }), 'action'),
    ).toEqual({
      state: 'finished',
      succeeded: false,
      reason: 'Evicted',
      podMessage: 'low on disk',
    });
  });
});

describe('podOutcome', () => {
  const finished = (over: Partial<Extract<ReturnType<typeof podView>, { state: 'finished' }>>) => ({
    state: 'finished' as const,
    succeeded: true,
    ...over,
  });

  it('takes the tail from the logs when they could be read', () => {
    expect(podOutcome('p', finished({ exitCode: 0 }), { ok: true, text: 'done\n' })).toEqual({
      kind: 'succeeded',
      exitCode: 0,
      outputTail: 'done\n',
    });
    const long = `${'x'.repeat(10_000)}end\n`;
    const out = podOutcome('p', finished({ exitCode: 0 }), { ok: true, text: long });
    expect(out.kind === 'succeeded' && out.outputTail?.length).toBe(STATUS_TAIL_BYTES);
    expect(out.kind === 'succeeded' && out.outputTail?.endsWith('end\n')).toBe(true);
  });

  it('falls back to the termination message, and says so', () => {
    const out = podOutcome(
      'p',
      finished({ succeeded: false, exitCode: 3, reason: 'Error', terminationMessage: 'boom\n' }),
      { ok: false, why: 'no preferred addresses found' },
    );
    expect(out).toEqual({
      kind: 'failed',
      exitCode: 3,
      outputTail: 'boom\n',
      message:
        "Failed: pod p exited with code 3; output tail from the container's termination " +
        'message (pod logs unreadable: no preferred addresses found)',
    });
    const none = podOutcome('p', finished({ exitCode: 0 }), { ok: false, why: 'timeout' });
    expect(none).toEqual({
      kind: 'succeeded',
      exitCode: 0,
      message: 'no output tail (pod logs unreadable: timeout)',
    });
  });

  it('names the kill reason, the pod-level failure and the kubelet deadline', () => {
    const log = { ok: true as const, text: '' };
    expect(
      podOutcome('p', finished({ succeeded: false, exitCode: 137, reason: 'OOMKilled' }), log),
    ).toMatchObject({ kind: 'failed', message: 'Failed: pod p exited with code 137 (OOMKilled)' });
    expect(
      podOutcome(
        'p',
        finished({ succeeded: false, reason: 'Evicted', podMessage: 'low on disk' }),
        log,
      ),
    ).toEqual({ kind: 'failed', message: 'Failed: pod p failed: Evicted: low on disk' });
    expect(
      podOutcome('p', finished({ succeeded: false, reason: 'DeadlineExceeded' }), log),
    ).toMatchObject({ kind: 'failed', message: expect.stringMatching(/^TimedOut: /) as string });
  });
});
