import { describe, expect, it } from 'vitest';
import { FLAGS, helpText, parseConfig } from './config.js';

const env = { NODE_NAME: 'gpu-01' };

describe('parseConfig', () => {
  it('documents defaults that parse', () => {
    const result = parseConfig([], env);
    expect(result).toEqual({
      kind: 'config',
      config: {
        nodeName: 'gpu-01',
        kubeconfig: undefined,
        nvidiaSmi: 'nvidia-smi',
        nvidiaSmiTimeoutMs: 10_000,
        rulesFile: undefined,
        healthHost: '0.0.0.0',
        healthPort: 9402,
        stateDir: '/var/lib/noma',
        discoveryIntervalMs: 300_000,
        logLevel: 'info',
        coordinatorUrl: undefined,
        coordinatorCa: undefined,
        tokenFile: '/var/run/secrets/noma.dev/token',
        executor: 'host',
        workDir: '/var/lib/noma/work',
        hostWorkDir: '/var/lib/noma/work',
        bootIdFile: '/proc/sys/kernel/random/boot_id',
        coordinatorUnreachableMs: 120_000,
      },
    });
  });

  it('configures the agent link and refuses a non-TLS coordinator URL or an unknown executor', () => {
    const ok = parseConfig(
      ['--coordinator-url', 'wss://coord:8443', '--executor', 'local', '--state-dir', '/s'],
      env,
    );
    expect(ok.kind === 'config' && ok.config).toMatchObject({
      coordinatorUrl: 'wss://coord:8443',
      executor: 'local',
      workDir: '/s/work',
    });
    const bad = parseConfig(['--coordinator-url', 'ws://coord', '--executor', 'ssh'], env);
    expect(bad.kind).toBe('error');
    expect(bad.kind === 'error' && bad.message).toMatch(/wss:\/\/[\s\S]*local or host/);
  });

  it('takes flags over environment', () => {
    const result = parseConfig(
      [
        '--node-name',
        'gpu-02',
        '--health-port',
        '0',
        '--discovery-interval',
        '30s',
        '--rules',
        'r.yaml',
      ],
      { ...env, NOMA_HEALTH_PORT: '8080', NOMA_NVIDIA_SMI: '/usr/bin/nvidia-smi' },
    );
    expect(result.kind === 'config' && result.config).toMatchObject({
      nodeName: 'gpu-02',
      healthPort: 0,
      discoveryIntervalMs: 30_000,
      rulesFile: 'r.yaml',
      nvidiaSmi: '/usr/bin/nvidia-smi',
    });
  });

  it.each([
    { argv: [], env: {}, error: /--node-name is required/ },
    { argv: ['--node-name', 'Bad_Name'], env: {}, error: /not a valid Node name/ },
    { argv: ['--health-port', '70000'], env, error: /--health-port: "70000"/ },
    { argv: ['--health-port', '-1'], env, error: /--health-port/ },
    { argv: ['--discovery-interval', '5'], env, error: /--discovery-interval: "5"/ },
    { argv: ['--discovery-interval', '10ms'], env, error: /at least 1000 ms/ },
    { argv: ['--nvidia-smi-timeout', 'soon'], env, error: /--nvidia-smi-timeout/ },
    { argv: ['--log-level', 'loud'], env, error: /--log-level: "loud"/ },
    { argv: ['--no-such-flag'], env, error: /Unknown option '--no-such-flag'/ },
    { argv: ['positional'], env, error: /positional/ },
  ])('rejects $argv', ({ argv, env: e, error }) => {
    const result = parseConfig(argv, e);
    expect(result.kind).toBe('error');
    if (result.kind === 'error') expect(result.message).toMatch(error);
  });

  it('reports every problem at once', () => {
    const result = parseConfig(['--health-port', 'x', '--log-level', 'y'], {});
    expect(result.kind === 'error' && result.message.split('\n')).toHaveLength(3);
  });

  it('help names every flag, its variable and its default', () => {
    const text = helpText();
    for (const f of FLAGS) {
      expect(text).toContain(`--${f.flag}`);
      expect(text).toContain(`env ${f.env}`);
      if (f.default !== undefined) expect(text).toContain(`default ${f.default}`);
    }
  });
});
