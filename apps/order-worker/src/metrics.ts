import { createStripeCallMetrics } from '@ledger/shared';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The worker's Prometheus metrics; each worker process serves its own registry. */
export function createWorkerMetrics(registry = new Registry()) {
  collectDefaultMetrics({ register: registry });
  /** Unix seconds of the reconciliation checkpoint this process last saw (set by each pass). */
  const reconcileCheckpoint: { at: number | undefined } = { at: undefined };
  return {
    reconcileCheckpoint,
    registry,
    jobs: new Counter({
      name: 'ledger_worker_jobs_total',
      help: 'Jobs finished by this worker, by queue and result (completed, failed, retried).',
      labelNames: ['queue', 'result'] as const,
      registers: [registry],
    }),
    facts: new Counter({
      name: 'ledger_payment_facts_total',
      help: 'Payment facts applied, by kind and outcome (applied, already_applied, status_only, needs_review).',
      labelNames: ['kind', 'outcome'] as const,
      registers: [registry],
    }),
    eventToCredit: new Histogram({
      name: 'ledger_event_to_credit_seconds',
      help: 'Time from the Stripe event being created to its credit being committed.',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'ledger_credit_batch_size',
      help: 'Payments per group-commit statement.',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200],
      registers: [registry],
    }),
    batchSeconds: new Histogram({
      name: 'ledger_credit_batch_seconds',
      help: 'Duration of one group-commit statement (one PostgreSQL round trip).',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    holdsExpired: new Counter({
      name: 'ledger_holds_expired_total',
      help: 'Holds the scheduled sweep recorded as expired (they stopped counting against available at expiresAt).',
      registers: [registry],
    }),
    stripeCalls: createStripeCallMetrics(registry),
    stripeRateLimited: new Counter({
      name: 'ledger_stripe_rate_limited_jobs_total',
      help: 'Jobs put back to wait because Stripe answered 429 after the SDK gave up, by queue (the queue pauses with a growing, jittered delay; the job does not fail).',
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
    reconcileCheckpointAge: new Gauge({
      name: 'ledger_reconcile_checkpoint_age_seconds',
      help: 'Now minus the reconciliation checkpoint (events before it are not listed again); Stripe lists events of the last 30 days only.',
      registers: [registry],
      collect() {
        if (reconcileCheckpoint.at !== undefined) this.set(Math.max(0, Date.now() / 1000 - reconcileCheckpoint.at));
      },
    }),
    reconcileUncredited: new Gauge({
      name: 'ledger_reconcile_uncredited_payments',
      help: 'Payments Stripe reported succeeded in the last reconciliation window that were not credited yet (drift).',
      registers: [registry],
    }),
  };
}

export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;
