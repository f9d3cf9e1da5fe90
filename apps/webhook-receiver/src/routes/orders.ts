import { ACCOUNT_ID, MAX_AMOUNT, ORDER_STATUSES, normalizeCurrency } from '@ledger/shared';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { HttpError } from '../errors.js';
import { bodyRefused, errorResponse, internalError, orderSchema, unavailable, validationError } from '../http-schemas.js';
import { authenticateCallers, callerOf, callerSecurity, rateLimited, unauthorized } from '../api-callers.js';
import type { OrdersAuthConfig, OrdersCaller } from '../orders-auth.js';

export interface OrderRouteOptions {
  auth: OrdersAuthConfig;
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
  wait: z.coerce
    .number({ error: 'must be a number of seconds' })
    .min(0, 'must be at least 0')
    .max(MAX_WAIT_SECONDS, `must be at most ${MAX_WAIT_SECONDS}`)
    .optional(),
  status: z.enum(ORDER_STATUSES, { error: `must be one of ${ORDER_STATUSES.join(', ')}` }).optional(),
});

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
const idempotencyKeyHeader = z.looseObject({
  'idempotency-key': z
    .string()
    .regex(IDEMPOTENCY_KEY)
    .describe("The client's key for this order (1-255 printable ASCII characters); per account"),
});
const orderIdParams = z.object({ id: z.string().describe('The order id (`ord_…`)') });

const ordersOperation = (operationId: string, summary: string) => ({ tags: ['orders'], operationId, summary, security: callerSecurity });
const orderOperation = (operationId: string, summary: string) => ({ ...ordersOperation(operationId, summary), params: orderIdParams });

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
export default async function orderRoutes(fastify: FastifyInstance, options: OrderRouteOptions) {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  if (options.auth.apiKeys.length === 0 && !options.auth.jwt) {
    app.log.warn('orders API closed (every request 401): no ORDERS_API_KEYS or ORDERS_JWT_* configured');
  }

  authenticateCallers(app, options.auth);

  const createOrderOptions = {
    config: { rateLimited: true },
    schema: {
      ...ordersOperation('createOrder', 'Create a top-up order and its PaymentIntent'),
      description:
        "accountId is required with a service key; a user may leave it out, and if given it must equal the token's sub (403 otherwise). Idempotency keys are per account. The currency of an account is fixed by its first credited order (400 currency_mismatch after that).",
      headers: idempotencyKeyHeader,
      body: createOrderBody,
      response: {
        201: orderSchema.meta({ description: 'Created' }),
        200: orderSchema.meta({ description: 'The order this Idempotency-Key created before' }),
        400: errorResponse(
          'Invalid body (`invalid_request`), no usable Idempotency-Key (`idempotency_key_required`), malformed JSON, or an account holding another currency (`currency_mismatch`)',
        ),
        401: unauthorized,
        403: errorResponse("A user's token naming another account"),
        409: errorResponse('This Idempotency-Key was used with a different body'),
        ...bodyRefused,
        429: rateLimited,
        502: errorResponse('Stripe refused to create the PaymentIntent'),
        503: errorResponse('Stripe, PostgreSQL or Redis unreachable: retry with the same Idempotency-Key'),
        ...internalError,
      },
    },
    // The key is checked after the body; without a usable one the answer names it.
    schemaErrorFormatter: (errors: Parameters<typeof validationError>[0], part: string) =>
      part === 'headers'
        ? new HttpError(400, 'idempotency_key_required', 'The Idempotency-Key header is required (1-255 printable ASCII characters).')
        : validationError(errors, part),
  } as const;
  app.post('/orders', createOrderOptions, async (request, reply) => {
    const key = request.headers['idempotency-key'];
    const body = request.body;
    const accountId = actingAccount(callerOf(request), body.accountId);
    // After validation: only requests that can reach Stripe spend an account's budget.
    await app.rateLimits.byAccount(request, accountId);
    const { order, created } = await app.ordersService.create(accountId, body, key);
    return reply.code(created ? 201 : 200).send(order);
  });

  /**
   * Plain polling, or a long-poll: with `wait` and `status`, answers once the status differs from
   * `status` (PostgreSQL notifies every change), or when `wait` seconds have passed.
   */
  const getOrderOptions = {
    schema: {
      ...orderOperation('getOrder', 'The order, as clients poll or long-poll it'),
      querystring: orderStatusQuery,
      response: {
        200: orderSchema,
        400: errorResponse('Invalid `wait` or `status`'),
        401: unauthorized,
        404: errorResponse("Unknown order, or another account's"),
        ...unavailable,
        ...internalError,
      },
    },
  } as const;
  app.get('/orders/:id', getOrderOptions, async (request, reply) => {
    const { wait, status } = request.query;
    const caller = callerOf(request);
    if (!wait || !status) return app.ordersService.find(caller, request.params.id);
    const order = await app.ordersService.waitForChange(caller, request.params.id, status, wait, clientGone(reply));
    // Shutting down: the connection must not stay open for another request, or closing waits
    // for its keep-alive timeout (idle connections were closed before this answer was sent).
    if (app.orderStatus.closing) reply.header('connection', 'close');
    return order;
  });

  /** The client says it paid. Never a credit here: a sync job asks Stripe (`ordersService.confirm`). */
  const confirmOrderOptions = {
    config: { rateLimited: true },
    schema: {
      ...orderOperation('confirmOrder', 'The client finished paying: check with Stripe (never a credit in the request)'),
      response: {
        202: orderSchema.meta({ description: 'A check with Stripe is queued' }),
        400: errorResponse('Malformed JSON body'),
        401: unauthorized,
        404: errorResponse("Unknown order, or another account's"),
        409: errorResponse('The order has no PaymentIntent yet (`payment_not_started`)'),
        ...bodyRefused,
        429: rateLimited,
        ...unavailable,
        ...internalError,
      },
    },
  } as const;
  app.post('/orders/:id/confirm', confirmOrderOptions, async (request, reply) => {
    const order = await app.ordersService.find(callerOf(request), request.params.id);
    await app.rateLimits.byAccount(request, order.accountId);
    await app.ordersService.confirm(order);
    return reply.code(202).send(order);
  });
}
