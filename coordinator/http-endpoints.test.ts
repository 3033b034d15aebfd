import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from './config.js';
import { publicAgents } from './http-endpoints.js';
import type { AgentInfo } from './link/server.js';

describe('publicAgents', () => {
  it('keeps each action state and drops every output tail', () => {
    const agent: AgentInfo = {
      node: 'gpu-01',
      version: '1',
      bootID: 'b',
      inventory: { gpus: 8 },
      connectedAt: '2026-01-01T00:00:00.000Z',
      lastHeartbeat: '2026-01-01T00:00:10.000Z',
      remote: '10.0.0.1',
      running: {
        a1: { state: 'running', outputTail: 'export TOKEN=s3cret' },
        a2: { state: 'starting' },
      },
    };
    const [shown] = publicAgents([agent]);
    expect(shown).toEqual({
      ...agent,
      running: { a1: { state: 'running' }, a2: { state: 'starting' } },
    });
    expect(JSON.stringify(shown)).not.toContain('s3cret');
  });
});

describe('--endpoint-auth', () => {
  it.each([
    [[], {}, true],
    [['--endpoint-auth', 'off'], {}, false],
    [[], { NOMA_ENDPOINT_AUTH: 'off' }, false],
    [['--endpoint-auth', 'on'], { NOMA_ENDPOINT_AUTH: 'off' }, true],
    // The flag wins over the environment (test/support sets it off), the last flag over others.
    [['--endpoint-auth', 'off', '--endpoint-auth', 'on'], {}, true],
  ])('%j %j: %s', (argv, env, want) => {
    expect(parseConfig(argv, env)).toMatchObject({ endpointAuth: want });
  });

  it('refuses anything but on or off', () => {
    expect(() => parseConfig(['--endpoint-auth', 'false'], {})).toThrow(ConfigError);
    expect(() => parseConfig(['--endpoint-auth', 'false'], {})).toThrow('--endpoint-auth');
  });
});
