import { Redis, type RedisOptions } from 'ioredis';

/**
 * Producer connection for queues fed by HTTP requests: no offline queue and short timeouts, so a
 * request fails within about a second when Redis is down instead of hanging (and Stripe retries).
 * https://docs.bullmq.io/guide/going-to-production#enableofflinequeue
 */
export function createProducerConnection(redisUrl: string, options: RedisOptions = {}): Redis {
  return new Redis(redisUrl, {
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
 * Worker connection: BullMQ's blocking commands need `maxRetriesPerRequest: null`, and a worker
 * should wait out a Redis restart rather than crash. https://docs.bullmq.io/guide/connections
 */
export function createWorkerConnection(redisUrl: string, options: RedisOptions = {}): Redis {
  return new Redis(redisUrl, {
    maxRetriesPerRequest: null,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    ...options,
  });
}
