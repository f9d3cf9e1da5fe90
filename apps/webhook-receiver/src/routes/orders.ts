import { createHash, randomBytes } from 'node:crypto';
import {
  MAX_AMOUNT,
  normalizeCurrency,
  paymentSyncJobId,
  paymentSyncJobOptions,
  type Order,
  type Stripe,
} from '@ledger/shared';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { addJobOnce } from '../enqueue.js';
import { HttpError } from '../errors.js';

export interface OrderRouteOptions {
  stripe: Stripe;
  /** Base delay of the sync jobs' exponential backoff. */
  jobBackoffMs?: number;
}

export const createOrderBody = z
  .object({
    accountId: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'must be 1-64 letters, digits or _ . : -'),
    amount: z
      .number({ error: 'must be a number' })
      .int('must be an integer number of minor units')
      .positive('must be positive')
      .max(MAX_AMOUNT, `must be at most ${MAX_AMOUNT}`),
    currency: z.string().transform((value, ctx) => {
      const currency = normalizeCurrency(value);
      if (!currency) ctx.addIssue({ code: 'custom', message: 'must be a three-letter ISO 4217 code' });
      return currency ?? value;
    }),
  })
  .strict();

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
const ORDER_ID = /^ord_[A-Za-z0-9_-]{20,40}$/;

/** An order id: 128 random bits, so ids cannot be guessed or enumerated. */
function newOrderId(): string {
  return `ord_${randomBytes(16).toString('base64url')}`;
}

/** The Stripe Idempotency-Key for an order's PaymentIntent: a retry after a crash gets the same one. */
export function paymentIntentIdempotencyKey(orderId: string): string {
  return `pi-create-${orderId}`;
}

/** The order as the contract shows it. */
export function orderView(order: Order) {
  return {
    id: order.id,
    accountId: order.accountId,
    amount: order.amount,
    currency: order.currency,
    status: order.status,
    paymentIntentId: order.paymentIntentId,
    clientSecret: order.clientSecret,
    createdAt: order.createdAt.toISOString(),
    updatedAt: order.updatedAt.toISOString(),
  };
}

function zodMessage(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || 'body'} ${issue.message}`).join('; ');
}

/** `POST /orders`, `GET /orders/:id`, `POST /orders/:id/confirm`. */
export default async function orderRoutes(app: FastifyInstance, options: OrderRouteOptions) {
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

  app.post('/orders', async (request, reply) => {
    const key = request.headers['idempotency-key'];
    if (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key)) {
      throw new HttpError(400, 'idempotency_key_required', 'The Idempotency-Key header is required (1-255 printable ASCII characters).');
    }
    const parsed = createOrderBody.safeParse(request.body);
    if (!parsed.success) throw new HttpError(400, 'invalid_request', zodMessage(parsed.error));
    const body = parsed.data;
    const requestHash = createHash('sha256').update(JSON.stringify([body.accountId, body.amount, body.currency])).digest('hex');

    // The account's currency is fixed by its first order; the row is created with balance 0 and
    // only the worker moves its balance.
    await prisma.account.createMany({ data: [{ id: body.accountId, currency: body.currency }], skipDuplicates: true });
    const account = await prisma.account.findUniqueOrThrow({ where: { id: body.accountId } });
    if (account.currency !== body.currency) {
      throw new HttpError(400, 'currency_mismatch', `Account ${body.accountId} holds ${account.currency}; an order in ${body.currency} cannot credit it.`);
    }

    // ON CONFLICT DO NOTHING on (account, idempotency key): of concurrent requests, one inserts.
    const { count } = await prisma.order.createMany({
      data: [{ id: newOrderId(), accountId: body.accountId, amount: body.amount, currency: body.currency, idempotencyKey: key, requestHash }],
      skipDuplicates: true,
    });
    const order = await prisma.order.findUniqueOrThrow({
      where: { accountId_idempotencyKey: { accountId: body.accountId, idempotencyKey: key } },
    });
    if (order.requestHash !== requestHash) {
      throw new HttpError(409, 'idempotency_conflict', 'This Idempotency-Key was already used with a different request body.');
    }
    if (count === 1) app.metrics.ordersCreated.inc();
    const withIntent = await ensurePaymentIntent(order);
    return reply.code(count === 1 ? 201 : 200).send(orderView(withIntent));
  });

  async function findOrder(id: string): Promise<Order> {
    const order = ORDER_ID.test(id) ? await prisma.order.findUnique({ where: { id } }) : null;
    if (!order) throw new HttpError(404, 'order_not_found', 'No order with this id.');
    return order;
  }

  app.get<{ Params: { id: string } }>('/orders/:id', async (request) => orderView(await findOrder(request.params.id)));

  /**
   * The client says it paid. Never a credit here: queue a sync that asks Stripe, whose job id
   * collapses concurrent confirms; the worker applies what Stripe says through the ledger.
   */
  app.post<{ Params: { id: string } }>('/orders/:id/confirm', async (request, reply) => {
    const order = await findOrder(request.params.id);
    if (!order.paymentIntentId) {
      throw new HttpError(409, 'payment_not_started', 'The order has no PaymentIntent yet; repeat POST /orders with its Idempotency-Key.');
    }
    const jobId = paymentSyncJobId(order.paymentIntentId);
    await addJobOnce(app.redis, app.queues.paymentSync, 'confirm', { paymentIntentId: order.paymentIntentId, reason: 'confirm' }, paymentSyncJobOptions(jobId, options.jobBackoffMs));
    return reply.code(202).send(orderView(order));
  });
}
