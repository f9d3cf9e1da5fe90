import { randomUUID } from 'node:crypto';
import { listReviews, reviewDetailSchema, reviewSummarySchema, showReview } from '@ledger/ledger';
import { JOBS, ORDER_STATUSES } from '@ledger/shared';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { addJob } from '../tracing.js';
import { HttpError } from '../errors.js';
import { bodyRefused, errorResponse, internalError, unavailable } from '../http-schemas.js';
import { adminOperation, adminUnauthorized, requireAdmin } from '../plugins/admin-auth.js';

export interface ReviewRouteOptions {
  adminToken: string | undefined;
  /** How long a resolve request waits for the worker before answering 202. */
  resolveWaitMs?: number;
}

const resolveBody = JOBS.reviews.schema
  .omit({ orderId: true, resolvedBy: true })
  .extend({ resolvedBy: z.string().min(1).max(200).optional() })
  .strict();
const orderIdParams = z.object({ orderId: z.string().describe('The order id (`ord_…`)') });
const orderNotFound = errorResponse('No order with this id');
const reviewOperation = (operationId: string, summary: string) => ({ ...adminOperation(operationId, summary), params: orderIdParams });

/** What the worker answers for a resolution it applied. */
const resolvedSchema = z
  .object({
    outcome: z.literal('resolved'),
    resolutionId: z.string(),
    amount: z.number().int().describe('What the resolution posted (signed minor units; 0 for a dismissal)'),
    heldFacts: z.number().int(),
    status: z.enum(ORDER_STATUSES).describe('The order status after the resolution'),
  })
  .meta({ description: 'Resolved' });

const resolveSchema = {
  ...reviewOperation('resolveReview', 'Settle an order under review (credit or dismiss), as `npm run review -- resolve`'),
  body: resolveBody,
  response: {
    200: resolvedSchema,
    202: z
      .object({ queued: z.literal(true), jobId: z.string(), message: z.string() })
      .meta({ description: 'The worker has not answered in time; it applies the resolution (see GET /admin/reviews/{orderId})' }),
    400: errorResponse('Invalid body, or a resolution the worker refused (`resolution_refused`)'),
    401: adminUnauthorized,
    404: orderNotFound,
    409: errorResponse('The order is not under review (`not_under_review`)'),
    ...bodyRefused,
    ...unavailable,
    ...internalError,
  },
};

/**
 * `GET /admin/reviews`, `GET /admin/reviews/:orderId`, `POST /admin/reviews/:orderId/resolve` — the
 * same as `npm run review`. The receiver never writes money: a resolution is queued for the worker,
 * and the answer waits for its result (exactly once is decided in PostgreSQL by the worker).
 */
export default async function reviewRoutes(fastify: FastifyInstance, options: ReviewRouteOptions) {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', requireAdmin(options.adminToken));
  const waitMs = options.resolveWaitMs ?? 10_000;

  const listOptions = {
    schema: {
      ...adminOperation('listReviews', 'Orders under review, oldest first'),
      response: {
        200: z.array(reviewSummarySchema).meta({ description: 'Orders under review' }),
        401: adminUnauthorized,
        ...unavailable,
        ...internalError,
      },
    },
  };
  app.get('/admin/reviews', listOptions, async () => listReviews(app.prisma));

  const showOptions = {
    schema: {
      ...reviewOperation('getReview', 'One order under review: held facts, resolutions, ledger'),
      response: {
        200: reviewDetailSchema.meta({ description: 'The order and what is held for it' }),
        401: adminUnauthorized,
        404: orderNotFound,
        ...unavailable,
        ...internalError,
      },
    },
  };
  app.get('/admin/reviews/:orderId', showOptions, async (request) => {
    const detail = await showReview(app.prisma, request.params.orderId);
    if (!detail) throw new HttpError(404, 'order_not_found', 'No order with this id.');
    return detail;
  });

  app.post('/admin/reviews/:orderId/resolve', { schema: resolveSchema }, async (request, reply) => {
    const { resolvedBy, ...decision } = request.body;
    if (decision.decision === 'dismiss' && decision.amount !== undefined)
      throw new HttpError(400, 'invalid_request', 'amount goes with credit only');
    const jobId = `review-${randomUUID()}`;
    const queue = app.queues.reviews;
    await addJob(app.queues, 'reviews', {
      name: 'resolve',
      jobId,
      data: { orderId: request.params.orderId, ...decision, resolvedBy: resolvedBy ?? 'admin-api' },
    });

    const deadline = Date.now() + waitMs;
    while (Date.now() < deadline) {
      // The state first, then the job: a job read just before the worker finished it has no result
      // yet (answered 500 under load before this order).
      const state = await queue.getJobState(jobId);
      const job = state === 'completed' || state === 'failed' ? await queue.getJob(jobId) : undefined;
      if (job && state === 'completed') {
        const result = job.returnvalue as { outcome: string; status?: string };
        if (result.outcome === 'unknown_order') throw new HttpError(404, 'order_not_found', 'No order with this id.');
        if (result.outcome === 'not_under_review')
          throw new HttpError(409, 'not_under_review', `The order is not under review (status ${result.status}).`);
        return reply.code(200).send(resolvedSchema.parse(result));
      }
      if (job && state === 'failed') throw new HttpError(400, 'resolution_refused', job.failedReason || 'The resolution was refused.');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return reply.code(202).send({ queued: true, jobId, message: 'A worker applies the resolution; see GET /admin/reviews/:orderId.' });
  });
}
