import type { PaymentCredit, PaymentCreditResult } from './credit-statement.js';
import type { ApplyResult } from './ledger.js';

export interface CreditBatcherOptions {
  /**
   * Runs the group-commit statement over a batch: each payment's result in order, or undefined when
   * PostgreSQL refused the batch (nothing was written).
   */
  execute: (credits: readonly PaymentCredit[]) => Promise<PaymentCreditResult[] | undefined>;
  /** What a payment's statement result means to its job; undefined when the general path must decide. */
  resultOf: (credit: PaymentCredit, result: PaymentCreditResult | undefined) => ApplyResult | undefined;
  /** Applies one payment on its own: the general path (and batching off). */
  applyOne: (credit: PaymentCredit) => Promise<ApplyResult>;
  /** Payments per statement at most (1: no batching, each payment alone). */
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
  resolve: (result: ApplyResult) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit: jobs running concurrently hand their payments to one batcher, which applies up to
 * `maxBatch` of them in ONE statement (`creditPayments`), flushing at `maxBatch` payments or after
 * `maxWaitMs`, whichever comes first. Each job's promise settles only once its batch has committed,
 * so a BullMQ job still completes only after its credit is in PostgreSQL. The guarantee is
 * unchanged: the inbox and the ledger's unique keys decide per payment inside the batch. A payment
 * the batch cannot decide, and every payment of a batch PostgreSQL refused, goes through the
 * general path on its own (`applyPaymentFacts`), so one bad payment cannot fail its neighbours.
 */
export class CreditBatcher {
  private readonly queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly options: CreditBatcherOptions) {}

  /** Credits one payment with whatever else is waiting; resolves when its batch committed. */
  credit(credit: PaymentCredit): Promise<ApplyResult> {
    if (this.options.maxBatch <= 1) return this.options.applyOne(credit);
    return new Promise((resolve, reject) => {
      this.queue.push({ credit, resolve, reject });
      this.schedule();
    });
  }

  /** Applies everything still waiting, then resolves. */
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
    const limit = this.options.maxInFlight ?? 2;
    while (this.inFlight < limit && this.queue.length > 0 && (partial || this.queue.length >= this.options.maxBatch)) {
      const batch = this.takeBatch();
      this.inFlight += 1;
      const run = this.run(batch).finally(() => {
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

  private async run(batch: Pending[]): Promise<void> {
    let results: (ApplyResult | undefined)[];
    try {
      const started = performance.now();
      const decided = await this.options.execute(batch.map((pending) => pending.credit));
      this.options.onBatch?.(batch.length, (performance.now() - started) / 1000);
      results = decided ? batch.map((pending, index) => this.options.resultOf(pending.credit, decided[index])) : batch.map(() => undefined);
    } catch {
      // The whole batch failed (a lost connection, a deadlock): each payment on its own, below.
      results = batch.map(() => undefined);
    }
    await Promise.all(
      batch.map(async (pending, index) => {
        try {
          pending.resolve(results[index] ?? (await this.options.applyOne(pending.credit)));
        } catch (error) {
          pending.reject(error);
        }
      }),
    );
  }
}
