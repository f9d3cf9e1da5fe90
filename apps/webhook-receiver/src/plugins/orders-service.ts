import { createHash, randomBytes } from 'node:crypto';
import { paymentSyncJobId, type Order, type Stripe } from '@ledger/shared';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { addJob } from '../tracing.js';
import { HttpError } from '../errors.js';
import type { OrdersCaller } from '../orders-auth.js';

export interface OrdersServiceOptions {
  stripe: Stripe;
  /** Base delay of the sync jobs' exponential backoff. */
  jobBackoffMs?: number | undefined;
}

/** What a client asks for: an amount in minor units and a normalized currency. */
export interface OrderRequest {
  amount: number;
  currency: string;
}

/** Orders as the orders API works with them; the routes only translate HTTP. */
export interface OrdersService {
  /**
   * The order `idempotencyKey` names for `accountId`, created with its PaymentIntent if it is new
   * (`created`). The same key with another request is a 409; an account already credited in another
   * currency is a 400; Stripe failing is a 502/503 that the same key retries safely.
   */
  create(accountId: string, request: OrderRequest, idempotencyKey: string): Promise<{ order: Order; created: boolean }>;
  /** The order if `caller` may see it; another account's order is "not found" (no existence leak). */
  find(caller: OrdersCaller, id: string): Promise<Order>;
  /**
   * The order once its status differs from `lastSeen`, or when `waitSeconds` have passed, the
   * client went away (`gone`) or the process is closing.
   */
  waitForChange(caller: OrdersCaller, id: string, lastSeen: Order['status'], waitSeconds: number, gone: AbortSignal): Promise<Order>;
  /**
   * Queues a check with Stripe of the order's PaymentIntent (never a credit here): the job id
   * collapses concurrent confirms; the worker applies what Stripe says through the ledger.
   */
  confirm(order: Order): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    ordersService: OrdersService;
  }
}

const ORDER_ID = /^ord_[A-Za-z0-9_-]{20,40}$/;

/** An order id: 128 random bits, so ids cannot be guessed or enumerated. */
function newOrderId(): string {
  return `ord_${randomBytes(16).toString('base64url')}`;
}

/** The Stripe Idempotency-Key for an order's PaymentIntent: a retry after a crash gets the same one. */
export function paymentIntentIdempotencyKey(orderId: string): string {
  return `pi-create-${orderId}`;
}

function createOrdersService(app: FastifyInstance, options: OrdersServiceOptions): OrdersService {
  const { prisma } = app;

  /**
   * Creates the order's PaymentIntent unless it has one. Concurrent callers all send the same
   * Stripe Idempotency-Key, so Stripe creates one PaymentIntent and they all store the same id.
   */
  async function ensurePaymentIntent(order: Order): Promise<Order> {
    if (order.paymentIntentId) return order;
    let intent: Stripe.PaymentIntent;
    try {
      intent = await options.stripe.paymentIntents.create(
        {
          amount: order.amount,
          currency: order.currency,
          metadata: { order_id: order.id, account_id: order.accountId },
          automatic_payment_methods: { enabled: true },
        },
        { idempotencyKey: paymentIntentIdempotencyKey(order.id) },
      );
    } catch (error) {
      app.log.warn({ err: error, orderId: order.id }, 'creating the PaymentIntent failed');
      const status = (error as { statusCode?: number }).statusCode;
      throw new HttpError(
        status && status < 500 && status !== 429 ? 502 : 503,
        'payment_provider_unavailable',
        'The payment provider did not create the payment; retry with the same Idempotency-Key.',
      );
    }
    await prisma.order.updateMany({
      where: { id: order.id, paymentIntentId: null },
      data: { paymentIntentId: intent.id, clientSecret: intent.client_secret },
    });
    return prisma.order.findUniqueOrThrow({ where: { id: order.id } });
  }

  async function find(caller: OrdersCaller, id: string): Promise<Order> {
    const order = ORDER_ID.test(id) ? await prisma.order.findUnique({ where: { id } }) : null;
    if (!order || (caller.kind === 'user' && order.accountId !== caller.accountId)) {
      throw new HttpError(404, 'order_not_found', 'No order with this id.');
    }
    return order;
  }

  return {
    async create(accountId, request, idempotencyKey) {
      const requestHash = createHash('sha256')
        .update(JSON.stringify([accountId, request.amount, request.currency]))
        .digest('hex');

      // The row is created with balance 0 (the worker needs it); only the worker moves its balance.
      await prisma.account.createMany({ data: [{ id: accountId, currency: request.currency }], skipDuplicates: true });
      const account = await prisma.account.findUniqueOrThrow({ where: { id: accountId } });
      // The currency is fixed by the first credit, not the first order: an unpaid order in another
      // currency must not lock the account. The worker settles the currency at the first credit.
      if (account.currency !== request.currency && (await prisma.ledgerEntry.findFirst({ where: { accountId }, select: { id: true } }))) {
        throw new HttpError(
          400,
          'currency_mismatch',
          `Account ${accountId} holds ${account.currency}; an order in ${request.currency} cannot credit it.`,
        );
      }

      // ON CONFLICT DO NOTHING on (account, idempotency key): of concurrent requests, one inserts.
      const { count } = await prisma.order.createMany({
        data: [{ id: newOrderId(), accountId, amount: request.amount, currency: request.currency, idempotencyKey, requestHash }],
        skipDuplicates: true,
      });
      const order = await prisma.order.findUniqueOrThrow({ where: { accountId_idempotencyKey: { accountId, idempotencyKey } } });
      if (order.requestHash !== requestHash) {
        throw new HttpError(409, 'idempotency_conflict', 'This Idempotency-Key was already used with a different request body.');
      }
      if (count === 1) app.metrics.ordersCreated.inc();
      return { order: await ensurePaymentIntent(order), created: count === 1 };
    },

    find,

    async waitForChange(caller, id, lastSeen, waitSeconds, gone) {
      const deadline = Date.now() + waitSeconds * 1000;
      for (;;) {
        // Watch before reading: a change committed after the read still wakes this request.
        const watch = app.orderStatus.watch(id, deadline - Date.now(), gone);
        try {
          // Ownership is checked on every read, so another account's order never makes anyone wait.
          const order = await find(caller, id);
          if (order.status !== lastSeen || Date.now() >= deadline || gone.aborted || app.orderStatus.closing) return order;
          await watch.changed;
        } finally {
          watch.cancel();
        }
      }
    },

    async confirm(order) {
      if (!order.paymentIntentId) {
        throw new HttpError(
          409,
          'payment_not_started',
          'The order has no PaymentIntent yet; repeat POST /orders with its Idempotency-Key.',
        );
      }
      await addJob(app.queues, 'paymentSync', {
        name: 'confirm',
        jobId: paymentSyncJobId(order.paymentIntentId),
        data: { paymentIntentId: order.paymentIntentId, reason: 'confirm' },
        backoffMs: options.jobBackoffMs,
      });
    },
  };
}

/** The orders service (`app.ordersService`), as fastify/demo's repository plugins decorate the app. */
export default fp(
  async function ordersServicePlugin(app: FastifyInstance, options: OrdersServiceOptions) {
    app.decorate('ordersService', createOrdersService(app, options));
  },
  { name: 'orders-service', dependencies: ['prisma', 'queues', 'metrics', 'order-status-listener'] },
);
