import { createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { QUEUES, tracing, untraced, type StripeScope } from '@ledger/shared';
import { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';

export interface ReceiverWarmUpOptions {
  /** Signed deliveries to send through the webhook route (0: only the connections are opened). */
  events: number;
  /** A secret the route accepts (the first configured one). */
  webhookSecret: string;
  scope: StripeScope;
  /** Deliveries in flight at once (keep-alive connections). */
  concurrency?: number;
  /** PostgreSQL connections to open ahead (the orders and spending routes use them). */
  postgresConnections?: number;
}

export interface ReceiverWarmUp {
  events: number;
  ms: number;
}

/**
 * Makes a built (not yet listening) receiver serve at full speed from its first request: opens its
 * PostgreSQL connections and pings Redis, then sends `events` signed `payment_intent.succeeded`
 * deliveries (a tenth of them twice: the duplicate path) through the real HTTP stack and the real
 * webhook route — signature check, event parsing, BullMQ's add script, the answer — on a loopback
 * listener of its own, so the JIT has compiled the hot path before the first real delivery comes.
 *
 * Nothing of it stays: the route's events queue is swapped for a queue of its own
 * (`stripe-events-warm-up-<random>`, same prefix) for the duration and that queue is removed after,
 * the route's own log lines are held back (level warn meanwhile), and the webhook counters are reset.
 * It runs before the public port listens, so no real delivery can reach the swapped queue.
 *
 * Why it matters: a cold process answers its first deliveries in hundreds of milliseconds; an
 * open-loop sender (Stripe) then opens a connection per waiting delivery, and Node accepts one
 * connection per turn of its busy event loop, so that backlog took seconds to drain (issue 26).
 */
export function warmUpReceiver(app: FastifyInstance, options: ReceiverWarmUpOptions): Promise<ReceiverWarmUp> {
  // Tracing on: the warm-up is no one's trace (a thousand short ones at each start otherwise).
  return untraced(() => warmUp(app, options));
}

/**
 * A request listener whose requests run with tracing suppressed (tracing on). The request and
 * response are bound to that context too: Fastify reads the body and answers from their events,
 * which would otherwise run in the context the connection was accepted in.
 */
function untracedListener(listener: http.RequestListener): http.RequestListener {
  if (!tracing) return listener;
  const { api } = tracing;
  const suppressed = tracing.suppressed();
  return (request, response) => {
    api.context.bind(suppressed, request);
    api.context.bind(suppressed, response);
    api.context.with(suppressed, () => listener(request, response));
  };
}

async function warmUp(app: FastifyInstance, options: ReceiverWarmUpOptions): Promise<ReceiverWarmUp> {
  const started = performance.now();
  await app.ready();
  const connections = options.postgresConnections ?? 4;
  // The producer connection has no offline queue: wait for it to connect, then load what it needs.
  await Promise.all(Object.values(app.queues).map((queue: Queue) => queue.waitUntilReady()));
  await Promise.all([app.redis.ping(), ...Array.from({ length: connections }, () => app.prisma.$queryRaw`SELECT 1`)]);
  if (options.events > 0) await sendWarmUpDeliveries(app, options);
  return { events: options.events, ms: Math.round(performance.now() - started) };
}

async function sendWarmUpDeliveries(app: FastifyInstance, options: ReceiverWarmUpOptions): Promise<void> {
  const queues = app.queues as { stripeEvents: Queue };
  const real = queues.stripeEvents;
  const run = randomBytes(4).toString('hex');
  const warmQueue = new Queue(`${QUEUES.stripeEvents}-warm-up-${run}`, { connection: app.redis, prefix: real.opts.prefix });
  const level = app.log.level;
  const deliveryLevel = app.webhookDeliveryLog.level;
  const server = http.createServer(untracedListener(app.routing));
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency ?? 8 });
  queues.stripeEvents = warmQueue;
  app.log.level = 'warn';
  app.webhookDeliveryLog.level = 'warn';
  try {
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    let next = 0;
    let failure: Error | undefined;
    const sendAll = async () => {
      while (failure === undefined && next < options.events) {
        const index = next++;
        try {
          // Every tenth one is a resend of the one before (the duplicate answer).
          const status = await post(agent, port, warmUpEvent(run, index % 10 === 9 ? index - 1 : index, options), options.webhookSecret);
          if (status !== 200) throw new Error(`warm-up delivery ${index} was answered ${status}`);
        } catch (error) {
          failure ??= error instanceof Error ? error : new Error(String(error));
        }
      }
    };
    // Every sender has stopped before the real queue is put back: no warm-up delivery can reach it.
    await Promise.all(Array.from({ length: options.concurrency ?? 8 }, sendAll));
    if (failure) throw failure;
  } finally {
    queues.stripeEvents = real;
    app.log.level = level;
    app.webhookDeliveryLog.level = deliveryLevel;
    agent.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    // Redis gone meanwhile: the queue's few keys stay, named as a warm-up's (no worker reads them).
    await warmQueue
      .obliterate({ force: true })
      .catch((error: unknown) => app.log.warn({ err: error, queue: warmQueue.name }, 'the warm-up queue could not be removed'))
      .finally(() => warmQueue.close());
    // The deliveries above were not Stripe's: no counter may show them.
    for (const metric of app.metrics.registry.getMetricsAsArray()) {
      if (metric.name.startsWith('ledger_webhooks_')) (metric as unknown as { reset(): void }).reset();
    }
  }
}

function warmUpEvent(run: string, index: number, options: ReceiverWarmUpOptions): string {
  const paymentIntentId = `pi_warmup${run}_${index}`;
  return JSON.stringify({
    id: `evt_warmup${run}_${index}`,
    object: 'event',
    api_version: '2026-10-28.endive',
    created: Math.floor(Date.now() / 1000),
    data: {
      object: {
        id: paymentIntentId,
        object: 'payment_intent',
        amount: 1000,
        amount_received: 1000,
        currency: 'usd',
        metadata: { order_id: `ord_warmup${run}_${index}`, account_id: `acct_warmup${run}` },
        status: 'succeeded',
        livemode: options.scope.livemode,
      },
    },
    livemode: options.scope.livemode,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type: 'payment_intent.succeeded',
  });
}

function post(agent: http.Agent, port: number, body: string, secret: string): Promise<number> {
  const timestamp = Math.floor(Date.now() / 1000);
  const signature = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        agent,
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/webhooks/stripe',
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'stripe-signature': `t=${timestamp},v1=${signature}`,
        },
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}
