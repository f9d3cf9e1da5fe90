import {
  OutageLog,
  QUEUES,
  createProducerConnection,
  redisEndpoint,
  type JobQueues,
  type QueueName,
  type RedisConnection,
} from '@ledger/shared';
import { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

declare module 'fastify' {
  interface FastifyInstance {
    /** BullMQ queues this app produces to, on a fail-fast connection; each takes its catalog payload only. */
    queues: JobQueues;
    /** The producer Redis connection, to one server or a cluster (readiness checks). */
    redis: RedisConnection;
  }
}

export interface QueuesPluginOptions {
  redisUrl: string;
  prefix: string;
}

/**
 * Producer side of the queues. The connection has no offline queue, so when Redis is down an
 * enqueue fails at once and the request answers 503 instead of hanging.
 */
export default fp(
  async function queuesPlugin(app: FastifyInstance, options: QueuesPluginOptions) {
    const redis = createProducerConnection(options.redisUrl);
    // ioredis reconnects on its own every ≤ 2 s: one line when Redis goes away, one when it is back.
    const outage = new OutageLog(app.log, 'Redis', redisEndpoint(options.redisUrl));
    redis.on('error', (error) => {
      if (!outage.report(error)) app.log.warn({ err: error }, 'redis connection error');
    });
    redis.on('ready', () => outage.recovered());
    const open = (name: QueueName) => {
      const queue = new Queue(name, { connection: redis, prefix: options.prefix });
      queue.on('error', (error) => {
        if (!outage.report(error)) app.log.warn({ err: error, queue: name }, 'queue error');
      });
      return queue;
    };
    const queues = {
      stripeEvents: open(QUEUES.stripeEvents),
      paymentSync: open(QUEUES.paymentSync),
      reconcile: open(QUEUES.reconcile),
      eventRecovery: open(QUEUES.eventRecovery),
      reviews: open(QUEUES.reviews),
    };
    app.decorate('queues', queues);
    app.decorate<RedisConnection>('redis', redis);
    app.addHook('onClose', async () => {
      // Every step runs even when one fails (Redis may already be gone).
      await Promise.allSettled(Object.values(queues).map((queue) => queue.close()));
      redis.disconnect();
    });
  },
  { name: 'queues' },
);
