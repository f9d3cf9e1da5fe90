import {
  JOBS,
  tracing,
  type JobKind,
  type Logger,
  type OutageLog,
  type ParsedJobData,
  type PrismaClient,
  type RedisConnection,
  type Stripe,
  type StripeScope,
} from '@ledger/shared';
import type { ApplyResult, CreditBatcher, PaymentFact } from '@ledger/ledger';
import { UnrecoverableError, type Job } from 'bullmq';
import type { WorkerMetrics } from '../metrics.js';
import type { StripeBackoffOptions } from './stripe-rate-limit.js';

// What every job handler shares: the dependencies, the job's log lines, reading its payload.

/** What the order workers need; built by `main.ts` (or a test) and passed in. */
export interface OrderWorkerDeps {
  prisma: PrismaClient;
  /** A worker connection (`maxRetriesPerRequest: null`); BullMQ duplicates it for blocking calls. */
  connection: RedisConnection;
  prefix: string;
  stripe: Stripe;
  /** Which events are this deployment's (mode, connected accounts); default: test mode, no connected accounts. */
  scope?: StripeScope;
  logger: Logger;
  metrics: WorkerMetrics;
  /** Jobs one process runs at once, per queue. */
  concurrency: number;
  /** Group commit: payments per statement at most (1 turns batching off), and how long a batch waits to fill. */
  batchSize?: number;
  batchWaitMs?: number;
  /** Set by startOrderWorkers: the process's batcher, which every single payment of every job goes through. */
  batcher?: CreditBatcher;
  /** Lock duration; a job whose worker stops renewing it is taken over after this (stalled). */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** Stripe API calls per second the sync worker makes at most. */
  stripeRequestsPerSecond?: number;
  /** The pause after a Stripe 429 (tests shorten it). */
  stripeBackoff?: StripeBackoffOptions;
  /**
   * Outages of PostgreSQL and Redis, each logged once (main.ts); without them every connection error
   * and every job failed by an outage is logged on its own.
   */
  outages?: { postgres: OutageLog; redis: OutageLog };
}

/** Where a job's lines go: a pino logger, or {@link jobLog}'s per-job view of one. */
export type JobLog = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

/**
 * The lines of one job, with its queue, id and attempt. Not a pino child: a child per job costs
 * the serialisation (and redaction) of its bindings on every job, a measurable share of the
 * worker's CPU at a thousand jobs a second.
 */
export function jobLog(logger: Logger, job: Job): JobLog {
  // With tracing on, made inside the job's span: its lines carry the trace id.
  const ids = tracing
    ? { queue: job.queueName, jobId: job.id, attempt: job.attemptsMade + 1, traceId: tracing.traceId() }
    : { queue: job.queueName, jobId: job.id, attempt: job.attemptsMade + 1 };
  const line = (level: keyof JobLog) => (fields: object, message?: string) => logger[level]({ ...ids, ...fields }, message);
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') } as JobLog;
}

/**
 * A job's payload read with its catalog schema. Redis holds whatever was written (an older release,
 * a hand-made job): one that does not parse can never succeed, so it fails for good at once.
 */
export function readJob<K extends JobKind>(kind: K, data: unknown): ParsedJobData<K> {
  const parsed = JOBS[kind].schema.safeParse(data);
  if (!parsed.success) throw new UnrecoverableError(`not a ${kind} job: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data as ParsedJobData<K>;
}

/** Counts what each fact of a job did (ledger_facts_total). */
export function countOutcomes(metrics: WorkerMetrics, facts: PaymentFact[], result: ApplyResult): void {
  facts.forEach((fact, index) => {
    metrics.facts.inc({ kind: fact.kind, outcome: result.outcomes[index] ?? 'already_applied' });
  });
}
