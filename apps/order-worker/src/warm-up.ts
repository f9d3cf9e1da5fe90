import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { QUEUES, stripeEventJobData, untraced, withTimeout, type PrismaClient, type RedisConnection } from '@ledger/shared';
import { createCreditBatcher, creditPayments, type PaymentCredit } from '@ledger/ledger';
import { Queue, Worker } from 'bullmq';
import { paymentFactsFromEvent } from './facts/from-event.js';
import { readJob } from './jobs/job-kit.js';

export interface WorkerWarmUpOptions {
  prisma: PrismaClient;
  connection: RedisConnection;
  prefix: string;
  /** Jobs to run through the warm-up queue (0: only the connections are opened). */
  events: number;
  concurrency: number;
  batchSize: number;
  batchWaitMs: number;
  /** PostgreSQL connections of the process: each is opened and runs the credit statement once. */
  poolSize: number;
  /** The jobs' part gives up after this long (Redis flushed meanwhile loses its jobs). */
  timeoutMs?: number;
}

/** Normally 1–2 s; a worker niced beside a busy machine takes longer, and then it is not worth more. */
const WARM_UP_TIMEOUT_MS = 30_000;

export interface WorkerWarmUp {
  events: number;
  ms: number;
}

/**
 * Makes a worker process credit at full speed from its first job, before it takes any: every
 * PostgreSQL connection of its pool is opened and runs the group-commit statement (the query
 * compiler loaded, the backends' catalog caches filled), then `events` jobs shaped as the receiver
 * queues them go through a BullMQ worker of the same concurrency on a queue of its own — fetch,
 * the job's schema, the event's facts, the batcher and the statement, completion — so the JIT has
 * compiled that path. Their payments name orders that cannot exist (`ord_warmup…`): the statement
 * finds none and writes nothing (no ledger entry, no inbox row, no sequence value), and the queue
 * is removed after. No metric counts any of it.
 */
export function warmUpWorker(options: WorkerWarmUpOptions): Promise<WorkerWarmUp> {
  // Tracing on: the warm-up is no one's trace (its BullMQ worker and queries make no span).
  return untraced(() => warmUp(options));
}

async function warmUp(options: WorkerWarmUpOptions): Promise<WorkerWarmUp> {
  const started = performance.now();
  const run = randomBytes(4).toString('hex');
  const batcher = createCreditBatcher(options.prisma, { maxBatch: options.batchSize, maxWaitMs: options.batchWaitMs });
  // One full batch on each connection at once: the pool opens all of them.
  const batch = Array.from({ length: options.batchSize }, (_, index) => warmUpCredit(run, index));
  const results = await Promise.all(Array.from({ length: options.poolSize }, () => creditPayments(options.prisma, batch)));
  if (results.some((rows) => rows?.some((row) => row.eligible))) throw new Error('a warm-up payment matched an order');
  try {
    if (options.events > 0) await runWarmUpJobs(options, run, batcher);
  } finally {
    await batcher.drain();
  }
  return { events: options.events, ms: Math.round(performance.now() - started) };
}

function warmUpCredit(run: string, index: number): PaymentCredit {
  const event = warmUpEventJob(run, index);
  return {
    fact: {
      kind: 'payment_succeeded',
      paymentIntentId: `pi_warmup${run}_${index}`,
      orderId: `ord_warmup${run}_${index}`,
      amount: 1000,
      currency: 'usd',
    },
    source: { id: event.id, type: event.type, objectId: `pi_warmup${run}_${index}`, created: event.created },
  };
}

function warmUpEventJob(run: string, index: number) {
  return stripeEventJobData({
    id: `evt_warmup${run}_${index}`,
    type: 'payment_intent.succeeded',
    created: Math.floor(Date.now() / 1000),
    livemode: false,
    data: {
      object: {
        id: `pi_warmup${run}_${index}`,
        object: 'payment_intent',
        amount: 1000,
        amount_received: 1000,
        currency: 'usd',
        metadata: { order_id: `ord_warmup${run}_${index}`, account_id: `acct_warmup${run}` },
        status: 'succeeded',
        livemode: false,
      },
    },
  });
}

async function runWarmUpJobs(options: WorkerWarmUpOptions, run: string, batcher: ReturnType<typeof createCreditBatcher>): Promise<void> {
  const name = `${QUEUES.stripeEvents}-warm-up-${run}`;
  const queue = new Queue(name, { connection: options.connection, prefix: options.prefix });
  const timeoutMs = options.timeoutMs ?? WARM_UP_TIMEOUT_MS;
  let worker: Worker | undefined;
  let abandoned = false;
  let abandon = () => {};
  const abandonedSignal = new Promise<void>((resolve) => {
    abandon = resolve;
  });
  const work = async () => {
    for (let from = 0; from < options.events && !abandoned; from += 500) {
      const count = Math.min(500, options.events - from);
      await queue.addBulk(
        Array.from({ length: count }, (_, offset) => {
          const data = warmUpEventJob(run, from + offset);
          return { name: data.type, data, opts: { jobId: data.id, removeOnComplete: true, removeOnFail: true } };
        }),
      );
    }
    if (abandoned) return;
    let failure: Error | undefined;
    let settled = 0;
    const finished = new Promise<void>((resolve) => {
      const settle = () => {
        if (++settled === options.events) resolve();
      };
      worker = new Worker(
        name,
        async (job) => {
          const event = readJob('stripeEvents', job.data);
          const facts = paymentFactsFromEvent(event);
          if (!Array.isArray(facts) || facts[0]?.kind !== 'payment_succeeded') throw new Error('warm-up event read wrong');
          // Not eligible (no such order): the statement ran and decided nothing, as it should here.
          const decided = await batcher.credit({
            fact: facts[0],
            source: { id: event.id, type: event.type, objectId: String(event.object.id), created: event.created },
          });
          if (decided) throw new Error('a warm-up payment was credited');
        },
        { connection: options.connection, prefix: options.prefix, concurrency: options.concurrency },
      );
      worker.on('completed', settle);
      worker.on('failed', (_job, error) => {
        failure ??= error;
        settle();
      });
    });
    await Promise.race([finished, abandonedSignal]);
    if (failure) throw new Error(`worker warm-up failed: ${failure.message}`);
  };
  const running = work();
  let completed = false;
  try {
    // Redis down meanwhile holds the commands (the worker connection queues them) and a flush
    // loses the jobs: either way the warm-up is abandoned rather than awaited.
    await withTimeout(running, timeoutMs, `worker warm-up: the jobs were not done after ${timeoutMs} ms`);
    completed = true;
  } finally {
    // Given up: stop adding and taking jobs, then remove the queue, waiting neither for jobs that
    // may never end nor for a Redis that is gone (then a queue nobody reads stays, named as a warm-up's).
    if (!completed) {
      abandoned = true;
      abandon();
    }
    const cleanUp = async () => {
      await worker?.close(!completed);
      await running.catch(() => undefined);
      await queue.obliterate({ force: true }).finally(() => queue.close());
    };
    await (completed ? cleanUp() : withTimeout(cleanUp(), 5_000).catch(() => undefined));
  }
}
