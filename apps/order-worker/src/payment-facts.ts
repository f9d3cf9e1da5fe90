/**
 * A payment fact: one thing Stripe says happened to one payment, whichever event, sync or
 * reconciliation reported it. Every path that can move money ends in `applyPaymentFacts`.
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
    };
