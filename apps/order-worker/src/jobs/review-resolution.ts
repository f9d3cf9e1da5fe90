import { UnrecoverableError } from 'bullmq';
import { resolveReview, ReviewRequestError, type ResolveResult } from '../operations/review.js';
import { readJob, type JobLog, type OrderWorkerDeps } from './job-kit.js';

/** A `reviews` job: applies an operator's resolution queued by the admin API (`npm run review` calls resolveReview itself). */
export async function applyReviewResolution(deps: Pick<OrderWorkerDeps, 'prisma'>, data: unknown, log: JobLog): Promise<ResolveResult> {
  const request = readJob('reviews', data);
  try {
    const result = await resolveReview(deps.prisma, request);
    log.info({ orderId: request.orderId, decision: request.decision, resolvedBy: request.resolvedBy, result }, 'review resolution');
    return result;
  } catch (error) {
    // The operator sees why at once; retrying the same request cannot help.
    if (error instanceof ReviewRequestError) throw new UnrecoverableError(error.message);
    throw error;
  }
}
