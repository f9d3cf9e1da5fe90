import { withTimeout } from '@ledger/shared';
import { Job, type JobsOptions, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { HttpError } from './errors.js';

/** How long a request waits for Redis before answering 503. */
const ENQUEUE_TIMEOUT_MS = 1_000;

/**
 * Adds a job with a fixed id and tells whether that id was already queued, in ONE round trip: a
 * MULTI holding `EXISTS <job key>` and BullMQ's own add script, which Redis runs back to back, so
 * no other client's add can fall between the check and the add. Throws a 503 {@link HttpError}
 * when Redis cannot take the job in time (the caller must then not acknowledge anything). `redis`
 * is the queue's connection.
 */
export async function addJobOnce(
  redis: Redis,
  queue: Queue,
  name: string,
  data: unknown,
  options: JobsOptions & { jobId: string },
): Promise<{ duplicate: boolean }> {
  const addAtomically = async () => {
    // BullMQ's client (its scripts defined on it); a MULTI on it takes its add script.
    const transaction = (await queue.backend.client).multi();
    // EXISTS through runCommand: BullMQ's transaction type names only the commands BullMQ uses.
    transaction.runCommand('exists', [queue.toKey(options.jobId)]);
    // The script's own promise settles with exec(); its outcome is read from exec's results.
    new Job(queue, name, data, options, options.jobId).addJob(transaction).catch(() => undefined);
    const results = (await transaction.exec()) as [Error | null, unknown][] | null;
    if (!results) throw new Error('the transaction was discarded');
    const failed = results.find(([error]) => error);
    if (failed) throw failed[0];
    return { duplicate: results[0]?.[1] === 1 };
  };
  try {
    return await withTimeout(addAtomically(), ENQUEUE_TIMEOUT_MS, `enqueue timed out after ${ENQUEUE_TIMEOUT_MS} ms`);
  } catch (error) {
    throw new HttpError(503, 'queue_unavailable', `The job could not be durably queued (${error instanceof Error ? error.message : 'unknown error'}); retry later.`);
  }
}

/**
 * Moves a job that failed for good back to waiting, with fresh attempts. Returns whether it did.
 * Throws a 503 {@link HttpError} when Redis does not answer in time.
 */
export async function requeueIfFailed(queue: Queue, jobId: string): Promise<boolean> {
  const requeue = async () => {
    const job = await queue.getJob(jobId);
    if (!job || !(await job.isFailed())) return false;
    await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    return true;
  };
  try {
    return await withTimeout(requeue(), ENQUEUE_TIMEOUT_MS, `requeue timed out after ${ENQUEUE_TIMEOUT_MS} ms`);
  } catch (error) {
    throw new HttpError(503, 'queue_unavailable', `The failed job could not be queued again (${error instanceof Error ? error.message : 'unknown error'}); retry later.`);
  }
}
