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
      to: 'processing' | 'payment_failed' | 'canceled';
    }
  | { kind: 'refund'; refundId: string; paymentIntentId: string; amount: number; currency: string }
  | {
      kind: 'dispute';
      disputeId: string;
      paymentIntentId: string;
      amount: number;
      currency: string;
      /** `open` for a new dispute; `won` / `lost` once closed. */
      to: 'open' | 'won' | 'lost';
    };
