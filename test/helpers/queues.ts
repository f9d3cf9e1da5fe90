import { QUEUES, type QueueName } from '@ledger/shared';
import { Queue } from 'bullmq';
import { TEST_REDIS_URL } from './env.js';

/** A producer for one test's prefix (a plain connection: tests want to wait for Redis, not fail). */
export function testQueue(prefix: string, name: QueueName = QUEUES.stripeEvents): Queue {
  return new Queue(name, { connection: { url: TEST_REDIS_URL }, prefix });
}

/** Waits until `count` jobs of the queue have finished (completed + failed), or throws. */
export async function waitForFinished(queue: Queue, count: number, timeoutMs = 30_000): Promise<{ completed: number; failed: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await queue.getJobCounts('completed', 'failed', 'waiting', 'active', 'delayed');
    const completed = counts.completed ?? 0;
    const failed = counts.failed ?? 0;
    if (completed + failed >= count) return { completed, failed };
    if (Date.now() > deadline) throw new Error(`only ${completed + failed} of ${count} jobs finished: ${JSON.stringify(counts)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
