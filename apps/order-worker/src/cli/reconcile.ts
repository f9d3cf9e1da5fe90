import { QUEUES, createWorkerConnection, stripeClientFromEnv } from '@ledger/shared';
import { Queue } from 'bullmq';
import { reconcileOnce } from '../operations/reconcile.js';
import { runCli } from './shared.js';

/** `npm run reconcile`: one reconciliation pass now (workers apply what it queues). */
await runCli(
  'reconcile',
  {
    usage: 'npm run reconcile',
    summary:
      'One reconciliation pass now: queues the Stripe events since the checkpoint that the inbox lacks, checks unpaid orders with Stripe (and ends those past ORDER_TTL), and reports succeeded payments not credited yet. Workers apply what it queues.',
    options: {
      json: {
        type: 'boolean',
        description: "print the pass's report as one JSON object instead of sentences (for scripts: the chaos run reads it)",
      },
    },
    needsRedis: true,
  },
  async ({ values, env, prisma, logger }) => {
    const connection = createWorkerConnection(env.REDIS_URL);
    const queueOptions = { connection, prefix: env.QUEUE_PREFIX };
    const eventsQueue = new Queue(QUEUES.stripeEvents, queueOptions);
    const syncQueue = new Queue(QUEUES.paymentSync, queueOptions);
    try {
      const report = await reconcileOnce(
        { prisma, stripe: stripeClientFromEnv(env), eventsQueue, syncQueue, logger },
        { staleAfterSeconds: env.RECONCILE_STALE_AFTER_SECONDS, orderTtlSeconds: env.ORDER_TTL, maxRequestsPerSecond: env.STRIPE_MAX_RPS },
      );
      if (values.json) {
        console.log(JSON.stringify(report));
        return 0;
      }
      const { payments } = report;
      console.log(
        `listed ${report.eventsListed} Stripe events; checkpoint ${new Date(report.checkpoint * 1000).toISOString()} (the oldest event the inbox still lacks, else the newest: the next pass starts there)`,
      );
      console.log(
        `events the inbox lacked: ${report.eventsEnqueued} queued now, ${report.eventsInFlight} already queued and not applied yet`,
      );
      console.log(
        `unpaid orders: ${report.staleOrdersChecked} checked with Stripe, ${report.ordersExpiring} past ORDER_TTL being canceled, ${report.ordersExpired} without a PaymentIntent expired`,
      );
      console.log(
        `succeeded payments in the window: ${payments.credited} credited, ${payments.held.length} held for review, ${payments.notOurs} not ours, ${payments.uncredited.length} not credited yet`,
      );
      if (payments.uncredited.length > 0) {
        const queued = report.eventsEnqueued + report.eventsInFlight > 0;
        console.log(
          `not credited yet: ${payments.uncredited.slice(0, 20).join(', ')}${queued ? ' (their events are queued; a running worker applies them)' : ' (nothing was queued for them: check the failed jobs and npm run replay -- --failed)'}`,
        );
      }
      if (payments.held.length > 0) console.log(`held for review: ${payments.held.slice(0, 20).join(', ')} (npm run review -- list)`);
      if (payments.uncredited.length === 0 && payments.held.length === 0) console.log('Stripe and the ledger agree for the window');
      return 0;
    } finally {
      await Promise.allSettled([eventsQueue.close(), syncQueue.close()]);
      connection.disconnect();
    }
  },
);
