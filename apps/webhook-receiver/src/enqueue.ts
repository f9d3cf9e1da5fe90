import { withTimeout } from '@ledger/shared';
import type { JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { HttpError } from './errors.js';

/** How long a request waits for Redis before answering 503. */
const ENQUEUE_TIMEOUT_MS = 1_000;

/**
 * Adds a job with a fixed id and tells whether that id was already queued. BullMQ's add returns the
 * existing job's id without a flag, so compare the stored creation timestamp with ours: a
 * different one means an earlier add won. Throws a 503 {@link HttpError} when Redis cannot take the
 * job in time (the caller must then not acknowledge anything). `redis` is the queue's connection.
 */
export async function addJobOnce(
  redis: Redis,
  queue: Queue,
  name: string,
  data: unknown,
  options: JobsOptions & { jobId: string },
): Promise<{ duplicate: boolean }> {
  const addAndCheck = async () => {
    const job = await queue.add(name, data, options);
    const storedTimestamp = await redis.hget(queue.toKey(options.jobId), 'timestamp');
    return { duplicate: storedTimestamp !== null && storedTimestamp !== String(job.timestamp) };
  };
  try {
    return await withTimeout(addAndCheck(), ENQUEUE_TIMEOUT_MS, `enqueue timed out after ${ENQUEUE_TIMEOUT_MS} ms`);
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
