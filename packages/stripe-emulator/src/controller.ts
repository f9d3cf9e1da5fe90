import type { z } from 'zod';
import type { ConfigStore, DeliveryKnobs, PublicConfig } from './config.js';
import { invalidRequest, resourceMissing } from './errors.js';
import { parseParams } from './params.js';
import {
  authorizeInputSchema,
  cancelInputSchema,
  closeDisputeInputSchema,
  disputeInputSchema,
  failInputSchema,
  failRefundInputSchema,
  partiallyFundInputSchema,
  refundInputSchema,
  succeedInputSchema,
  type ControlResult,
  type PaymentFlows,
} from './payments.js';
import type { EmulatorStore } from './store.js';
import { thinEventInputSchema, type ThinEvent, type ThinEventLog } from './thin-events.js';
import { eventDelivery, type Deliverable, type DeliveryOutcome, type EndpointDeliveryStats, type WebhookDispatcher } from './webhooks.js';

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
/** Body of {@link StripeEmulatorController.partiallyFundPaymentIntent}. */
export type PartiallyFundInput = z.input<typeof partiallyFundInputSchema>;
/** Body of {@link StripeEmulatorController.authorizePaymentIntent}. */
export type AuthorizeInput = z.input<typeof authorizeInputSchema>;
/** Body of {@link StripeEmulatorController.createThinEvent}. */
export type ThinEventInput = z.input<typeof thinEventInputSchema>;

/** `GET /_emulator/stats`. */
export interface EmulatorStats {
  events: {
    created: number;
    /** Events with `pending_webhooks > 0`: some endpoint has not been reached yet. */
    undelivered: number;
    /** Deliveries (event × endpoint) never sent because of `dropRate`. */
    dropped: number;
    /** Deliveries (event × endpoint) sent more than once because of `duplicateRate`. */
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
  /** The same counters per endpoint id (`we_0` is `webhookUrl`, `we_1`… the `endpoints` knob). */
  endpoints: Record<string, EndpointDeliveryStats>;
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
  /**
   * A chargeback: `charge.dispute.created`, `charge.dispute.funds_withdrawn` (unless `withdrawFunds: false`);
   * an inquiry (`inquiry: true`): `charge.dispute.created` only.
   */
  disputePaymentIntent(id: string, input?: DisputeInput): ControlResult;
  /** An inquiry becomes a chargeback: `charge.dispute.updated`, `charge.dispute.funds_withdrawn`. */
  escalateDispute(id: string): ControlResult;
  /**
   * `won` or `lost`; an inquiry closes as `warning_closed` (status optional). `won` after a withdrawal:
   * `charge.dispute.funds_reinstated`, then `charge.dispute.closed`; otherwise `charge.dispute.closed`.
   */
  closeDispute(id: string, input?: CloseDisputeInput): ControlResult;
  /** Part of a bank transfer arrived: `payment_intent.partially_funded`, still `requires_action`. */
  partiallyFundPaymentIntent(id: string, input: PartiallyFundInput): ControlResult;
  /** A manual-capture PaymentIntent was authorized: `requires_capture`, `payment_intent.amount_capturable_updated`. */
  authorizePaymentIntent(id: string, input?: AuthorizeInput): ControlResult;
  /** Records a v2 event and sends its thin notification to every endpoint listening to its type. */
  createThinEvent(input: ThinEventInput): ThinEvent;
  /**
   * Sends one event (v1, or a v2 thin event) again now, like the dashboard's "Resend", to one
   * endpoint (default the first: `we_0` if `webhookUrl` is set); resolves with how it went.
   */
  redeliverEvent(id: string, endpoint?: string): Promise<DeliveryOutcome>;
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
  thinEvents: ThinEventLog;
}): StripeEmulatorController {
  const { store, flows, dispatcher, config, thinEvents } = parts;
  return {
    succeedPaymentIntent: (id, input) => flows.succeed(id, parseParams(succeedInputSchema, input)),
    failPaymentIntent: (id, input) => flows.fail(id, parseParams(failInputSchema, input)),
    cancelPaymentIntent: (id, input) => flows.cancel(id, parseParams(cancelInputSchema, input)),
    markPaymentIntentProcessing: (id) => flows.markProcessing(id),
    refundPaymentIntent: (id, input) => flows.refund(id, parseParams(refundInputSchema, input)),
    failRefund: (id, input) => flows.failRefund(id, parseParams(failRefundInputSchema, input)),
    disputePaymentIntent: (id, input) => flows.dispute(id, parseParams(disputeInputSchema, input)),
    escalateDispute: (id) => flows.escalateDispute(id),
    closeDispute: (id, input) => flows.closeDispute(id, parseParams(closeDisputeInputSchema, input)),
    partiallyFundPaymentIntent: (id, input) => flows.partiallyFund(id, parseParams(partiallyFundInputSchema, input)),
    authorizePaymentIntent: (id, input) => flows.authorize(id, parseParams(authorizeInputSchema, input)),
    createThinEvent(input) {
      const { event, delivery } = thinEvents.record(parseParams(thinEventInputSchema, input));
      dispatcher.enqueue(delivery);
      return structuredClone(event);
    },
    async redeliverEvent(id, endpointId) {
      const stored = store.findEvent(id);
      const item: Deliverable | undefined = stored ? eventDelivery(stored) : thinEvents.delivery(id);
      if (!item) throw resourceMissing('event', id);
      const endpoints = config.webhookEndpoints();
      const endpoint = endpointId === undefined ? endpoints[0] : endpoints.find((candidate) => candidate.id === endpointId);
      if (!endpoint) {
        throw invalidRequest(
          endpointId === undefined
            ? 'No webhook endpoint is configured: set webhookUrl or endpoints first (POST /_emulator/config).'
            : `No such endpoint: '${endpointId}'`,
          { param: 'endpoint' },
        );
      }
      return dispatcher.redeliver(item, endpoint);
    },
    stats() {
      const { dropped, duplicated, endpoints, ...deliveries } = dispatcher.stats();
      return {
        events: { created: store.eventCount, undelivered: store.countUndeliveredEvents(), dropped, duplicated },
        deliveries,
        endpoints,
      };
    },
    config: () => config.publicView(),
    configure: (knobs) => config.update(knobs),
    idle: () => dispatcher.idle(),
  };
}
