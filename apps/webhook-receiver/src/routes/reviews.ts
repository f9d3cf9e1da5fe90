import { randomUUID } from 'node:crypto';
import { listReviews, reviewResolutionJobOptions, reviewResolutionJobSchema, showReview } from '@ledger/shared';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { addJobOnce } from '../enqueue.js';
import { HttpError } from '../errors.js';
import { requireAdmin } from '../plugins/admin-auth.js';

export interface ReviewRouteOptions {
  adminToken: string | undefined;
  /** How long a resolve request waits for the worker before answering 202. */
  resolveWaitMs?: number;
}

const resolveBody = reviewResolutionJobSchema.omit({ orderId: true, resolvedBy: true }).extend({ resolvedBy: z.string().min(1).max(200).optional() }).strict();

/**
 * `GET /admin/reviews`, `GET /admin/reviews/:orderId`, `POST /admin/reviews/:orderId/resolve` — the
 * same as `npm run review`. The receiver never writes money: a resolution is queued for the worker,
 * and the answer waits for its result (exactly once is decided in PostgreSQL by the worker).
 */
export default async function reviewRoutes(app: FastifyInstance, options: ReviewRouteOptions) {
  app.addHook('onRequest', requireAdmin(options.adminToken));
  const waitMs = options.resolveWaitMs ?? 10_000;

  app.get('/admin/reviews', async () => listReviews(app.prisma));

  app.get<{ Params: { orderId: string } }>('/admin/reviews/:orderId', async (request) => {
    const detail = await showReview(app.prisma, request.params.orderId);
    if (!detail) throw new HttpError(404, 'order_not_found', 'No order with this id.');
    return detail;
  });

  app.post<{ Params: { orderId: string } }>('/admin/reviews/:orderId/resolve', async (request, reply) => {
    const parsed = resolveBody.safeParse(request.body ?? {});
    if (!parsed.success) {
      throw new HttpError(400, 'invalid_request', parsed.error.issues.map((issue) => `${issue.path.join('.') || 'body'} ${issue.message}`).join('; '));
    }
    const { resolvedBy, ...decision } = parsed.data;
    if (decision.decision === 'dismiss' && decision.amount !== undefined) throw new HttpError(400, 'invalid_request', 'amount goes with credit only');
    const jobId = `review-${randomUUID()}`;
    const queue = app.queues.reviews;
    await addJobOnce(queue, 'resolve', { orderId: request.params.orderId, ...decision, resolvedBy: resolvedBy ?? 'admin-api' }, reviewResolutionJobOptions(jobId));

    const deadline = Date.now() + waitMs;
    while (Date.now() < deadline) {
      const job = await queue.getJob(jobId);
      const state = await job?.getState();
      if (job && state === 'completed') {
        const result = job.returnvalue as { outcome: string; status?: string };
        if (result.outcome === 'unknown_order') throw new HttpError(404, 'order_not_found', 'No order with this id.');
        if (result.outcome === 'not_under_review') throw new HttpError(409, 'not_under_review', `The order is not under review (status ${result.status}).`);
        return reply.code(200).send(result);
      }
      if (job && state === 'failed') throw new HttpError(400, 'resolution_refused', job.failedReason || 'The resolution was refused.');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return reply.code(202).send({ queued: true, jobId, message: 'A worker applies the resolution; see GET /admin/reviews/:orderId.' });
  });
}
