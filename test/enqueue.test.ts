import { JOBS, type JobQueues } from '@ledger/shared';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addJobOnce } from '../apps/webhook-receiver/src/enqueue.js';
import { TEST_REDIS_URL } from './helpers/env.js';
import { events, jobOf, newOrderFixture } from './helpers/fixtures.js';
import { testQueue } from './helpers/queues.js';
import { deleteKeysWithPrefix, uniquePrefix } from './helpers/redis.js';

const prefix = uniquePrefix();
const queues = Object.fromEntries(Object.values(JOBS).map((job) => [job.queue, testQueue(prefix, job.queue)]));
const byKind = Object.fromEntries(Object.entries(JOBS).map(([kind, job]) => [kind, queues[job.queue]])) as unknown as JobQueues;
const admin = new Redis(TEST_REDIS_URL);

beforeAll(async () => {
  await byKind.stripeEvents.waitUntilReady();
});
afterAll(async () => {
  await Promise.all(Object.values(queues).map((queue) => queue?.close()));
  admin.disconnect();
  await deleteKeysWithPrefix(prefix);
});

function newEventJob() {
  const event = events.paymentIntent('succeeded', newOrderFixture());
  return { name: event.type, jobId: event.id, data: jobOf(event) };
}

describe('addJobOnce: one round trip tells a new job from a duplicate', () => {
  it('a new job is new and its second add a duplicate', async () => {
    const job = newEventJob();
    expect(await addJobOnce(byKind, 'stripeEvents', job)).toEqual({ duplicate: false, failed: false });
    expect(await addJobOnce(byKind, 'stripeEvents', job)).toEqual({ duplicate: true, failed: false });
  });

  it('a new job stays new when Redis forgot BullMQ’s scripts (restart, failover: NOSCRIPT, re-sent as EVAL)', async () => {
    // Known scripts first, then Redis forgets them, as a restarted server or a promoted replica has.
    await addJobOnce(byKind, 'stripeEvents', newEventJob());
    await admin.script('FLUSH');

    const job = newEventJob();
    expect(await addJobOnce(byKind, 'stripeEvents', job)).toEqual({ duplicate: false, failed: false });
    expect(await byKind.stripeEvents.getJob(job.jobId)).toMatchObject({ id: job.jobId });
    expect(await addJobOnce(byKind, 'stripeEvents', job)).toEqual({ duplicate: true, failed: false });
  });
});
