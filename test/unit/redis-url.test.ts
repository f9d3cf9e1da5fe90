import { describe, expect, it } from 'vitest';
import { hasHashTag, isClusterUrl, parseRedisUrl, redisEndpoint } from '@ledger/shared';
import { loadWorkerEnv } from '../../apps/order-worker/src/env.js';
import { loadReceiverEnv } from '../../apps/webhook-receiver/src/env.js';

describe('REDIS_URL: one server or a cluster', () => {
  it.each([
    ['redis://127.0.0.1:6379', { kind: 'single', url: 'redis://127.0.0.1:6379' }],
    ['rediss://:pw@cache.example:6380', { kind: 'single', url: 'rediss://:pw@cache.example:6380' }],
    [
      'redis+cluster://10.0.0.1:7000,10.0.0.2:7001',
      {
        kind: 'cluster',
        nodes: [
          { host: '10.0.0.1', port: 7000 },
          { host: '10.0.0.2', port: 7001 },
        ],
        tls: false,
      },
    ],
    [
      'redis+cluster://node-a,node-b:7001/',
      {
        kind: 'cluster',
        nodes: [
          { host: 'node-a', port: 6379 },
          { host: 'node-b', port: 7001 },
        ],
        tls: false,
      },
    ],
    [
      'rediss+cluster://app:p%40ss@[::1]:7000',
      { kind: 'cluster', nodes: [{ host: '::1', port: 7000 }], username: 'app', password: 'p@ss', tls: true },
    ],
    ['redis+cluster://:secret@h:1', { kind: 'cluster', nodes: [{ host: 'h', port: 1 }], password: 'secret', tls: false }],
  ])('%s', (url, target) => {
    expect(parseRedisUrl(url)).toEqual(target);
  });

  it.each([['http://127.0.0.1:6379'], ['redis+cluster://'], ['redis+cluster://h:99999'], ['not a url']])('refuses %s', (url) => {
    expect(() => parseRedisUrl(url)).toThrow(/must/);
  });

  it('takes a password holding #, / or ? whole, and never echoes a bad node (it may hold a password)', () => {
    expect(parseRedisUrl('redis+cluster://default:s3cr#t/x?y@10.0.0.1:7000')).toEqual({
      kind: 'cluster',
      nodes: [{ host: '10.0.0.1', port: 7000 }],
      username: 'default',
      password: 's3cr#t/x?y',
      tls: false,
    });
    expect(redisEndpoint('redis+cluster://default:8812#x@10.0.0.1:7000')).toBe('10.0.0.1:7000');
    const refused = (url: string) => {
      try {
        parseRedisUrl(url);
      } catch (error) {
        return (error as Error).message;
      }
      throw new Error(`${url} was accepted`);
    };
    expect(refused('redis+cluster://default:s3cret,a:7000')).toMatch(/node 1 is not one/);
    expect(refused('redis+cluster://default:s3cret,a:7000')).not.toContain('s3cret');
    // A cluster has only database 0: a path or options would be ignored silently, so they are refused.
    expect(refused('redis+cluster://a:7000/2')).toMatch(/path, query or fragment/);
    expect(refused('redis+cluster://a:7000?password=x')).toMatch(/path, query or fragment/);
  });

  it('prints where Redis is without the password', () => {
    expect(redisEndpoint('rediss+cluster://u:p@[::1]:7000')).toBe('[::1]:7000');
    expect(redisEndpoint('redis://:pw@127.0.0.1:6380')).toBe('127.0.0.1:6380');
    expect(redisEndpoint('redis+cluster://:pw@a:7000,b:7001')).toBe('a:7000,b:7001');
    expect(isClusterUrl('redis+cluster://a:1')).toBe(true);
    expect(isClusterUrl('redis://a:1')).toBe(false);
  });

  it.each([
    ['ledger', false],
    ['{ledger}', true],
    ['app-{ledger}', true],
    ['{}ledger', false],
    ['{ledger', false],
    ['}{ledger}', true],
  ])('hash tag in QUEUE_PREFIX %s: %s', (prefix, tagged) => {
    expect(hasHashTag(prefix)).toBe(tagged);
  });
});

describe('QUEUE_PREFIX on Redis Cluster', () => {
  const cluster = { REDIS_URL: 'redis+cluster://127.0.0.1:7000,127.0.0.1:7001' };

  it('refuses a prefix without a hash tag, in the worker and the receiver alike', () => {
    const message = /^Invalid environment: QUEUE_PREFIX must hold a hash tag such as \{ledger\} on Redis Cluster .* \(got "ledger"\)$/;
    expect(() => loadWorkerEnv(cluster)).toThrow(message);
    expect(() => loadReceiverEnv({ ...cluster, QUEUE_PREFIX: 'ledger' })).toThrow(message);
  });

  it('takes a hash-tagged prefix, and any prefix on one server', () => {
    expect(loadWorkerEnv({ ...cluster, QUEUE_PREFIX: '{ledger}' }).QUEUE_PREFIX).toBe('{ledger}');
    expect(loadWorkerEnv({ REDIS_URL: 'redis://127.0.0.1:6379' }).QUEUE_PREFIX).toBe('ledger');
  });

  it('names a malformed REDIS_URL', () => {
    expect(() => loadWorkerEnv({ REDIS_URL: 'redis+cluster://h:0' })).toThrow(
      /^Invalid environment: REDIS_URL must list cluster nodes as host:port/,
    );
  });
});
