import { tracing, type PrismaClient, type Tracing } from '@ledger/shared';
import type { Context } from '@opentelemetry/api';
import type { ApplyResult, PaymentCredit, PaymentCreditResult } from '../types.js';
import { creditPayments, creditResultOf } from './statement.js';

export interface CreditBatcherOptions {
  /**
   * Runs the group-commit statement over a batch: each payment's result in order, or undefined when
   * PostgreSQL refused the batch (nothing was written).
   */
  execute: (credits: readonly PaymentCredit[]) => Promise<PaymentCreditResult[] | undefined>;
  /** Payments per statement at most (1: no batching, each payment in a statement of its own at once). */
  maxBatch: number;
  /** How long the first payment of a batch waits for others before the batch goes anyway. */
  maxWaitMs: number;
  /** Batches running at once (each holds one PostgreSQL connection while it runs). */
  maxInFlight?: number;
  /** Called after each batch statement with its size and duration (metrics). */
  onBatch?: (size: number, seconds: number) => void;
}

interface Pending {
  credit: PaymentCredit;
  resolve: (result: ApplyResult | undefined) => void;
  /** The trace context of the job that handed it over (tracing on only). */
  context?: Context;
}

/**
 * Group commit: jobs running concurrently hand their payments to one batcher, which credits up to
 * `maxBatch` of them in ONE statement (statements.ts, CREDIT_PAYMENTS_SQL), flushing at `maxBatch`
 * payments or after `maxWaitMs`, whichever comes first. Each payment's promise settles only once its
 * batch has committed, so a BullMQ job still completes only after its credit is in PostgreSQL. The
 * guarantee is unchanged: the inbox and the ledger's unique keys decide per payment inside the
 * batch. The batcher only runs the statement: a payment it did not decide (not eligible, or its
 * batch refused or failed) resolves to undefined, and the caller — applyPaymentFacts, the one place
 * that decides — takes it to the general path on its own, so one bad payment cannot fail its
 * neighbours.
 */
export class CreditBatcher {
  private readonly queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  private readonly running = new Set<Promise<unknown>>();

  constructor(private readonly options: CreditBatcherOptions) {}

  /** Credits one payment with whatever else is waiting; resolves when its batch committed (undefined: not decided). */
  credit(credit: PaymentCredit): Promise<ApplyResult | undefined> {
    return new Promise((resolve) => {
      this.queue.push(tracing ? { credit, resolve, context: tracing.api.context.active() } : { credit, resolve });
      this.schedule();
    });
  }

  /** Runs everything still waiting, then resolves. */
  async drain(): Promise<void> {
    while (this.queue.length > 0 || this.running.size > 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.startBatches(true);
      await Promise.race(this.running);
    }
  }

  private schedule(): void {
    if (this.queue.length >= this.options.maxBatch) {
      this.startBatches(false);
      return;
    }
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.startBatches(true);
    }, this.options.maxWaitMs);
  }

  /** Starts batches while slots are free: full ones, and with `partial` the rest too. */
  private startBatches(partial: boolean): void {
    const limit = this.options.maxBatch <= 1 ? Number.POSITIVE_INFINITY : (this.options.maxInFlight ?? 2);
    while (this.inFlight < limit && this.queue.length > 0 && (partial || this.queue.length >= this.options.maxBatch)) {
      const batch = this.takeBatch();
      this.inFlight += 1;
      const run = (tracing ? this.runTraced(tracing, batch) : this.run(batch)).finally(() => {
        this.inFlight -= 1;
        this.running.delete(run);
        // What arrived meanwhile: full batches go now, the rest after the wait.
        if (this.queue.length > 0) this.schedule();
      });
      this.running.add(run);
    }
  }

  /**
   * Up to `maxBatch` payments, at most one per PaymentIntent and per event: two reports of one
   * payment in one statement would meet in its own insert. Later ones wait for the next batch.
   */
  private takeBatch(): Pending[] {
    const batch: Pending[] = [];
    const keys = new Set<string>();
    for (let index = 0; index < this.queue.length && batch.length < this.options.maxBatch; ) {
      const pending = this.queue[index];
      if (!pending) break;
      const { fact, source } = pending.credit;
      if (keys.has(fact.paymentIntentId) || (source && keys.has(source.id))) {
        index += 1;
        continue;
      }
      keys.add(fact.paymentIntentId);
      if (source) keys.add(source.id);
      batch.push(pending);
      this.queue.splice(index, 1);
    }
    return batch;
  }

  /** Runs one batch and settles its payments; returns what failed the whole batch, if anything did. */
  private async run(batch: Pending[]): Promise<unknown> {
    let decided: (PaymentCreditResult | undefined)[] = [];
    let failure: unknown;
    try {
      const started = performance.now();
      decided = (await this.options.execute(batch.map((pending) => pending.credit))) ?? [];
      this.options.onBatch?.(batch.length, (performance.now() - started) / 1000);
    } catch (error) {
      // The whole batch failed (a lost connection, a deadlock): the general path takes each payment.
      failure = error;
    }
    for (const [index, pending] of batch.entries()) pending.resolve(creditResultOf(pending.credit, decided[index]));
    return failure;
  }

  /**
   * {@link run} in a `ledger.group_commit` span: a child of the job that opened the batch, linked to
   * the job of every payment in it (one statement serves several traces), its events named.
   */
  private runTraced({ api, tracer }: Tracing, batch: Pending[]): Promise<unknown> {
    const links = batch.flatMap((pending) => {
      const spanContext = pending.context && api.trace.getSpanContext(pending.context);
      return spanContext ? [{ context: spanContext }] : [];
    });
    const attributes = {
      'ledger.batch.size': batch.length,
      'stripe.event.ids': batch.flatMap((pending) => (pending.credit.source ? [pending.credit.source.id] : [])),
    };
    const parent = batch[0]?.context ?? api.context.active();
    return tracer.startActiveSpan('ledger.group_commit', { attributes, links }, parent, async (span) => {
      try {
        const failure = await this.run(batch);
        if (failure !== undefined) {
          span.recordException(failure instanceof Error ? failure : String(failure));
          span.setStatus({ code: api.SpanStatusCode.ERROR, message: 'batch failed: its payments go the general path' });
        }
        return failure;
      } finally {
        span.end();
      }
    });
  }
}

/** A batcher of this process's payments on `prisma` (group commit); `maxBatch` 1 turns batching off. */
export function createCreditBatcher(prisma: PrismaClient, options: Omit<CreditBatcherOptions, 'execute'>): CreditBatcher {
  return new CreditBatcher({ ...options, execute: (credits) => creditPayments(prisma, credits) });
}
