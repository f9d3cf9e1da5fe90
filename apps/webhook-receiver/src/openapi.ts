import { ORDER_STATUSES } from '@ledger/shared';
import type { OpenAPIV3 } from 'openapi-types';
import { z } from 'zod';
import { createOrderBody, MAX_WAIT_SECONDS } from './routes/orders.js';

const error: OpenAPIV3.SchemaObject = {
  type: 'object',
  required: ['error', 'message'],
  properties: {
    error: { type: 'string', description: 'Machine-readable code, e.g. `invalid_signature`.' },
    message: { type: 'string', description: 'A human sentence.' },
    requestId: { type: 'string' },
  },
};

const order: OpenAPIV3.SchemaObject = {
  type: 'object',
  required: ['id', 'accountId', 'amount', 'currency', 'status', 'paymentIntentId', 'clientSecret', 'createdAt', 'updatedAt'],
  properties: {
    id: { type: 'string', description: 'Unguessable order id (`ord_…`).' },
    accountId: { type: 'string' },
    amount: { type: 'integer', description: 'Minor units (cents for USD).' },
    currency: { type: 'string', description: 'ISO 4217, lower case.' },
    status: { type: 'string', enum: [...ORDER_STATUSES] },
    paymentIntentId: { type: 'string', nullable: true },
    clientSecret: {
      type: 'string',
      nullable: true,
      description: "Give it to Stripe.js to confirm the payment on the client. Only the order's own account (or the merchant's backend with a service key) ever sees an order.",
    },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
};

const errors = (...codes: number[]): OpenAPIV3.ResponsesObject =>
  Object.fromEntries(codes.map((code) => [String(code), { description: 'Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } }]));
const json = (schema: OpenAPIV3.SchemaObject | OpenAPIV3.ReferenceObject, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});
const orderId: OpenAPIV3.ParameterObject = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
const rateLimited: OpenAPIV3.ResponseObject = {
  description: 'Over the per-account or per-address rate limit',
  headers: { 'Retry-After': { description: 'Seconds until the window resets', schema: { type: 'integer' } } },
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
};
const unauthorized: OpenAPIV3.ResponseObject = {
  description: 'No or bad credentials (missing, malformed, expired, forged, wrong issuer or audience)',
  headers: { 'WWW-Authenticate': { description: '`Bearer realm="orders"` (with `error="invalid_token"` for a bad token)', schema: { type: 'string' } } },
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
};
/** End users (a JWT whose `sub` is their account) or the merchant's backend (a service key). */
const ordersSecurity: OpenAPIV3.SecurityRequirementObject[] = [{ userJwt: [] }, { serviceKey: [] }];

/** The OpenAPI document of the public routes, served at /docs. The order body schema is the zod one. */
export function openApiDocument(): OpenAPIV3.Document {
  return {
    openapi: '3.0.3',
    info: {
      title: 'Stripe exactly-once ledger',
      version: '0.1.0',
      description: 'Credit top-up orders paid through Stripe; every payment credits its account exactly once. Money is integer minor units.',
    },
    components: {
      schemas: { Error: error, Order: order },
      securitySchemes: {
        admin: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN (basic-auth password also accepted); never an orders credential' },
        userJwt: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            "An end user's JWT: HS256 (ORDERS_JWT_SECRET), RS256/ES256 (ORDERS_JWT_PUBLIC_KEY[_FILE] or ORDERS_JWKS_FILE). `sub` is the account id; `exp` required; `nbf`, and `iss`/`aud` when configured, checked. Acts for its own account only.",
        },
        serviceKey: {
          type: 'http',
          scheme: 'bearer',
          description: "A service key from ORDERS_API_KEYS (the merchant's backend): acts for any account, named in the body's accountId.",
        },
      },
    },
    paths: {
      '/webhooks/stripe': {
        post: {
          summary: 'Stripe event delivery',
          description: 'Verified on the raw body against every configured secret; queued under the event id. 2xx only once durably queued.',
          parameters: [{ name: 'Stripe-Signature', in: 'header', required: true, schema: { type: 'string' } }],
          requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', description: 'A Stripe event' } } } },
          responses: {
            '200': json({ type: 'object', properties: { received: { type: 'boolean' }, duplicate: { type: 'boolean' }, ignored: { type: 'boolean' } } }, 'Accepted (new, duplicate or ignored type)'),
            ...errors(400, 413, 503),
          },
        },
      },
      '/orders': {
        post: {
          summary: 'Create a top-up order and its PaymentIntent',
          description:
            'accountId is required with a service key; a user may leave it out, and if given it must equal the token\'s sub (403 otherwise). Idempotency keys are per account. The currency of an account is fixed by its first credited order (400 currency_mismatch after that).',
          security: ordersSecurity,
          parameters: [{ name: 'Idempotency-Key', in: 'header', required: true, schema: { type: 'string', maxLength: 255 } }],
          requestBody: { required: true, content: { 'application/json': { schema: z.toJSONSchema(createOrderBody, { io: 'input', target: 'openapi-3.0' }) as OpenAPIV3.SchemaObject } } },
          responses: {
            '201': json({ $ref: '#/components/schemas/Order' }, 'Created'),
            '200': json({ $ref: '#/components/schemas/Order' }, 'The order this Idempotency-Key created before'),
            ...errors(400, 403, 409, 502, 503),
            '401': unauthorized,
            '429': rateLimited,
          },
        },
      },
      '/orders/{id}': {
        get: {
          summary: 'The order, as clients poll or long-poll it',
          description: `Without \`wait\` (or without \`status\`) answers at once. With both, answers as soon as the order's status differs from \`status\` (the status the client last saw), or after \`wait\` seconds with the current order; one request instead of a poll loop. Another account's order is 404.`,
          security: ordersSecurity,
          parameters: [
            orderId,
            { name: 'wait', in: 'query', required: false, description: 'Seconds to wait for a change of status', schema: { type: 'number', minimum: 0, maximum: MAX_WAIT_SECONDS } },
            { name: 'status', in: 'query', required: false, description: 'The status the client last saw', schema: { type: 'string', enum: [...ORDER_STATUSES] } },
          ],
          responses: { '200': json({ $ref: '#/components/schemas/Order' }, 'The order'), ...errors(400, 404), '401': unauthorized },
        },
      },
      '/orders/{id}/confirm': {
        post: {
          summary: 'The client finished paying: check with Stripe (never a credit in the request)',
          security: ordersSecurity,
          parameters: [orderId],
          responses: { '202': json({ $ref: '#/components/schemas/Order' }, 'A check is queued'), ...errors(404, 409, 503), '401': unauthorized, '429': rateLimited },
        },
      },
      '/accounts/{id}': {
        get: {
          summary: 'Balance (admin)',
          security: [{ admin: [] }],
          parameters: [orderId],
          responses: {
            '200': json({ type: 'object', properties: { id: { type: 'string' }, currency: { type: 'string' }, balance: { type: 'integer' } } }, 'The account'),
            ...errors(401, 404),
          },
        },
      },
      '/accounts/{id}/ledger': {
        get: {
          summary: 'Ledger entries, oldest first (admin)',
          security: [{ admin: [] }],
          parameters: [orderId],
          responses: {
            '200': json({ type: 'array', items: { type: 'object', properties: { type: { type: 'string' }, amount: { type: 'integer' }, reference: { type: 'string' }, createdAt: { type: 'string', format: 'date-time' } } } }, 'Entries'),
            ...errors(401, 404),
          },
        },
      },
      '/healthz': { get: { summary: 'Liveness', responses: { '200': { description: 'Alive' } } } },
      '/readyz': { get: { summary: 'Readiness: PostgreSQL and Redis reachable', responses: { '200': { description: 'Ready' }, ...errors(503) } } },
      '/metrics': { get: { summary: 'Prometheus metrics', responses: { '200': { description: 'Text exposition format' } } } },
    },
  };
}
