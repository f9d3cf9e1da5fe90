import { Stripe } from '@ledger/shared';
import { DelayedError, Worker, type Job } from 'bullmq';
import type { WorkerMetrics } from '../metrics.js';

/** Stripe answered 429 and the SDK gave up (it retries a 429 only on `Stripe-Should-Retry: true`). */
export function isStripeRateLimit(error: unknown): boolean {
  return error instanceof Stripe.errors.StripeRateLimitError || (error as { statusCode?: unknown } | null)?.statusCode === 429;
}

export interface StripeBackoffOptions {
  /** First pause after a 429, in milliseconds; each 429 in a row doubles it. */
  baseMs?: number;
  /** The pause stops growing here. */
  maxMs?: number;
}

/**
 * Sustained 429s slow a queue down instead of failing its jobs (https://docs.stripe.com/rate-limits:
 * back off exponentially, with randomness). On a 429 the job goes back to wait without using an
 * attempt: `queue` pauses the whole queue (BullMQ's manual rate limit: every job of it calls the
 * same Stripe account), `job` delays only that job (the maintenance queue also runs jobs that do not
 * call Stripe). The pause doubles with each 429 in a row, with jitter (half to all of it), and
 * resets on the first success. https://docs.bullmq.io/guide/rate-limiting#manual-rate-limit
 */
export function stripeBackoff(
  deps: { metrics: WorkerMetrics; log: (job: Job) => { warn(fields: object, message?: string): void } },
  scope: 'queue' | 'job',
  options: StripeBackoffOptions = {},
) {
  const baseMs = options.baseMs ?? 1_000;
  const maxMs = options.maxMs ?? 60_000;
  let streak = 0;
  return async function runWithBackoff<T>(worker: Worker, job: Job, token: string | undefined, work: () => Promise<T>): Promise<T> {
    try {
      const result = await work();
      streak = 0;
      return result;
    } catch (error) {
      if (!isStripeRateLimit(error)) throw error;
      streak += 1;
      const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(streak - 1, 30));
      const delayMs = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
      deps.metrics.stripeRateLimited.inc({ queue: job.queueName });
      deps.log(job).warn({ err: error, delayMs, streak }, `Stripe rate limited (429): job waits ${delayMs} ms, without using an attempt`);
      if (scope === 'queue' || !token) {
        await worker.rateLimit(delayMs);
        throw Worker.RateLimitError();
      }
      await job.moveToDelayed(Date.now() + delayMs, token);
      throw new DelayedError();
    }
  };
}
