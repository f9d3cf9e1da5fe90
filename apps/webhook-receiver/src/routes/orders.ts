import { createHash, randomBytes } from 'node:crypto';
import {
  ACCOUNT_ID,
  MAX_AMOUNT,
  ORDER_STATUSES,
  normalizeCurrency,
  paymentSyncJobId,
  paymentSyncJobOptions,
  type Order,
  type Stripe,
} from '@ledger/shared';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { addJobOnce } from '../enqueue.js';
import { HttpError } from '../errors.js';
import { createOrdersAuthenticator, type OrdersAuthConfig, type OrdersCaller } from '../orders-auth.js';

export interface OrderRouteOptions {
  stripe: Stripe;
  auth: OrdersAuthConfig;
  /** Base delay of the sync jobs' exponential backoff. */
  jobBackoffMs?: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the orders routes' authentication hook. */
    ordersCaller: OrdersCaller | null;
  }
  interface FastifyContextConfig {
    /** Count requests to this route against the per-address and per-account limits. */
    rateLimited?: boolean;
  }
}

/** Longest long-poll wait, in seconds (below common load balancer idle timeouts of 60 s). */
export const MAX_WAIT_SECONDS = 30;

export const createOrderBody = z
  .object({
    /** Required for service keys; a user's token names the account (`sub`), so they may leave it out. */
    accountId: z.string().regex(ACCOUNT_ID, 'must be 1-64 letters, digits or _ . : -').optional(),
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

/** Long-poll query: wait up to `wait` seconds for the status to differ from `status`. */
export const orderStatusQuery = z.object({
  wait: z.coerce.number({ error: 'must be a number of seconds' }).min(0, 'must be at least 0').max(MAX_WAIT_SECONDS, `must be at most ${MAX_WAIT_SECONDS}`).optional(),
  status: z.enum(ORDER_STATUSES, { error: `must be one of ${ORDER_STATUSES.join(', ')}` }).optional(),
});

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

/** The caller the onRequest hook below authenticated (it answers 401 before any route here runs). */
function callerOf(request: FastifyRequest): OrdersCaller {
  if (!request.ordersCaller) throw new Error('orders route reached without an authenticated caller');
  return request.ordersCaller;
}

/**
 * The account a request acts for: a user acts for the account of its token (the body may repeat
 * it), a service key for the account the body names.
 */
function actingAccount(caller: OrdersCaller, accountId: string | undefined): string {
  if (caller.kind === 'user') {
    if (accountId !== undefined && accountId !== caller.accountId) {
      throw new HttpError(403, 'forbidden', "This token acts for its own account only; accountId must equal the token's sub.");
    }
    return caller.accountId;
  }
  if (accountId === undefined) throw new HttpError(400, 'invalid_request', 'accountId is required when calling with a service key.');
  return accountId;
}

/** Aborts when the client goes away before its answer was sent (a long-poll then stops waiting). */
function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}

/**
 * `POST /orders`, `GET /orders/:id`, `POST /orders/:id/confirm`, for the order's own account
 * (a user's JWT) or the merchant's backend (a service key).
 */
export default async function orderRoutes(app: FastifyInstance, options: OrderRouteOptions) {
  const { prisma } = app;
  const authenticate = createOrdersAuthenticator(options.auth);
  if (options.auth.apiKeys.length === 0 && !options.auth.jwt) {
    app.log.warn('orders API closed (every request 401): no ORDERS_API_KEYS or ORDERS_JWT_* configured');
  }

  app.decorateRequest('ordersCaller', null);
  app.addHook('onRequest', async (request) => {
    const outcome = await authenticate(request.headers.authorization);
    const caller = 'caller' in outcome ? outcome.caller : null;
    // The merchant's backend calls for all its customers from a few addresses: only its
    // per-account limit applies. Everyone else, bad credentials included, counts per address.
    if (request.routeOptions.config.rateLimited && caller?.kind !== 'service') await app.rateLimits.byIp(request);
    if ('failure' in outcome) {
      const challenge = outcome.failure === 'invalid' ? `Bearer realm="orders", error="invalid_token"` : 'Bearer realm="orders"';
      throw new HttpError(401, outcome.failure === 'invalid' ? 'invalid_token' : 'unauthorized', outcome.message, { 'www-authenticate': challenge });
    }
    request.ordersCaller = caller;
  });

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

  app.post('/orders', { config: { rateLimited: true } }, async (request, reply) => {
    const caller = callerOf(request);
    const key = request.headers['idempotency-key'];
    if (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key)) {
      throw new HttpError(400, 'idempotency_key_required', 'The Idempotency-Key header is required (1-255 printable ASCII characters).');
    }
    const parsed = createOrderBody.safeParse(request.body);
    if (!parsed.success) throw new HttpError(400, 'invalid_request', zodMessage(parsed.error));
    const body = parsed.data;
    const accountId = actingAccount(caller, body.accountId);
    // After validation: only requests that can reach Stripe spend an account's budget.
    await app.rateLimits.byAccount(request, accountId);
    const requestHash = createHash('sha256').update(JSON.stringify([accountId, body.amount, body.currency])).digest('hex');

    // The row is created with balance 0 (the worker needs it); only the worker moves its balance.
    await prisma.account.createMany({ data: [{ id: accountId, currency: body.currency }], skipDuplicates: true });
    const account = await prisma.account.findUniqueOrThrow({ where: { id: accountId } });
    // The currency is fixed by the first credit, not the first order: an unpaid order in another
    // currency must not lock the account. The worker settles the currency at the first credit.
    if (account.currency !== body.currency && (await prisma.ledgerEntry.findFirst({ where: { accountId }, select: { id: true } }))) {
      throw new HttpError(400, 'currency_mismatch', `Account ${accountId} holds ${account.currency}; an order in ${body.currency} cannot credit it.`);
    }

    // ON CONFLICT DO NOTHING on (account, idempotency key): of concurrent requests, one inserts.
    const { count } = await prisma.order.createMany({
      data: [{ id: newOrderId(), accountId, amount: body.amount, currency: body.currency, idempotencyKey: key, requestHash }],
      skipDuplicates: true,
    });
    const order = await prisma.order.findUniqueOrThrow({
      where: { accountId_idempotencyKey: { accountId, idempotencyKey: key } },
    });
    if (order.requestHash !== requestHash) {
      throw new HttpError(409, 'idempotency_conflict', 'This Idempotency-Key was already used with a different request body.');
    }
    if (count === 1) app.metrics.ordersCreated.inc();
    const withIntent = await ensurePaymentIntent(order);
    return reply.code(count === 1 ? 201 : 200).send(orderView(withIntent));
  });

  /** The order if the caller may see it; another account's order is "not found" (no existence leak). */
  async function findOrder(request: FastifyRequest, id: string): Promise<Order> {
    const caller = callerOf(request);
    const order = ORDER_ID.test(id) ? await prisma.order.findUnique({ where: { id } }) : null;
    if (!order || (caller.kind === 'user' && order.accountId !== caller.accountId)) {
      throw new HttpError(404, 'order_not_found', 'No order with this id.');
    }
    return order;
  }

  /**
   * Plain polling, or a long-poll: with `wait` and `status`, answers once the status differs from
   * `status` (PostgreSQL notifies every change), or when `wait` seconds have passed.
   */
  app.get<{ Params: { id: string } }>('/orders/:id', async (request, reply) => {
    const query = orderStatusQuery.safeParse(request.query);
    if (!query.success) throw new HttpError(400, 'invalid_request', zodMessage(query.error));
    const { wait, status } = query.data;
    if (!wait || !status) return orderView(await findOrder(request, request.params.id));

    const deadline = Date.now() + wait * 1000;
    const gone = clientGone(reply);
    for (;;) {
      // Watch before reading: a change committed after the read still wakes this request.
      const watch = app.orderStatus.watch(request.params.id, deadline - Date.now(), gone);
      try {
        // Ownership is checked on every read, so another account's order never makes anyone wait.
        const order = await findOrder(request, request.params.id);
        // Shutting down: the connection must not stay open for another request, or closing waits
        // for its keep-alive timeout (idle connections were closed before this answer was sent).
        if (app.orderStatus.closing) reply.header('connection', 'close');
        if (order.status !== status || Date.now() >= deadline || gone.aborted || app.orderStatus.closing) return orderView(order);
        await watch.changed;
      } finally {
        watch.cancel();
      }
    }
  });

  /**
   * The client says it paid. Never a credit here: queue a sync that asks Stripe, whose job id
   * collapses concurrent confirms; the worker applies what Stripe says through the ledger.
   */
  app.post<{ Params: { id: string } }>('/orders/:id/confirm', { config: { rateLimited: true } }, async (request, reply) => {
    const order = await findOrder(request, request.params.id);
    await app.rateLimits.byAccount(request, order.accountId);
    if (!order.paymentIntentId) {
      throw new HttpError(409, 'payment_not_started', 'The order has no PaymentIntent yet; repeat POST /orders with its Idempotency-Key.');
    }
    const jobId = paymentSyncJobId(order.paymentIntentId);
    await addJobOnce(app.queues.paymentSync, 'confirm', { paymentIntentId: order.paymentIntentId, reason: 'confirm' }, paymentSyncJobOptions(jobId, options.jobBackoffMs));
    return reply.code(202).send(orderView(order));
  });
}
