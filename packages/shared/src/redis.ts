import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { parseRedisUrl } from './redis-url.js';

/** A connection to one Redis server or to a Redis Cluster: BullMQ and every caller here take either. */
export type RedisConnection = Redis | Cluster;

/**
 * A connection for `redisUrl` with ioredis options written once for both kinds: on a cluster,
 * `retryStrategy`, `enableOfflineQueue` and `lazyConnect` apply to the cluster client and the rest
 * to its connection to each node.
 */
export function connectRedis(redisUrl: string, options: RedisOptions = {}): RedisConnection {
  const target = parseRedisUrl(redisUrl);
  if (target.kind === 'single') return new Redis(redisUrl, options);
  const {
    retryStrategy,
    enableOfflineQueue,
    lazyConnect,
    host: _host,
    port: _port,
    path: _path,
    sentinels: _sentinels,
    readOnly: _readOnly,
    ...nodeOptions
  } = options;
  const clusterOptions: ClusterOptions = {
    enableOfflineQueue,
    lazyConnect,
    // When no node answers, the cluster client starts over with this, as a single connection would.
    clusterRetryStrategy: retryStrategy ? (attempt) => retryStrategy(attempt) : undefined,
    redisOptions: {
      ...nodeOptions,
      ...(target.username ? { username: target.username } : {}),
      ...(target.password ? { password: target.password } : {}),
      ...(target.tls ? { tls: {} } : {}),
    },
  };
  return new Cluster(target.nodes, clusterOptions);
}

/**
 * Producer connection for queues fed by HTTP requests: no offline queue and short timeouts, so a
 * request fails within about a second when Redis is down instead of hanging (and Stripe retries).
 * On a cluster the same holds while a failed master's slots have no master yet.
 * https://docs.bullmq.io/guide/going-to-production#enableofflinequeue
 */
export function createProducerConnection(redisUrl: string, options: RedisOptions = {}): RedisConnection {
  return connectRedis(redisUrl, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 1_000,
    commandTimeout: 1_000,
    // Keep reconnecting in the background; requests meanwhile fail fast.
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    ...options,
  });
}

/**
 * Worker connection: BullMQ's blocking commands need `maxRetriesPerRequest: null` (on a cluster, in
 * each node's options, which BullMQ checks), and a worker should wait out a Redis restart or a
 * failover rather than crash. https://docs.bullmq.io/guide/connections
 */
export function createWorkerConnection(redisUrl: string, options: RedisOptions = {}): RedisConnection {
  return connectRedis(redisUrl, {
    maxRetriesPerRequest: null,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    ...options,
  });
}
