import type { ReviewBacklog } from '@ledger/ledger';
import { createStripeCallMetrics, withTimeout } from '@ledger/shared';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Readiness } from './readiness.js';

/** What the scrape-time gauges read; main.ts sets them once the workers run (tests and commands may not). */
export interface ScrapeSources {
  /** The `/readyz` checks (PostgreSQL, Redis, the workers running). */
  readiness?: () => Promise<Readiness>;
  /** Held facts and orders under review: one cheap query per scrape, never per job. */
  reviewBacklog?: () => Promise<ReviewBacklog>;
}

/** A scrape must answer within a second even when PostgreSQL or Redis does not. */
const SCRAPE_READ_TIMEOUT_MS = 500;

/**
 * One read per scrape shared by the gauges made from it (prom-client collects them concurrently);
 * undefined when there is no source or it failed or timed out.
 */
function readOncePerScrape<T>(read: () => (() => Promise<T>) | undefined): () => Promise<T | undefined> {
  let reading: Promise<T | undefined> | undefined;
  return () => {
    const source = read();
    if (!source) return Promise.resolve(undefined);
    reading ??= withTimeout(source(), SCRAPE_READ_TIMEOUT_MS)
      .catch(() => undefined)
      .finally(() => (reading = undefined));
    return reading;
  };
}

/** The worker's Prometheus metrics; each worker process serves its own registry. */
export function createWorkerMetrics(registry = new Registry()) {
  collectDefaultMetrics({ register: registry });
  /** Unix seconds of the reconciliation checkpoint this process last saw (set by each pass). */
  const reconcileCheckpoint: { at: number | undefined } = { at: undefined };
  const scrapeSources: ScrapeSources = {};
  const readReadiness = readOncePerScrape(() => scrapeSources.readiness);
  const readBacklog = readOncePerScrape(() => scrapeSources.reviewBacklog);
  /** A gauge of one number of the review backlog; 0 when PostgreSQL did not answer (ledger_dependency_up says so). */
  const backlogGauge = (name: string, help: string, value: (backlog: ReviewBacklog) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const backlog = await readBacklog();
        this.set(backlog ? value(backlog) : 0);
      },
    });
  return {
    reconcileCheckpoint,
    scrapeSources,
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
    ready: new Gauge({
      name: 'ledger_ready',
      help: '1 when this process is ready (what /readyz answers: PostgreSQL and Redis answer and the workers run), else 0; read at scrape time.',
      registers: [registry],
      async collect() {
        this.set((await readReadiness())?.ready ? 1 : 0);
      },
    }),
    dependencyUp: new Gauge({
      name: 'ledger_dependency_up',
      help: '1 when the dependency (postgres, redis) answered this process within 0.5 s at scrape time, else 0.',
      labelNames: ['dependency'] as const,
      registers: [registry],
      async collect() {
        const readiness = await readReadiness();
        this.reset();
        if (!scrapeSources.readiness) return;
        this.set({ dependency: 'postgres' }, readiness?.checks.postgres === 'ok' ? 1 : 0);
        this.set({ dependency: 'redis' }, readiness?.checks.redis === 'ok' ? 1 : 0);
      },
    }),
    heldFacts: backlogGauge(
      'ledger_held_facts',
      'Held facts waiting for an operator (not resolved), read at scrape time.',
      (b) => b.heldFacts,
    ),
    heldFactsOldestAge: backlogGauge(
      'ledger_held_facts_oldest_age_seconds',
      'Age of the oldest held fact waiting for an operator (0 when none), read at scrape time.',
      (b) => b.oldestHeldFactSeconds,
    ),
    ordersUnderReview: backlogGauge(
      'ledger_orders_under_review',
      'Orders in needs_review, read at scrape time.',
      (b) => b.ordersUnderReview,
    ),
    ordersUnderReviewOldestAge: backlogGauge(
      'ledger_orders_under_review_oldest_age_seconds',
      'How long the longest-waiting order under review has waited (since its oldest unsettled held fact; 0 when none), read at scrape time.',
      (b) => b.oldestReviewSeconds,
    ),
  };
}

export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;
