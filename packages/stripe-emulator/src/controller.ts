import type { z } from 'zod';
import type { ConfigStore, DeliveryKnobs, PublicConfig } from './config.js';
import { invalidRequest, resourceMissing } from './errors.js';
import { parseParams } from './params.js';
import {
  cancelInputSchema,
  closeDisputeInputSchema,
  disputeInputSchema,
  failInputSchema,
  failRefundInputSchema,
  refundInputSchema,
  succeedInputSchema,
  type ControlResult,
  type PaymentFlows,
} from './payments.js';
import type { EmulatorStore } from './store.js';
import type { DeliveryOutcome, WebhookDispatcher } from './webhooks.js';

/** Body of {@link StripeEmulatorController.succeedPaymentIntent}. */
export type SucceedInput = z.input<typeof succeedInputSchema>;
/** Body of {@link StripeEmulatorController.failPaymentIntent}. */
export type FailInput = z.input<typeof failInputSchema>;
/** Body of {@link StripeEmulatorController.cancelPaymentIntent}. */
export type CancelInput = z.input<typeof cancelInputSchema>;
/** Body of {@link StripeEmulatorController.refundPaymentIntent}. */
export type RefundInput = z.input<typeof refundInputSchema>;
/** Body of {@link StripeEmulatorController.failRefund}. */
export type FailRefundInput = z.input<typeof failRefundInputSchema>;
/** Body of {@link StripeEmulatorController.disputePaymentIntent}. */
export type DisputeInput = z.input<typeof disputeInputSchema>;
/** Body of {@link StripeEmulatorController.closeDispute}. */
export type CloseDisputeInput = z.input<typeof closeDisputeInputSchema>;

/** `GET /_emulator/stats`. */
export interface EmulatorStats {
  events: {
    created: number;
    /** Events with `pending_webhooks > 0`: no delivery has reached the endpoint yet. */
    undelivered: number;
    /** Events never sent because of `dropRate`. */
    dropped: number;
    /** Events sent more than once because of `duplicateRate`. */
    duplicated: number;
  };
  deliveries: {
    attempted: number;
    succeeded: number;
    failed: number;
    /** Deliveries that failed every retry. */
    exhausted: number;
    /** Queued, delayed or waiting to retry. */
    pending: number;
    inFlight: number;
  };
}

/**
 * Drives the emulator from tests, in process; the `/_emulator` routes call the same methods.
 * Controls throw `StripeApiError` (400/404, Stripe's shape) when the action is not possible.
 */
export interface StripeEmulatorController {
  /** The customer paid: `charge.succeeded`, `payment_intent.succeeded` (+ `checkout.session.completed` with `checkout: true`). */
  succeedPaymentIntent(id: string, input?: SucceedInput): ControlResult;
  /** The card was declined: `payment_intent.payment_failed`. */
  failPaymentIntent(id: string, input?: FailInput): ControlResult;
  /** `payment_intent.canceled`. */
  cancelPaymentIntent(id: string, input?: CancelInput): ControlResult;
  /** `payment_intent.processing`. */
  markPaymentIntentProcessing(id: string): ControlResult;
  /** A (partial) refund: `refund.created`, `charge.refunded`. */
  refundPaymentIntent(id: string, input?: RefundInput): ControlResult;
  /** The refund failed (default) or was canceled: `refund.updated`, `refund.failed`, `charge.refund.updated`. */
  failRefund(id: string, input?: FailRefundInput): ControlResult;
  /** A chargeback: `charge.dispute.created`. */
  disputePaymentIntent(id: string, input?: DisputeInput): ControlResult;
  /** `charge.dispute.closed` with status `won` or `lost`. */
  closeDispute(id: string, input: CloseDisputeInput): ControlResult;
  /** Sends one event again now, like the dashboard's "Resend"; resolves with how it went. */
  redeliverEvent(id: string): Promise<DeliveryOutcome>;
  /** Counters of events and deliveries. */
  stats(): EmulatorStats;
  /** The knobs in force (secrets left out). */
  config(): PublicConfig;
  /** Changes the given knobs; the rest stay. */
  configure(knobs: DeliveryKnobs): PublicConfig;
  /** Resolves once no delivery is queued, delayed, waiting to retry or in flight. */
  idle(): Promise<void>;
}

/** Builds the controller over the emulator's parts. */
export function createController(parts: {
  store: EmulatorStore;
  flows: PaymentFlows;
  dispatcher: WebhookDispatcher;
  config: ConfigStore;
}): StripeEmulatorController {
  const { store, flows, dispatcher, config } = parts;
  return {
    succeedPaymentIntent: (id, input) => flows.succeed(id, parseParams(succeedInputSchema, input)),
    failPaymentIntent: (id, input) => flows.fail(id, parseParams(failInputSchema, input)),
    cancelPaymentIntent: (id, input) => flows.cancel(id, parseParams(cancelInputSchema, input)),
    markPaymentIntentProcessing: (id) => flows.markProcessing(id),
    refundPaymentIntent: (id, input) => flows.refund(id, parseParams(refundInputSchema, input)),
    failRefund: (id, input) => flows.failRefund(id, parseParams(failRefundInputSchema, input)),
    disputePaymentIntent: (id, input) => flows.dispute(id, parseParams(disputeInputSchema, input)),
    closeDispute: (id, input) => flows.closeDispute(id, parseParams(closeDisputeInputSchema, input)),
    async redeliverEvent(id) {
      const event = store.findEvent(id);
      if (!event) throw resourceMissing('event', id);
      if (config.current.webhookUrl === undefined) {
        throw invalidRequest('No webhook endpoint is configured: set webhookUrl first (POST /_emulator/config).');
      }
      return dispatcher.redeliver(event);
    },
    stats() {
      const { dropped, duplicated, ...deliveries } = dispatcher.stats();
      return {
        events: { created: store.eventCount, undelivered: store.countUndeliveredEvents(), dropped, duplicated },
        deliveries,
      };
    },
    config: () => config.publicView(),
    configure: (knobs) => config.update(knobs),
    idle: () => dispatcher.idle(),
  };
}
