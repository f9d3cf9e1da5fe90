import { createStripeCallMetrics, observeStripeCalls, withTimeout, type Stripe } from '@ledger/shared';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { z } from 'zod';
import { checkDependencies, type DependencyChecks } from '../readiness.js';

function createReceiverMetrics(app: FastifyInstance) {
  // One registry per app instance: tests build many apps in one process.
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  // The queue gauges come from one read of Redis per scrape, the readiness gauges from one check of
  // both dependencies (prom-client collects metrics concurrently).
  let reading: Promise<QueueDepths | undefined> | undefined;
  const readOnce = () =>
    (reading ??= readQueueDepths(app)
      .catch(() => undefined)
      .finally(() => (reading = undefined)));
  let checking: Promise<DependencyChecks> | undefined;
  const readDependenciesOnce = () => (checking ??= checkDependencies(app, SCRAPE_READ_TIMEOUT_MS).finally(() => (checking = undefined)));
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
    webhooksDuplicate: new Counter({
      name: 'ledger_webhooks_duplicate_total',
      help: 'Verified webhooks whose event was already queued.',
      registers,
    }),
    webhooksIgnored: new Counter({
      name: 'ledger_webhooks_ignored_total',
      help: 'Verified webhooks of event types the worker does not handle (acknowledged, not queued).',
      labelNames: ['type'] as const,
      registers,
    }),
    webhooksThin: new Counter({
      name: 'ledger_webhooks_thin_total',
      help: 'Verified thin events (API v2 Event Destinations), acknowledged, by type; some queue a recovery or a PaymentIntent sync.',
      labelNames: ['type'] as const,
      registers,
    }),
    webhooksNotOurs: new Counter({
      name: 'ledger_webhooks_not_ours_total',
      help: "Verified webhooks of another mode or connected account than this deployment's (acknowledged, not applied), by reason.",
      labelNames: ['reason'] as const,
      registers,
    }),
    stripeCalls: createStripeCallMetrics(registry),
    ordersCreated: new Counter({ name: 'ledger_orders_created_total', help: 'Orders created.', registers }),
    spendingOperations: new Counter({
      name: 'ledger_spending_operations_total',
      help: 'Spending calls answered by the ledger, by operation (debit, hold, capture, release) and outcome (created, replayed, or the refusal).',
      labelNames: ['operation', 'outcome'] as const,
      registers,
    }),
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
    orderWaiters: new Gauge({
      name: 'ledger_order_waiters',
      help: 'Long-poll requests waiting for an order status change in this process.',
      registers,
    }),
    orderStatusListenerReconnects: new Counter({
      name: 'ledger_order_status_listener_reconnects_total',
      help: 'Times the LISTEN connection for order status changes was lost and reopened.',
      registers,
    }),
    queueDepth: new Gauge({
      name: 'ledger_queue_jobs',
      help: 'Jobs in each queue, by state (read from Redis at scrape time; absent when ledger_queue_jobs_scrape_ok is 0).',
      labelNames: ['queue', 'state'] as const,
      registers,
      async collect() {
        const depths = await readOnce();
        this.reset();
        for (const [queue, counts] of depths ?? []) {
          for (const state of QUEUE_STATES) this.set({ queue, state }, counts[state] ?? 0);
        }
      },
    }),
    ready: new Gauge({
      name: 'ledger_ready',
      help: '1 when this process is ready (what /readyz answers: PostgreSQL and Redis answer), else 0; read at scrape time.',
      registers,
      async collect() {
        const checks = await readDependenciesOnce();
        this.set(checks.postgres === 'ok' && checks.redis === 'ok' ? 1 : 0);
      },
    }),
    dependencyUp: new Gauge({
      name: 'ledger_dependency_up',
      help: '1 when the dependency (postgres, redis) answered this process within 0.5 s at scrape time, else 0.',
      labelNames: ['dependency'] as const,
      registers,
      async collect() {
        const checks = await readDependenciesOnce();
        this.set({ dependency: 'postgres' }, checks.postgres === 'ok' ? 1 : 0);
        this.set({ dependency: 'redis' }, checks.redis === 'ok' ? 1 : 0);
      },
    }),
    queueDepthScrapeOk: new Gauge({
      name: 'ledger_queue_jobs_scrape_ok',
      help: '1 when ledger_queue_jobs was read from Redis for this scrape, 0 when Redis did not answer in time.',
      registers,
      async collect() {
        this.set((await readOnce()) ? 1 : 0);
      },
    }),
  };
}

const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed'] as const;
/** A scrape must answer within a second even when Redis or PostgreSQL does not (Prometheus' default timeout is 10 s). */
const SCRAPE_READ_TIMEOUT_MS = 500;

type QueueDepths = [queue: string, counts: Record<string, number>][];

/**
 * Job counts of every queue, or a rejection within {@link SCRAPE_READ_TIMEOUT_MS}: BullMQ waits for
 * a connection that is not ready (it would hang the scrape for the whole outage), so a connection
 * that is not ready fails at once.
 */
async function readQueueDepths(app: FastifyInstance): Promise<QueueDepths> {
  if (app.redis.status !== 'ready') throw new Error(`redis ${app.redis.status}`);
  return withTimeout(
    Promise.all(
      Object.values(app.queues).map(async (queue): Promise<QueueDepths[number]> => [queue.name, await queue.getJobCounts(...QUEUE_STATES)]),
    ),
    SCRAPE_READ_TIMEOUT_MS,
  );
}

export type ReceiverMetrics = ReturnType<typeof createReceiverMetrics>;

declare module 'fastify' {
  interface FastifyInstance {
    metrics: ReceiverMetrics;
  }
}

/** Prometheus metrics of the receiver, served at `GET /metrics`. */
export default fp(
  async function metricsPlugin(app: FastifyInstance, options: { stripe?: Stripe }) {
    const metrics = createReceiverMetrics(app);
    app.decorate('metrics', metrics);
    if (options.stripe) {
      const stop = observeStripeCalls(options.stripe, metrics.stripeCalls.observe);
      app.addHook('onClose', async () => stop());
    }
    app.get(
      '/metrics',
      {
        schema: {
          tags: ['operations'],
          operationId: 'getMetrics',
          summary: 'Prometheus metrics',
          produces: ['text/plain'],
          response: { 200: z.string().meta({ description: 'Prometheus text exposition format' }) },
        },
      },
      async (_request, reply) => {
        reply.header('content-type', metrics.registry.contentType);
        return metrics.registry.metrics();
      },
    );
  },
  { name: 'metrics', dependencies: ['prisma', 'queues'] },
);
