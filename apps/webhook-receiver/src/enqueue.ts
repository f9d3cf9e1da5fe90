import { jobOptions, withTimeout, type JobData, type JobKind, type JobQueues } from '@ledger/shared';
import { Job, type Queue } from 'bullmq';
import { HttpError } from './errors.js';

/** How long a request waits for Redis before answering 503. */
const ENQUEUE_TIMEOUT_MS = 1_000;

let lastTimestamp = 0;

/**
 * The creation time of the next job this process adds: now, but never a millisecond this process
 * already used. Whether an add won is told by the timestamp stored in the job, so two adds of one id
 * in the same millisecond (50 concurrent deliveries of one event) must not carry the same one.
 * Two processes adding one id in the same millisecond can still both answer "not a duplicate" (the
 * job itself is still added once); that only affects the `duplicate` flag and its metric.
 */
function nextTimestamp(): number {
  lastTimestamp = Math.max(Date.now(), lastTimestamp + 1);
  return lastTimestamp;
}

/** One job of a kind in the catalog: its payload type and its options come from there. */
export interface CatalogJob<K extends JobKind> {
  name: string;
  jobId: string;
  data: JobData<K>;
  /** Base delay of its retries instead of the catalog's (tests shorten it). */
  backoffMs?: number | undefined;
}

/**
 * Adds a job of kind `kind` (its queue, payload type and options from the job catalog) with a fixed
 * id and tells whether that id was already queued, usually in one round trip: BullMQ's add
 * script and an `HGET <job> timestamp` are written back to back on one connection, so Redis runs
 * the read right after the add (a second round trip when that read finds no job: Redis had
 * forgotten the scripts and ioredis re-sent the add behind the read, which is then read again).
 * A timestamp other than ours means an earlier add won
 * (BullMQ's add returns the existing id without saying so). No MULTI: ioredis copies every defined
 * script onto each pipeline it builds, which cost more CPU than the second round trip it saved.
 * Throws a 503 {@link HttpError} when Redis cannot take the job in time (the caller must then not
 * acknowledge anything).
 */
export async function addJobOnce<K extends JobKind>(
  queues: JobQueues,
  kind: K,
  job: CatalogJob<K>,
): Promise<{ duplicate: boolean; failed: boolean }> {
  const queue: Queue = queues[kind];
  const options = { ...jobOptions(kind, job.jobId, job.backoffMs), timestamp: nextTimestamp() };
  const addAtomically = async () => {
    // BullMQ's own client (its scripts are defined on it); resolved at once after the first call.
    const client = await queue.backend.client;
    const bullJob = new Job(queue, job.name, job.data, options, options.jobId);
    // Both commands are issued before anything is awaited: nothing can come between them here.
    const added = bullJob.addJob(client);
    const stored = client.hget(queue.toKey(options.jobId), 'timestamp');
    // In the same round trip: whether the job already there failed for good (a resend must rerun it).
    const failedScore = client.zscore(queue.toKey('failed'), options.jobId);
    let [, timestamp, failed] = await Promise.all([added, stored, failedScore]);
    if (timestamp === null) {
      // The job was not there yet when the read ran: ioredis re-sends a script Redis does not know
      // (NOSCRIPT: after a restart or a failover) as EVAL behind the commands that followed it.
      // The add has run now; read again (a second round trip, only in that case).
      [timestamp, failed] = await Promise.all([
        client.hget(queue.toKey(options.jobId), 'timestamp'),
        client.zscore(queue.toKey('failed'), options.jobId),
      ]);
    }
    const duplicate = timestamp !== String(bullJob.timestamp);
    return { duplicate, failed: duplicate && failed !== null };
  };
  try {
    return await withTimeout(addAtomically(), ENQUEUE_TIMEOUT_MS, `enqueue timed out after ${ENQUEUE_TIMEOUT_MS} ms`);
  } catch (error) {
    throw new HttpError(
      503,
      'queue_unavailable',
      `The job could not be durably queued (${error instanceof Error ? error.message : 'unknown error'}); retry later.`,
    );
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
    throw new HttpError(
      503,
      'queue_unavailable',
      `The failed job could not be queued again (${error instanceof Error ? error.message : 'unknown error'}); retry later.`,
    );
  }
}
