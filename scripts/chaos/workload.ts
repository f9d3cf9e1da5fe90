import type { Rng } from '@ledger/testkit';
import { sleep } from '@ledger/testkit';

/** What happens to one order's payment, as the customer, the bank and the dashboard play it. */
export type Scenario =
  | 'paid'
  | 'unpaid'
  | 'failed'
  | 'failed_then_paid'
  | 'refund_full'
  | 'refund_partial'
  | 'refund_twice'
  | 'refund_failed'
  | 'refund_canceled'
  | 'dispute_open'
  | 'dispute_won'
  | 'dispute_lost'
  | 'refund_then_dispute_lost';

/** Share of each scenario; the rest of the orders are simply paid. */
const SCENARIO_SHARES: [Scenario, number][] = [
  ['unpaid', 0.03],
  ['failed', 0.03],
  ['failed_then_paid', 0.04],
  ['refund_full', 0.07],
  ['refund_partial', 0.05],
  ['refund_twice', 0.03],
  ['refund_failed', 0.04],
  ['refund_canceled', 0.02],
  ['dispute_open', 0.03],
  ['dispute_won', 0.04],
  ['dispute_lost', 0.04],
  ['refund_then_dispute_lost', 0.02],
];

const CURRENCIES = ['usd', 'usd', 'usd', 'eur', 'gbp', 'jpy'] as const;

/** One order the run will place, decided up front from the seed. */
export interface PlannedOrder {
  index: number;
  accountId: string;
  currency: string;
  amount: number;
  scenario: Scenario;
  /** Also complete a Checkout Session: the same payment reported by a second event type. */
  checkout: boolean;
  /** The client also calls POST /orders/:id/confirm (a sync with Stripe, a third crediting path). */
  confirm: boolean;
  /** The client sends POST /orders twice with one Idempotency-Key (a retry after a lost answer). */
  repeatCreate: boolean;
  /** Another integration on the same Stripe account takes a payment meanwhile (its events are not ours). */
  foreign: 'none' | 'no_metadata' | 'unknown_order';
  idempotencyKey: string;
}

/** What the run did to one order, as Stripe (the emulator) reported it: the ground truth. */
export interface OrderRecord extends PlannedOrder {
  orderId: string;
  paymentIntentId: string;
  paid: boolean;
  failedAttempt: boolean;
  /** `reversed`: the refund failed or was canceled afterwards, so its money came back. */
  refunds: { id: string; amount: number; reversed: boolean }[];
  dispute: { id: string; amount: number; status: 'open' | 'won' | 'lost' } | undefined;
  /** The other integration's PaymentIntent and refund, if any: never credited or debited here. */
  foreignPayment: { paymentIntentId: string; refundId: string | undefined } | undefined;
}

/** Share of orders beside which another integration takes a payment (its events: ~10% of deliveries). */
const FOREIGN_SHARE = 0.3;

export function planOrders(rng: Rng, count: number, accounts: number, runId: string): PlannedOrder[] {
  const accountIds = Array.from({ length: accounts }, (_, i) => `chaos_acct_${String(i).padStart(4, '0')}`);
  return Array.from({ length: count }, (_, index) => {
    // Every account gets orders (round robin first, then at random) and keeps one currency.
    const accountIndex = index < accounts ? index : rng.int(0, accounts - 1);
    let roll = rng.next();
    let scenario: Scenario = 'paid';
    for (const [candidate, share] of SCENARIO_SHARES) {
      if (roll < share) {
        scenario = candidate;
        break;
      }
      roll -= share;
    }
    return {
      index,
      accountId: accountIds[accountIndex]!,
      currency: CURRENCIES[accountIndex % CURRENCIES.length]!,
      amount: rng.int(100, 50_000),
      scenario,
      checkout: rng.chance(0.2),
      confirm: rng.chance(0.25),
      repeatCreate: rng.chance(0.05),
      foreign: rng.chance(FOREIGN_SHARE) ? (rng.chance(0.5) ? 'no_metadata' : 'unknown_order') : 'none',
      idempotencyKey: `chaos-${runId}-${index}`,
    };
  });
}

/** Counters of what the clients met on the way (retries mean the system answered 5xx or not at all). */
export interface ClientCounters {
  requests: number;
  retries: number;
  /** Answers by status code class, for the report. */
  statuses: Record<string, number>;
  /** Time spent waiting for answers, by route, in milliseconds (count and total). */
  latency: Record<string, { count: number; totalMs: number; maxMs: number }>;
}

class HttpFailure extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
  ) {
    super(message);
  }
}

interface Answer {
  status: number;
  body: unknown;
}

/**
 * The clients' side of the run: customers creating and paying orders through the receiver and the
 * emulator's controls. Requests the system answers with 5xx (or not at all) are retried the way a
 * client should: same Idempotency-Key, with backoff.
 */
export class Customers {
  readonly counters: ClientCounters = { requests: 0, retries: 0, statuses: {}, latency: {} };

  constructor(
    private readonly receiverUrl: string,
    private readonly emulatorUrl: string,
    /** The orders API's service key. */
    private readonly apiKey: string,
    private readonly signal: AbortSignal | undefined,
  ) {}

  private async request(
    method: string,
    url: string,
    body?: unknown,
    headers: Record<string, string> = {},
    rawBody?: string,
  ): Promise<Answer> {
    this.counters.requests += 1;
    const started = performance.now();
    const route = new URL(url).pathname.replace(/\/(ord|pi|dp|re|du|evt)_[^/]+/g, '/:id');
    const response = await fetch(url, {
      method,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      body: rawBody ?? (body === undefined ? undefined : JSON.stringify(body)),
      signal: AbortSignal.timeout(20_000),
    });
    const text = await response.text();
    const elapsed = performance.now() - started;
    const routeKey = `${method} ${route}`;
    const latency = this.counters.latency[routeKey] ?? { count: 0, totalMs: 0, maxMs: 0 };
    this.counters.latency[routeKey] = latency;
    latency.count += 1;
    latency.totalMs += elapsed;
    latency.maxMs = Math.max(latency.maxMs, elapsed);
    const key = `${Math.floor(response.status / 100)}xx`;
    this.counters.statuses[key] = (this.counters.statuses[key] ?? 0) + 1;
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // keep the text
    }
    return { status: response.status, body: parsed };
  }

  /** Sends until the answer is not a 5xx or a network error; gives up after `attempts`. */
  private async withRetries(what: string, send: () => Promise<Answer>, attempts = 40): Promise<Answer> {
    let last = '';
    for (let attempt = 1; attempt <= attempts; attempt += 1) {
      this.signal?.throwIfAborted();
      try {
        const answer = await send();
        if (answer.status < 500) return answer;
        last = `HTTP ${answer.status} ${JSON.stringify(answer.body)}`;
      } catch (error) {
        last = error instanceof Error ? `${error.message}${error.cause instanceof Error ? `: ${error.cause.message}` : ''}` : String(error);
      }
      this.counters.retries += 1;
      await sleep(Math.min(100 * 2 ** (attempt - 1), 2_000));
    }
    throw new HttpFailure(`${what}: gave up after ${attempts} attempts (last: ${last})`, undefined);
  }

  private async createOrder(plan: PlannedOrder): Promise<{ status: number; id: string; paymentIntentId: string }> {
    const answer = await this.withRetries(`POST /orders #${plan.index}`, () =>
      this.request(
        'POST',
        `${this.receiverUrl}/orders`,
        { accountId: plan.accountId, amount: plan.amount, currency: plan.currency },
        { authorization: `Bearer ${this.apiKey}`, 'idempotency-key': plan.idempotencyKey },
      ),
    );
    const order = answer.body as { id?: string; paymentIntentId?: string | null };
    if ((answer.status !== 201 && answer.status !== 200) || !order.id || !order.paymentIntentId) {
      throw new HttpFailure(`POST /orders #${plan.index} answered ${answer.status} ${JSON.stringify(answer.body)}`, answer.status);
    }
    return { status: answer.status, id: order.id, paymentIntentId: order.paymentIntentId };
  }

  /** An `/_emulator` control; the emulator is never killed, so any non-2xx is a mistake of the run. */
  private async control<T>(path: string, body: unknown = {}): Promise<T> {
    const answer = await this.request('POST', `${this.emulatorUrl}/_emulator${path}`, body);
    if (answer.status !== 200)
      throw new HttpFailure(`emulator ${path} answered ${answer.status} ${JSON.stringify(answer.body)}`, answer.status);
    return answer.body as T;
  }

  private async confirm(orderId: string): Promise<void> {
    const answer = await this.withRetries(`POST /orders/${orderId}/confirm`, () =>
      this.request('POST', `${this.receiverUrl}/orders/${orderId}/confirm`, undefined, { authorization: `Bearer ${this.apiKey}` }),
    );
    if (answer.status !== 202)
      throw new HttpFailure(`POST /orders/${orderId}/confirm answered ${answer.status} ${JSON.stringify(answer.body)}`, answer.status);
  }

  /** Plays one order's scenario; returns what Stripe now holds about it. */
  async play(plan: PlannedOrder): Promise<OrderRecord> {
    const created = await this.createOrder(plan);
    if (plan.repeatCreate) {
      const again = await this.createOrder(plan);
      if (again.id !== created.id || again.paymentIntentId !== created.paymentIntentId) {
        throw new Error(`POST /orders #${plan.index} repeated with its Idempotency-Key made a second order (${created.id}, ${again.id})`);
      }
    }
    const record: OrderRecord = {
      ...plan,
      orderId: created.id,
      paymentIntentId: created.paymentIntentId,
      paid: false,
      failedAttempt: false,
      refunds: [],
      dispute: undefined,
      foreignPayment: plan.foreign === 'none' ? undefined : await this.foreignPayment(plan),
    };
    const pi = encodeURIComponent(created.paymentIntentId);
    const { scenario } = plan;
    if (scenario === 'unpaid') return record;
    if (scenario === 'failed' || scenario === 'failed_then_paid') {
      await this.control(`/payment_intents/${pi}/fail`);
      record.failedAttempt = true;
      if (scenario === 'failed') {
        if (plan.confirm) await this.confirm(created.id);
        return record;
      }
    }
    await this.control(`/payment_intents/${pi}/succeed`, plan.checkout ? { checkout: true } : {});
    record.paid = true;
    if (plan.confirm) await this.confirm(created.id);

    const refund = async (amount?: number, reverse?: 'failed' | 'canceled') => {
      const result = await this.control<{ refund?: { id: string; amount: number } }>(
        `/payment_intents/${pi}/refund`,
        amount === undefined ? {} : { amount },
      );
      if (!result.refund) throw new Error(`refund of ${created.paymentIntentId} returned no refund`);
      record.refunds.push({ id: result.refund.id, amount: result.refund.amount, reversed: reverse !== undefined });
      if (reverse) await this.control(`/refunds/${encodeURIComponent(result.refund.id)}/fail`, { status: reverse });
    };
    const dispute = async (close: 'won' | 'lost' | undefined) => {
      const result = await this.control<{ dispute?: { id: string; amount: number } }>(`/payment_intents/${pi}/dispute`);
      if (!result.dispute) throw new Error(`dispute of ${created.paymentIntentId} returned no dispute`);
      record.dispute = { id: result.dispute.id, amount: result.dispute.amount, status: 'open' };
      if (close) {
        await this.control(`/disputes/${encodeURIComponent(result.dispute.id)}/close`, { status: close });
        record.dispute.status = close;
      }
    };
    switch (scenario) {
      case 'refund_full':
        await refund();
        break;
      case 'refund_partial':
        await refund(Math.max(1, Math.floor(plan.amount / 3)));
        break;
      case 'refund_twice':
        await refund(Math.max(1, Math.floor(plan.amount / 4)));
        await refund();
        break;
      case 'refund_failed':
        await refund(undefined, 'failed');
        break;
      case 'refund_canceled':
        await refund(Math.max(1, Math.floor(plan.amount / 2)));
        await refund(undefined, 'canceled');
        break;
      case 'dispute_open':
        await dispute(undefined);
        break;
      case 'dispute_won':
        await dispute('won');
        break;
      case 'dispute_lost':
        await dispute('lost');
        break;
      case 'refund_then_dispute_lost':
        await refund(Math.max(1, Math.floor(plan.amount / 2)));
        await dispute('lost');
        break;
      default:
        break;
    }
    return record;
  }

  /**
   * Another integration's payment on the same Stripe account, created through the API like any
   * integration would (no order metadata, or an order id this system never had), paid, and
   * sometimes refunded: its events reach the endpoint and must be recorded as not ours.
   */
  private async foreignPayment(plan: PlannedOrder): Promise<OrderRecord['foreignPayment']> {
    const metadata =
      plan.foreign === 'unknown_order' ? `&metadata[order_id]=ord_elsewhere_${plan.index}` : '&metadata[shop]=another-integration';
    const answer = await this.request(
      'POST',
      `${this.emulatorUrl}/v1/payment_intents`,
      undefined,
      {
        authorization: 'Bearer sk_test_another_integration',
        'content-type': 'application/x-www-form-urlencoded',
      },
      `amount=${plan.amount}&currency=${plan.currency}${metadata}`,
    );
    const id = (answer.body as { id?: string }).id;
    if (answer.status !== 200 || !id)
      throw new HttpFailure(`creating a foreign PaymentIntent answered ${answer.status} ${JSON.stringify(answer.body)}`, answer.status);
    await this.control(`/payment_intents/${encodeURIComponent(id)}/succeed`);
    if (plan.index % 3 !== 0) return { paymentIntentId: id, refundId: undefined };
    const refunded = await this.control<{ refund?: { id: string } }>(`/payment_intents/${encodeURIComponent(id)}/refund`);
    return { paymentIntentId: id, refundId: refunded.refund?.id };
  }

  /** Plays every plan with `concurrency` customers at once; `onDone` after each order. */
  async playAll(plans: PlannedOrder[], concurrency: number, onDone: (done: number) => void): Promise<OrderRecord[]> {
    const records: OrderRecord[] = new Array(plans.length);
    let next = 0;
    let done = 0;
    let failure: unknown;
    const customer = async () => {
      // One customer's failure stops the others at their next order: the run is over anyway.
      while (failure === undefined) {
        const index = next;
        next += 1;
        const plan = plans[index];
        if (!plan) return;
        try {
          this.signal?.throwIfAborted();
          records[index] = await this.play(plan);
        } catch (error) {
          failure ??= error;
          return;
        }
        done += 1;
        onDone(done);
      }
    };
    await Promise.allSettled(Array.from({ length: concurrency }, customer));
    if (failure !== undefined) throw failure;
    return records;
  }
}
