/**
 * The merchant's backend spending during the load: debits, and holds with a short expiry that it
 * captures (all or part), releases or lets expire, on accounts the orders have credited. Every
 * operation has its own reference and is retried with the same request on every error (no answer,
 * 5xx, 429) until it gets a definitive answer or the run ends; some answers are lost on purpose (a
 * broken connection after the work was done) and some requests cut short, so retries replay. What it believes happened is its
 * book, which the judge compares with the ledger (verify-spending.ts).
 */
import { Rng, sleep } from '@ledger/testkit';

/** What the client believes of one debit. `unresolved`: no definitive answer before the run ended. */
export interface DebitRecord {
  reference: string;
  accountId: string;
  amount: number;
  outcome: 'debited' | 'refused' | 'unresolved' | 'unexpected';
  /** The definitive answer's status (201, 200 for a replay, 422…), or undefined. */
  status: number | undefined;
  attempts: number;
}

/** What the client does with a hold once it is placed. */
export type HoldPlan = 'capture_all' | 'capture_part' | 'release' | 'expire' | 'capture_or_release' | 'capture_twice';

/** The answer to one capture or release, as the client took it. */
export interface HoldStep {
  kind: 'capture' | 'release';
  /** The amount sent (undefined: all of it). */
  amount: number | undefined;
  outcome: 'done' | 'not_active' | 'unresolved' | 'unexpected';
  /** What the answer said was captured (a capture that is done). */
  capturedAmount: number | undefined;
  status: number | undefined;
}

/** What the client believes of one hold. */
export interface HoldRecord {
  reference: string;
  accountId: string;
  amount: number;
  expiresInSeconds: number;
  plan: HoldPlan;
  placed: 'held' | 'refused' | 'unresolved' | 'unexpected';
  /** Known once the placement was answered (201, or 200 for a replay). */
  holdId: string | undefined;
  status: number | undefined;
  steps: HoldStep[];
}

/** Everything the spending client did and believes. */
export interface SpendingBook {
  debits: DebitRecord[];
  holds: HoldRecord[];
  requests: number;
  /** Requests sent again after no answer, a 5xx or a 429. */
  retries: number;
  /** Answers the client threw away on purpose (as if the connection broke): the retry must replay, not spend again. */
  lostAnswers: number;
  /** Answers by status code class. */
  statuses: Record<string, number>;
  /** Definitive answers the client did not expect (400, a 409 on a fresh reference…), one line each (the first ones). */
  surprises: string[];
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** The statuses that decide an operation; anything else (no answer, 5xx, 429) is sent again. */
const DEFINITIVE = new Set([200, 201, 400, 404, 409, 422]);
/** Share of spending answers lost on the way back (the operation was done, the client does not know). */
const LOST_ANSWER_RATE = 0.08;
/** Share of spending requests given up after a few milliseconds (done or not, the client cannot tell). */
const CUT_REQUEST_RATE = 0.03;
const MAX_SURPRISES = 20;

export interface SpendingOptions {
  receiverUrl: string;
  apiKey: string;
  seed: number;
  /** Spending operations in flight at once (holds waiting for their capture do not count). */
  concurrency: number;
  /** The accounts the orders played so far credit (some may not have been credited yet). */
  creditedAccounts: () => string[];
  /** Accounts a share of the operations go to, several at once: races for the same balance. */
  hotAccounts: string[];
}

/**
 * The spending client. `start()` begins spending; `stop()` lets no new operation begin and waits for
 * those in flight (their retries included) until `deadline` — the end of the run for them.
 */
export class Spenders {
  readonly book: SpendingBook = { debits: [], holds: [], requests: 0, retries: 0, lostAnswers: 0, statuses: {}, surprises: [] };
  private readonly rng: Rng;
  private stopping = false;
  private deadline = Number.POSITIVE_INFINITY;
  private readonly followUps = new Set<Promise<void>>();
  private loops: Promise<void>[] = [];
  private sequence = 0;

  constructor(private readonly options: SpendingOptions) {
    this.rng = new Rng(options.seed);
  }

  start(): void {
    this.loops = Array.from({ length: this.options.concurrency }, (_, index) => this.loop(index));
  }

  /** No new operation; those in flight get until `deadlineMs` from now to be answered. */
  async stop(deadlineMs: number): Promise<void> {
    this.stopping = true;
    this.deadline = Date.now() + deadlineMs;
    await Promise.all(this.loops);
    while (this.followUps.size > 0) await Promise.all([...this.followUps]);
  }

  private surprise(line: string): void {
    if (this.book.surprises.length < MAX_SURPRISES) this.book.surprises.push(line);
  }

  private async loop(index: number): Promise<void> {
    while (!this.stopping) {
      const credited = this.options.creditedAccounts();
      if (credited.length === 0) {
        await sleep(200);
        continue;
      }
      // The hot accounts take several spenders at once; the others one now and then.
      const accountId = index % 2 === 0 && this.rng.chance(0.6) ? this.rng.pick(this.options.hotAccounts) : this.rng.pick(credited);
      const figures = await this.balance(accountId);
      if (!figures || figures.available <= 0) {
        await sleep(50);
        continue;
      }
      await this.spendOnce(accountId, figures);
    }
  }

  /** One debit or one hold (its capture or release follows on its own). */
  private async spendOnce(accountId: string, figures: { currency: string; available: number }): Promise<void> {
    const hot = this.options.hotAccounts.includes(accountId);
    // Most operations fit what was available a moment ago; on a hot account each takes a large share
    // of it, so racing ones cannot all fit; a few ask for more than there is.
    const share = this.rng.chance(0.08) ? 1.2 : hot ? 0.3 + this.rng.next() * 0.6 : 0.05 + this.rng.next() * 0.4;
    const amount = Math.max(1, Math.min(99_999_999, Math.round(figures.available * share)));
    this.sequence += 1;
    const reference = `chaos-spend-${this.options.seed}-${this.sequence}`;
    if (this.rng.chance(0.5)) await this.debit({ reference, accountId, amount, currency: figures.currency });
    else await this.hold({ reference, accountId, amount, currency: figures.currency });
  }

  private async debit(request: { reference: string; accountId: string; amount: number; currency: string }): Promise<void> {
    const record: DebitRecord = { ...request, outcome: 'unresolved', status: undefined, attempts: 0 };
    this.book.debits.push(record);
    const answer = await this.untilDefinitive(
      'POST',
      `/accounts/${encodeURIComponent(request.accountId)}/debits`,
      { amount: request.amount, currency: request.currency, reference: request.reference, description: 'chaos' },
      (attempts) => {
        record.attempts = attempts;
      },
    );
    if (!answer) return;
    record.status = answer.status;
    if ((answer.status === 201 || answer.status === 200) && answer.body.amount === request.amount) record.outcome = 'debited';
    else if (answer.status === 422) record.outcome = 'refused';
    else {
      record.outcome = 'unexpected';
      this.surprise(`debit ${request.reference}: ${answer.status} ${JSON.stringify(answer.body)}`);
    }
  }

  private async hold(request: { reference: string; accountId: string; amount: number; currency: string }): Promise<void> {
    const roll = this.rng.next();
    const plan: HoldPlan =
      roll < 0.25
        ? 'capture_all'
        : roll < 0.45
          ? 'capture_part'
          : roll < 0.65
            ? 'release'
            : roll < 0.85
              ? 'expire'
              : roll < 0.93
                ? 'capture_or_release'
                : 'capture_twice';
    const expiresInSeconds = this.rng.int(2, 5);
    const record: HoldRecord = {
      ...request,
      expiresInSeconds,
      plan,
      placed: 'unresolved',
      holdId: undefined,
      status: undefined,
      steps: [],
    };
    this.book.holds.push(record);
    const answer = await this.untilDefinitive('POST', `/accounts/${encodeURIComponent(request.accountId)}/holds`, {
      amount: request.amount,
      currency: request.currency,
      reference: request.reference,
      expiresInSeconds,
    });
    if (!answer) return;
    record.status = answer.status;
    if ((answer.status === 201 || answer.status === 200) && typeof answer.body.id === 'string' && answer.body.amount === request.amount) {
      record.placed = 'held';
      record.holdId = answer.body.id;
    } else if (answer.status === 422) {
      record.placed = 'refused';
      return;
    } else {
      record.placed = 'unexpected';
      this.surprise(`hold ${request.reference}: ${answer.status} ${JSON.stringify(answer.body)}`);
      return;
    }
    if (plan === 'expire') return;
    // Most captures and releases come before the expiry, some just after it (409 hold_not_active).
    const waitMs = this.rng.int(0, expiresInSeconds * 1000 + 800);
    const part = Math.max(1, Math.floor(request.amount * (0.2 + this.rng.next() * 0.7)));
    const holdId = record.holdId;
    const followUp = (async () => {
      await sleep(waitMs);
      const steps: Promise<HoldStep>[] =
        plan === 'capture_all'
          ? [this.holdStep(holdId, 'capture', undefined)]
          : plan === 'capture_part'
            ? [this.holdStep(holdId, 'capture', part)]
            : plan === 'release'
              ? [this.holdStep(holdId, 'release', undefined)]
              : plan === 'capture_or_release'
                ? [this.holdStep(holdId, 'capture', part), this.holdStep(holdId, 'release', undefined)]
                : [this.holdStep(holdId, 'capture', part), this.holdStep(holdId, 'capture', undefined)];
      record.steps = await Promise.all(steps);
    })();
    this.followUps.add(followUp);
    void followUp.finally(() => this.followUps.delete(followUp));
  }

  private async holdStep(holdId: string, kind: 'capture' | 'release', amount: number | undefined): Promise<HoldStep> {
    const step: HoldStep = { kind, amount, outcome: 'unresolved', capturedAmount: undefined, status: undefined };
    const answer = await this.untilDefinitive(
      'POST',
      `/holds/${encodeURIComponent(holdId)}/${kind}`,
      kind === 'capture' && amount !== undefined ? { amount } : undefined,
    );
    if (!answer) return step;
    step.status = answer.status;
    const wanted = kind === 'capture' ? 'captured' : 'released';
    if (answer.status === 200 && answer.body.status === wanted) {
      step.outcome = 'done';
      if (kind === 'capture') step.capturedAmount = Number(answer.body.capturedAmount);
    } else if (answer.status === 409 && answer.body.error === 'hold_not_active') {
      step.outcome = 'not_active';
    } else {
      step.outcome = 'unexpected';
      this.surprise(`${kind} ${holdId}: ${answer.status} ${JSON.stringify(answer.body)}`);
    }
    return step;
  }

  private async balance(accountId: string): Promise<{ currency: string; available: number } | undefined> {
    const answer = await this.untilDefinitive('GET', `/accounts/${encodeURIComponent(accountId)}/balance`, undefined);
    if (answer?.status !== 200) return undefined;
    return { currency: String(answer.body.currency), available: Number(answer.body.available) };
  }

  /**
   * Sends the same request until a definitive answer (undefined if the run ended first): no answer,
   * a 5xx or a 429 is retried, with backoff (a second after a 429).
   */
  private async untilDefinitive(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    onAttempt?: (attempts: number) => void,
  ): Promise<Answer | undefined> {
    for (let attempt = 1; ; attempt += 1) {
      if (Date.now() >= this.deadline) return undefined;
      onAttempt?.(attempt);
      let waitMs = Math.min(50 * 2 ** (attempt - 1), 1_000);
      try {
        const cut = method === 'POST' && this.rng.chance(CUT_REQUEST_RATE);
        const answer = await this.send(method, path, body, cut ? this.rng.int(1, 20) : 10_000);
        if (method === 'POST' && this.rng.chance(LOST_ANSWER_RATE)) {
          this.book.lostAnswers += 1;
          throw new Error('answer lost');
        }
        if (DEFINITIVE.has(answer.status)) return answer;
        // Over the spending budget (Retry-After is whole seconds): not before the next second.
        if (answer.status === 429) waitMs = 1_000;
      } catch {
        // no answer (connection refused or reset, timeout, lost): the same request again
      }
      this.book.retries += 1;
      await sleep(waitMs);
    }
  }

  private async send(method: 'GET' | 'POST', path: string, body: unknown, timeoutMs: number): Promise<Answer> {
    this.book.requests += 1;
    const response = await fetch(`${this.options.receiverUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.options.apiKey}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    const key = `${Math.floor(response.status / 100)}xx`;
    this.book.statuses[key] = (this.book.statuses[key] ?? 0) + 1;
    let parsed: Record<string, unknown> = {};
    try {
      const value: unknown = JSON.parse(text);
      if (value && typeof value === 'object') parsed = value as Record<string, unknown>;
    } catch {
      // not JSON: a proxy's or a dying process's answer; only its status matters
    }
    return { status: response.status, body: parsed };
  }
}
