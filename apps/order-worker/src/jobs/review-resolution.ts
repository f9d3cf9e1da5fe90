import { UnrecoverableError } from 'bullmq';
import { resolveReview, ReviewRequestError, type ResolveResult } from '../operations/review.js';
import { readJob, type JobLog, type OrderWorkerDeps } from './job-kit.js';

/** A `reviews` job: applies an operator's resolution queued by the admin API (`npm run review` calls resolveReview itself). */
export async function applyReviewResolution(deps: Pick<OrderWorkerDeps, 'prisma'>, data: unknown, log: JobLog): Promise<ResolveResult> {
  const request = readJob('reviews', data);
  try {
    const result = await resolveReview(deps.prisma, request);
    // The money line's ids, as on every event line: one grep by order or account finds it.
    const accountId = result.outcome === 'unknown_order' ? undefined : result.accountId;
    log.info(
      { orderId: request.orderId, accountId, decision: request.decision, resolvedBy: request.resolvedBy, result },
      'review resolution',
    );
    return result;
  } catch (error) {
    // The operator sees why at once; retrying the same request cannot help.
    if (error instanceof ReviewRequestError) throw new UnrecoverableError(error.message);
    throw error;
  }
}
