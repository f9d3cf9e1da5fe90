import { withTimeout } from '@ledger/shared';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

function createReceiverMetrics(app: FastifyInstance) {
  // One registry per app instance: tests build many apps in one process.
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    webhooksReceived: new Counter({ name: 'ledger_webhooks_received_total', help: 'Webhook requests received.', registers }),
    webhooksVerified: new Counter({ name: 'ledger_webhooks_verified_total', help: 'Webhooks whose signature verified.', registers }),
    webhooksRejected: new Counter({
      name: 'ledger_webhooks_rejected_total',
      help: 'Webhooks rejected, by reason.',
      labelNames: ['reason'] as const,
      registers,
    }),
    webhooksDuplicate: new Counter({ name: 'ledger_webhooks_duplicate_total', help: 'Verified webhooks whose event was already queued.', registers }),
    webhooksIgnored: new Counter({
      name: 'ledger_webhooks_ignored_total',
      help: 'Verified webhooks of event types the worker does not handle (acknowledged, not queued).',
      labelNames: ['type'] as const,
      registers,
    }),
    webhooksNotOurs: new Counter({
      name: 'ledger_webhooks_not_ours_total',
      help: "Verified webhooks of another mode or connected account than this deployment's (acknowledged, not applied), by reason.",
      labelNames: ['reason'] as const,
      registers,
    }),
    ordersCreated: new Counter({ name: 'ledger_orders_created_total', help: 'Orders created.', registers }),
    rateLimited: new Counter({
      name: 'ledger_rate_limited_total',
      help: 'Orders API requests refused with 429, by route and by the limit they hit (account or ip).',
      labelNames: ['route', 'scope'] as const,
      registers,
    }),
    rateLimitUnavailable: new Counter({
      name: 'ledger_rate_limit_unavailable_total',
      help: 'Rate limit checks skipped because Redis did not answer (the request was let through).',
      labelNames: ['scope'] as const,
      registers,
    }),
    orderWaiters: new Gauge({ name: 'ledger_order_waiters', help: 'Long-poll requests waiting for an order status change in this process.', registers }),
    orderStatusListenerReconnects: new Counter({
      name: 'ledger_order_status_listener_reconnects_total',
      help: 'Times the LISTEN connection for order status changes was lost and reopened.',
      registers,
    }),
    queueDepth: new Gauge({
      name: 'ledger_queue_jobs',
      help: 'Jobs in each queue, by state (read from Redis at scrape time).',
      labelNames: ['queue', 'state'] as const,
      registers,
      async collect() {
        const states = ['waiting', 'active', 'delayed', 'failed', 'completed'] as const;
        await Promise.all(
          Object.values(app.queues).map(async (queue) => {
            // With Redis down the depth is unknown: leave it out rather than fail the whole scrape.
            // BullMQ waits for a connection that is not ready rather than failing: bound the wait.
            const counts = await withTimeout(queue.getJobCounts(...states), 1_000).catch(() => undefined);
            if (!counts) return;
            for (const state of states) this.set({ queue: queue.name, state }, counts[state] ?? 0);
          }),
        );
      },
    }),
  };
}

export type ReceiverMetrics = ReturnType<typeof createReceiverMetrics>;

declare module 'fastify' {
  interface FastifyInstance {
    metrics: ReceiverMetrics;
  }
}

/** Prometheus metrics of the receiver, served at `GET /metrics`. */
export default fp(
  async function metricsPlugin(app: FastifyInstance) {
    const metrics = createReceiverMetrics(app);
    app.decorate('metrics', metrics);
    app.get('/metrics', async (_request, reply) => {
      reply.header('content-type', metrics.registry.contentType);
      return metrics.registry.metrics();
    });
  },
  { name: 'metrics', dependencies: ['queues'] },
);
