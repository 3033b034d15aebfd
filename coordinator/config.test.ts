import { describe, expect, it } from 'vitest';
import { ConfigError, HELP, parseConfig } from './config.js';

describe('coordinator config', () => {
  it('has documented defaults, taking the namespace and identity from the downward API', () => {
    const c = parseConfig([], { POD_NAMESPACE: 'noma-system', POD_NAME: 'coord-0' });
    expect(c).toMatchObject({
      namespace: 'noma-system',
      identity: 'coord-0',
      httpPort: 8080,
      agentPort: 8443,
      maxNodesInMaintenance: 10,
      maxSelectedNodes: 50,
      leaseName: 'noma-coordinator',
      leaseDurationMs: 15_000,
      statusIntervalMs: 1_000,
      watchNamespaces: undefined,
    });
  });

  it('reads flags over the environment', () => {
    const c = parseConfig(
      ['--namespace', 'ops', '--max-nodes-in-maintenance', '3', '--lease-duration', '3s'],
      { POD_NAMESPACE: 'noma-system' },
    );
    expect(c).toMatchObject({ namespace: 'ops', maxNodesInMaintenance: 3, leaseDurationMs: 3_000 });
  });

  it.each([
    [['--watch-namespaces', 'a, b,a'], {}, ['a', 'b']],
    [['--watch-namespace', 'ops'], {}, ['ops']],
    [[], { NOMA_WATCH_NAMESPACES: 'x,y' }, ['x', 'y']],
    [['--watch-namespaces', 'a'], { NOMA_WATCH_NAMESPACES: 'x,y' }, ['a']],
    [['--watch-namespaces', ''], {}, undefined],
  ])('watches the namespaces of %j (env %j): %j', (argv, env, expected) => {
    const c = parseConfig(argv, env);
    expect(c === 'help' ? c : c.watchNamespaces).toEqual(expected);
  });

  it.each([
    [['--watch-namespaces', 'a,,b'], '--watch-namespaces'],
    [['--watch-namespaces', 'Ops'], '--watch-namespaces'],
    [['--max-nodes-in-maintenance', '0'], '--max-nodes-in-maintenance'],
    [['--http-port', 'eighty'], '--http-port'],
    [['--lease-duration', '15'], '--lease-duration'],
    [['--notify-webhook-url', 'not a url'], '--notify-webhook-url'],
    [['--log-level', 'loud'], '--log-level'],
    [['--agent-tls-cert', 'tls.crt'], '--agent-tls-key'],
    [['--no-such-flag'], 'no-such-flag'],
  ])('rejects %j naming the flag', (argv, flag) => {
    expect(() => parseConfig(argv, {})).toThrow(ConfigError);
    expect(() => parseConfig(argv, {})).toThrow(flag);
  });

  it.each([
    [[], {}, 'hardware.tier'],
    [['--tier-label', 'example.com/tier'], {}, 'example.com/tier'],
    [[], { NOMA_TIER_LABEL: '' }, ''],
  ])('takes the tier label key of %j (env %j): %j', (argv, env, expected) => {
    const c = parseConfig(argv, env);
    expect(c === 'help' ? c : c.tierLabel).toBe(expected);
  });

  it('rejects a --tier-label that is no label key', () => {
    expect(() => parseConfig(['--tier-label', 'Bad Key'], {})).toThrow('--tier-label');
  });

  it('answers --help, and the help text names every flag it parses', () => {
    expect(parseConfig(['--help'], {})).toBe('help');
    for (const flag of [
      '--kubeconfig',
      '--watch-namespace',
      '--watch-namespaces',
      '--max-selected-nodes',
      '--status-interval',
    ]) {
      expect(HELP).toContain(flag);
    }
  });
});
