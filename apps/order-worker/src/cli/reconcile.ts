import { QUEUES, createWorkerConnection, stripeClientFromEnv } from '@ledger/shared';
import { Queue } from 'bullmq';
import { reconcileOnce } from '../reconcile.js';
import { runCli } from './shared.js';

/** `npm run reconcile`: one reconciliation pass now (workers apply what it queues). */
await runCli(
  'reconcile',
  {
    usage: 'npm run reconcile',
    summary:
      'One reconciliation pass now: queues the Stripe events since the checkpoint that the inbox lacks and a check of orders awaiting payment too long, and reports succeeded payments not credited yet. Workers apply what it queues.',
    needsRedis: true,
  },
  async ({ env, prisma, logger }) => {
    const connection = createWorkerConnection(env.REDIS_URL);
    const queueOptions = { connection, prefix: env.QUEUE_PREFIX };
    const eventsQueue = new Queue(QUEUES.stripeEvents, queueOptions);
    const syncQueue = new Queue(QUEUES.paymentSync, queueOptions);
    try {
      const report = await reconcileOnce(
        { prisma, stripe: stripeClientFromEnv(env), eventsQueue, syncQueue, logger },
        { staleAfterSeconds: env.RECONCILE_STALE_AFTER_SECONDS, maxRequestsPerSecond: env.STRIPE_MAX_RPS },
      );
      console.log(
        `listed ${report.eventsListed} Stripe events, queued ${report.eventsEnqueued} the inbox lacked, ` +
          `queued a check of ${report.staleOrdersChecked} stale order(s); checkpoint ${new Date(report.checkpoint * 1000).toISOString()}`,
      );
      if (report.uncredited.length > 0) {
        console.log(`${report.uncredited.length} succeeded payment(s) not credited yet (queued; a worker applies them): ${report.uncredited.slice(0, 20).join(', ')}`);
      } else {
        console.log('Stripe and the ledger agree for the window');
      }
      return 0;
    } finally {
      await Promise.allSettled([eventsQueue.close(), syncQueue.close()]);
      connection.disconnect();
    }
  },
);
