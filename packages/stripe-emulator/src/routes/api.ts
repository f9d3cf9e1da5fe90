import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { StripeApiError, resourceMissing } from '../errors.js';
import { parseStripeParams } from '../form.js';
import type { IdempotencyCache, StoredResponse } from '../idempotency.js';
import { booleanParam, integerParam, metadataParam, parseParams } from '../params.js';
import type { PaymentFlows } from '../payments.js';
import type { EmulatorStore, EventListQuery } from '../store.js';
import type { ThinEventLog } from '../thin-events.js';
import { apiVersionSchema } from '../versions.js';

/** What the `/v1` routes work on. */
export interface ApiRoutesOptions {
  store: EmulatorStore;
  flows: PaymentFlows;
  idempotency: IdempotencyCache;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The secret key of a `/v1` request, once authenticated. */
    stripeApiKey: string;
  }
}

const createPaymentIntentSchema = z.strictObject({
  amount: integerParam.pipe(
    z.int().min(1, 'This value must be greater than or equal to 1.').max(99_999_999, 'Amount must be no more than 99999999.'),
  ),
  currency: z
    .string()
    .regex(/^[A-Za-z]{3}$/, { error: (issue) => `Invalid currency: ${String(issue.input)}.` })
    .transform((value) => value.toLowerCase()),
  metadata: metadataParam.optional(),
  automatic_payment_methods: z
    .strictObject({ enabled: booleanParam, allow_redirects: z.enum(['always', 'never']).optional() })
    .transform(({ enabled, allow_redirects }) => (allow_redirects ? { enabled, allow_redirects } : { enabled }))
    .optional(),
  capture_method: z.enum(['automatic', 'automatic_async', 'manual']).optional(),
});

const retrieveSchema = z.strictObject({});

const cancelPaymentIntentSchema = z.strictObject({
  cancellation_reason: z.enum(['abandoned', 'duplicate', 'fraudulent', 'requested_by_customer']).optional(),
});

const listEventsSchema = z
  .strictObject({
    limit: integerParam.pipe(z.int().min(1).max(100)).optional(),
    starting_after: z.string().min(1).optional(),
    type: z.string().min(1).optional(),
    types: z.array(z.string().min(1)).min(1).max(20).optional(),
    created: z
      .union([
        integerParam.transform((created) => ({ gte: created, lte: created })),
        z.strictObject({
          gt: integerParam.optional(),
          gte: integerParam.optional(),
          lt: integerParam.optional(),
          lte: integerParam.optional(),
        }),
      ])
      .optional(),
    delivery_success: booleanParam.optional(),
  })
  .refine((query) => !(query.type && query.types), { error: 'You may only specify one of these parameters: type, types.' });

const listRefundsSchema = z.strictObject({
  limit: integerParam.pipe(z.int().min(1).max(100)).optional(),
  starting_after: z.string().min(1).optional(),
  charge: z.string().min(1).optional(),
  payment_intent: z.string().min(1).optional(),
});

/** Objects retrievable by id, Stripe's path → the `object` value the id must name. */
const RETRIEVABLE: ReadonlyArray<{ path: string; object: string; param: string }> = [
  { path: '/payment_intents/:id', object: 'payment_intent', param: 'intent' },
  { path: '/charges/:id', object: 'charge', param: 'charge' },
  { path: '/refunds/:id', object: 'refund', param: 'refund' },
  { path: '/disputes/:id', object: 'dispute', param: 'dispute' },
  { path: '/balance_transactions/:id', object: 'balance_transaction', param: 'id' },
  { path: '/checkout/sessions/:id', object: 'checkout.session', param: 'session' },
  { path: '/events/:id', object: 'event', param: 'id' },
];

/**
 * Stripe's `/v1` API, the part this system calls and no more: create, retrieve and cancel
 * PaymentIntents, list and retrieve events and refunds, retrieve charges, disputes, balance
 * transactions and Checkout Sessions. Objects are rendered at the request's `Stripe-Version`
 * (default the account's); events at their own `api_version`. Register with `prefix: '/v1'`.
 */
export async function apiRoutes(app: FastifyInstance, options: ApiRoutesOptions): Promise<void> {
  const { store, flows, idempotency } = options;
  const versionOf = (request: FastifyRequest): string => requestVersion(request, store);

  // Stripe's v1 API takes form-encoded bodies only (https://docs.stripe.com/api#requests).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => {
    done(null, parseStripeParams(typeof body === 'string' ? body : body.toString('utf8')));
  });

  app.decorateRequest('stripeApiKey', '');
  app.addHook('onRequest', async (request, reply) => {
    reply.header('Stripe-Version', versionOf(request));
    const idempotencyKey = stringHeader(request, 'idempotency-key');
    if (idempotencyKey !== undefined) reply.header('Idempotency-Key', idempotencyKey);
    request.stripeApiKey = authenticate(request);
  });

  /**
   * Runs a POST under Stripe's idempotency rules: the same key and parameters replay the stored
   * response (Idempotent-Replayed), other parameters are refused. https://docs.stripe.com/api/idempotent_requests
   */
  function idempotent(request: FastifyRequest, reply: FastifyReply, endpoint: string, execute: () => StoredResponse): FastifyReply {
    const idempotencyKey = stringHeader(request, 'idempotency-key');
    if (idempotencyKey === undefined) return sendStored(reply, execute());
    const response = idempotency.run(
      { apiKey: request.stripeApiKey, idempotencyKey, endpoint, params: request.body ?? {}, requestId: request.id },
      execute,
    );
    if (response.replayOf !== undefined) {
      reply.header('Idempotent-Replayed', 'true').header('Original-Request', response.replayOf);
    }
    return sendStored(reply, response);
  }

  app.post('/payment_intents', async (request, reply) =>
    idempotent(request, reply, `POST ${request.routeOptions.url ?? request.url}`, () => {
      const params = parseParams(createPaymentIntentSchema, request.body);
      const paymentIntent = flows.createPaymentIntent(
        {
          amount: params.amount,
          currency: params.currency,
          metadata: params.metadata ?? {},
          automatic_payment_methods: params.automatic_payment_methods,
          capture_method: params.capture_method,
        },
        { id: request.id, idempotency_key: stringHeader(request, 'idempotency-key') ?? null },
      );
      return { statusCode: 200, body: JSON.stringify(store.render(paymentIntent, versionOf(request))) };
    }),
  );

  // https://docs.stripe.com/api/payment_intents/cancel: only before the payment succeeded.
  app.post<{ Params: { id: string } }>('/payment_intents/:id/cancel', async (request, reply) =>
    idempotent(request, reply, `POST /v1/payment_intents/${request.params.id}/cancel`, () => {
      const params = parseParams(cancelPaymentIntentSchema, request.body ?? {});
      flows.cancel(request.params.id, params);
      const paymentIntent = store.paymentIntents.get(request.params.id);
      return { statusCode: 200, body: JSON.stringify(paymentIntent ? store.render(paymentIntent, versionOf(request)) : {}) };
    }),
  );

  app.get('/events', async (request) => {
    const query = parseParams(listEventsSchema, request.query);
    const listQuery: EventListQuery = {
      limit: query.limit ?? 10,
      startingAfter: query.starting_after,
      types: query.types ?? (query.type === undefined ? undefined : [query.type]),
      created: query.created ?? {},
      deliverySuccess: query.delivery_success,
    };
    return { object: 'list', url: '/v1/events', ...store.listEvents(listQuery) };
  });

  // https://docs.stripe.com/api/refunds/list
  app.get('/refunds', async (request) => {
    const query = parseParams(listRefundsSchema, request.query);
    const page = store.listRefunds({
      limit: query.limit ?? 10,
      startingAfter: query.starting_after,
      charge: query.charge,
      paymentIntent: query.payment_intent,
    });
    return { object: 'list', url: '/v1/refunds', ...page };
  });

  for (const { path, object, param } of RETRIEVABLE) {
    app.get<{ Params: { id: string } }>(path, async (request) => {
      parseParams(retrieveSchema, request.query);
      const found = store.findObject(request.params.id);
      if (found?.object !== object) throw resourceMissing(object, request.params.id, param);
      // Events are already rendered at their own version.
      return object === 'event' ? found : store.render(found, versionOf(request));
    });
  }
}

/** What the `/v2` routes work on. */
export interface V2RoutesOptions {
  store: EmulatorStore;
  thinEvents: ThinEventLog;
}

/**
 * Stripe's `/v2` API, only `GET /v2/core/events/:id` (what `stripe.v2.core.events.retrieve` and a
 * thin notification's `fetchEvent()` call): the full v2 event with its `data`. Register with `prefix: '/v2'`.
 */
export async function v2Routes(app: FastifyInstance, { store, thinEvents }: V2RoutesOptions): Promise<void> {
  app.decorateRequest('stripeApiKey', '');
  app.addHook('onRequest', async (request, reply) => {
    reply.header('Stripe-Version', requestVersion(request, store));
    request.stripeApiKey = authenticate(request);
  });

  app.get<{ Params: { id: string } }>('/core/events/:id', async (request) => {
    const event = thinEvents.find(request.params.id);
    if (!event) throw resourceMissing('event', request.params.id, 'id');
    return event;
  });
}

/** The request's `Stripe-Version` if it names a version, else the account's default. */
function requestVersion(request: FastifyRequest, store: EmulatorStore): string {
  const header = stringHeader(request, 'stripe-version');
  return header !== undefined && apiVersionSchema.safeParse(header).success ? header : store.apiVersion;
}

function sendStored(reply: FastifyReply, response: StoredResponse): FastifyReply {
  return reply.code(response.statusCode).type('application/json; charset=utf-8').send(response.body);
}

function stringHeader(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * Stripe takes the secret key as a bearer token or as the basic-auth user name
 * (https://docs.stripe.com/api/authentication). Any `sk_`/`rk_` key is accepted.
 */
function authenticate(request: FastifyRequest): string {
  const header = request.headers.authorization ?? '';
  const [scheme = '', credentials = ''] = header.split(' ');
  const key =
    scheme.toLowerCase() === 'bearer'
      ? credentials
      : scheme.toLowerCase() === 'basic'
        ? (Buffer.from(credentials, 'base64').toString('utf8').split(':')[0] ?? '')
        : '';
  if (/^(sk|rk)_[A-Za-z0-9_]+$/.test(key)) return key;
  throw new StripeApiError(401, {
    type: 'invalid_request_error',
    message:
      key === ''
        ? "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/."
        : `Invalid API Key provided: ${key.slice(0, 8)}${'*'.repeat(Math.max(0, key.length - 12))}${key.slice(-4)}`,
  });
}
