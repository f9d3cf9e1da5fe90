import { ORDER_STATUSES } from '@ledger/shared';
import type { SwaggerTransformObject } from '@fastify/swagger';
import { jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { HttpError } from './errors.js';

/**
 * Shapes the routes share. Each route's zod schemas validate its input, serialize its answers
 * (unknown keys are dropped, so a database row never leaks a column) and make the OpenAPI document
 * at /docs: nothing here is written twice. Schemas registered with an `id` become components.
 */

/** Every error answer: `{error, message}` (the contract), with the request id to find the log line. */
export const errorSchema = z
  .object({
    error: z.string().describe('Machine-readable code, e.g. `invalid_signature`.'),
    message: z.string().describe('A human sentence.'),
    requestId: z.string().optional(),
  })
  .meta({ id: 'Error' });

/** The order as the contract shows it; the route returns the row and this schema picks the fields. */
export const orderSchema = z
  .object({
    id: z.string().describe('Unguessable order id (`ord_…`).'),
    accountId: z.string(),
    amount: z.number().int().describe('Minor units (cents for USD).'),
    currency: z.string().describe('ISO 4217, lower case.'),
    status: z.enum(ORDER_STATUSES),
    paymentIntentId: z.string().nullable(),
    clientSecret: z
      .string()
      .nullable()
      .describe(
        "Give it to Stripe.js to confirm the payment on the client. Only the order's own account (or the merchant's backend with a service key) ever sees an order.",
      ),
    createdAt: z.date(),
    updatedAt: z.date(),
  })
  .meta({ id: 'Order', description: 'The order' });

/** A documented error answer: its description says when a route gives it. */
export function errorResponse(description: string, headers?: Record<string, { description: string; type: 'string' | 'integer' }>) {
  return errorSchema.meta({ description, ...(headers ? { headers } : {}) });
}

/** Every route can fail on our side; the body is generic (details go to the log). */
export const internalError = { 500: errorResponse('Something went wrong on our side; nothing was applied') };

/** Routes that read PostgreSQL or write Redis; also any route while the process shuts down. */
export const unavailable = {
  503: errorResponse('PostgreSQL or Redis unreachable (`database_unavailable`, `queue_unavailable`), or shutting down: retry later'),
};

/** What Fastify answers, before any handler, for a JSON body it cannot take. */
export const bodyRefused = {
  413: errorResponse('Body over 64 KiB'),
  415: errorResponse('Content type other than application/json'),
};

/** The route parts Fastify validates, as its schema error formatter names them. */
const PARTS: Record<string, string> = { body: 'body', querystring: 'query', params: 'path', headers: 'headers' };

/**
 * Fastify's schema error formatter: a validation failure is a 400 `invalid_request` whose message
 * names each field (`amount must be positive; currency must be …`), as the contract's error shape wants.
 */
export function validationError(errors: { instancePath?: string; message?: string }[], part: string): HttpError {
  const message = errors
    .map((issue) => `${issue.instancePath?.slice(1).replaceAll('/', '.') || PARTS[part] || part} ${issue.message ?? 'is invalid'}`)
    .join('; ');
  return new HttpError(400, 'invalid_request', message);
}

/**
 * The document's components: fastify-type-provider-zod writes every registered schema twice (as
 * read and as written, `Order` and `OrderInput`); only those a route refers to are kept.
 */
export const documentComponents: SwaggerTransformObject = (input) => {
  const document = jsonSchemaTransformObject(input);
  const schemas: Record<string, unknown> = ('components' in document ? document.components?.schemas : undefined) ?? {};
  const used = new Set<string>();
  let text = JSON.stringify(document.paths ?? {});
  for (let found = true; found; ) {
    found = false;
    for (const [name, schema] of Object.entries(schemas)) {
      if (used.has(name) || !text.includes(`"#/components/schemas/${name}"`)) continue;
      used.add(name);
      text += JSON.stringify(schema);
      found = true;
    }
  }
  for (const name of Object.keys(schemas)) if (!used.has(name)) delete schemas[name];
  return document;
};
