import type { LedgerEntryType, OrderStatus } from '@ledger/shared';

// The ledger's vocabulary, in one module: what comes in (payment facts, the event they came
// from), what a posting is, and what applying facts reports back.

/**
 * A payment fact: one thing Stripe says happened to one payment, whichever event, sync or
 * reconciliation reported it. Money moves only through {@link applyPaymentFacts} (apply.ts);
 * an operator's resolution posts through the same `post()` (postings.ts).
 */
export type PaymentFact =
  | {
      kind: 'payment_succeeded';
      paymentIntentId: string;
      /** `metadata.order_id`, when the object carries it. */
      orderId?: string;
      amount: number;
      currency: string;
    }
  | {
      kind: 'payment_progress';
      paymentIntentId: string;
      orderId?: string;
      /** `expired`: canceled by this system because the order outlived ORDER_TTL. */
      to: 'processing' | 'payment_failed' | 'canceled' | 'expired';
    }
  | {
      kind: 'refund';
      refundId: string;
      paymentIntentId: string;
      amount: number;
      currency: string;
      /**
       * `debited`: Stripe took the money back from the merchant (pending, requires_action, succeeded).
       * `reversed`: the refund failed or was canceled, so the money came back (its debit still counts
       * if we never saw it: the two net to zero).
       */
      status: 'debited' | 'reversed';
    }
  | {
      kind: 'dispute';
      disputeId: string;
      paymentIntentId: string;
      amount: number;
      currency: string;
      /** `open` for a new dispute; `won` / `lost` once closed. */
      to: 'open' | 'won' | 'lost';
      /**
       * Where the disputed money is, as the dispute's balance transactions say (Stripe lists zero,
       * one or two: https://docs.stripe.com/api/disputes/object#dispute_object-balance_transactions):
       * `none` withdrawn yet (an inquiry, a dispute that has not taken funds), `withdrawn`, or
       * `reinstated` (withdrawn and given back). Absent: from `to` (open and lost withdrawn, won
       * reinstated), as jobs queued before this field existed say.
       */
      funds?: 'none' | 'withdrawn' | 'reinstated' | undefined;
    };

export type PaymentSucceeded = Extract<PaymentFact, { kind: 'payment_succeeded' }>;

/** What applying one fact did. */
export type FactOutcome =
  /** A ledger entry went in and the balance moved. */
  | 'applied'
  /** The ledger already had it (or an operator already settled it): nothing changed. */
  | 'already_applied'
  /** The fact moves no money (a failed or canceled payment, a dispute lost): only the order moved. */
  | 'status_only'
  /** Nothing to do: e.g. a failed attempt of a PaymentIntent that is not the order's own. */
  | 'ignored'
  /** Recorded as held for an operator (held_facts) and the order flagged `needs_review`; no money moved. */
  | 'held'
  /** About no order of this system (another integration's or deployment's PaymentIntent). */
  | 'not_ours';

export interface FactResult {
  outcome: FactOutcome;
  /** Why a fact was held or is not ours. */
  detail?: string;
  /** The order it was about, once found. */
  order?: FactOrder;
}

/** The order facts were about and its account: what log lines and traces name a payment by. */
export interface FactOrder {
  orderId: string;
  accountId: string;
}

/** The Stripe event a set of facts came from; recorded in the inbox in the same transaction. */
export interface EventSource {
  id: string;
  type: string;
  objectId: string | null;
  /** Stripe's `created`, unix seconds. */
  created: number;
}

/** What the inbox says about an event once its facts were applied. */
export type EventStatus = 'processed' | 'duplicate' | 'held' | 'not_ours';

export interface ApplyResult {
  /** False when the event was already processed: nothing was looked at again. */
  eventIsNew: boolean;
  outcomes: FactOutcome[];
  /** Reasons of held / not-ours facts. */
  details: string[];
  /** Top-up credits this call made, for the created → credited histogram. */
  credited: number;
  /** The order the facts were about (the first one found); absent when none was looked at or found. */
  order?: FactOrder;
}

/**
 * One ledger entry to post. `amount` is the magnitude (> 0): the sign comes from the type
 * (postings.ts, and PostgreSQL's CHECK on ledger_entries). Only an `adjustment` carries its own
 * sign, since an operator's correction goes either way.
 */
export interface Posting {
  type: LedgerEntryType;
  accountId: string;
  /** The account's currency: an entry is always in it (a foreign key says so). */
  currency: string;
  /** Unique per (account, type): the key that makes a second posting of one fact impossible. */
  reference: string;
  amount: number;
  orderId: string | null;
  /** The Stripe event that reported it, if any. */
  eventId: string | null;
}

/** A fact kept for an operator instead of posted (held_facts): the entry it would have made. */
export interface HeldEntry {
  type: LedgerEntryType;
  reference: string;
  /** Magnitude, as in a {@link Posting}. */
  amount: number;
  /** The fact's currency, which may not be the order's (that can be why it is held). */
  currency: string;
}

/** An order row as the money paths read it (locked). */
export interface OrderRow {
  id: string;
  account_id: string;
  amount: number;
  currency: string;
  status: OrderStatus;
  payment_intent_id: string | null;
  amount_refunded: number;
  dispute_status: string | null;
  review_reason: string | null;
}

export interface AccountRow {
  id: string;
  currency: string;
}

/** An order and its account, as located before locking. */
export interface LocatedOrder {
  id: string;
  account_id: string;
}

/** What is known about an order's payment, beyond its status column. */
export interface OrderState {
  status: OrderStatus;
  amount: number;
  /** Net amount refunded: debited refunds minus those that failed or were canceled afterwards. */
  amountRefunded: number;
  /** `open`, `won` or `lost`; null while no dispute is known. */
  disputeStatus: string | null;
  /** Set while a fact of the order waits for an operator; cleared by the resolution. */
  reviewReason: string | null;
}

/** The columns an order update writes: its next state and its PaymentIntent. */
export type OrderStatusUpdate = Omit<OrderState, 'amount'> & { paymentIntentId: string | null };

/** How far the payment itself got. Ranks only rise: a late `payment_failed` cannot undo a credit. */
export type PaymentProgress = 'awaiting_payment' | 'processing' | 'payment_failed' | 'canceled' | 'expired' | 'paid';

/** A change one payment fact (or an operator) makes to an order. */
export type OrderChange =
  | { kind: 'progress'; to: PaymentProgress }
  /** Refund debits add to the refunded amount; a reversal (failed or canceled refund) subtracts. */
  | { kind: 'refunded'; amount: number }
  | { kind: 'dispute'; to: 'open' | 'won' | 'lost' }
  | { kind: 'review'; reason: string }
  /** An operator settled the review (a credit it posted counts through `credited`). */
  | { kind: 'review_resolved' };

/** A payment to credit in the group-commit statement, with the event that reported it (if any). */
export interface PaymentCredit {
  fact: PaymentSucceeded;
  source?: EventSource | undefined;
}

/** What the group-commit statement did with one payment. */
export interface PaymentCreditResult {
  /** The order matched the payment and the account's currency: the statement decided it. */
  eligible: boolean;
  /** Its top-up went in (and the balance and the order moved). */
  inserted: boolean;
  /** Its event was new to the inbox (or took over a failed or held row). */
  eventNew: boolean;
  /** The order it paid and its account, when eligible. */
  order?: FactOrder;
}
