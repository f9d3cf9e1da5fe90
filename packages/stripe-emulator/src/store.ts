import type Stripe from 'stripe';
import { resourceMissing } from './errors.js';
import { newId } from './ids.js';
import { unixNow } from './resources.js';

/** The events the emulator emits, each with the stripe SDK's typed payload. */
export type EmulatorEvent =
  | Stripe.PaymentIntentCreatedEvent
  | Stripe.PaymentIntentProcessingEvent
  | Stripe.PaymentIntentSucceededEvent
  | Stripe.PaymentIntentPaymentFailedEvent
  | Stripe.PaymentIntentCanceledEvent
  | Stripe.ChargeSucceededEvent
  | Stripe.ChargeRefundedEvent
  | Stripe.RefundCreatedEvent
  | Stripe.RefundUpdatedEvent
  | Stripe.RefundFailedEvent
  | Stripe.ChargeRefundUpdatedEvent
  | Stripe.ChargeDisputeCreatedEvent
  | Stripe.ChargeDisputeClosedEvent
  | Stripe.CheckoutSessionCompletedEvent;

/** The `type` of an {@link EmulatorEvent}. */
export type EmulatorEventType = EmulatorEvent['type'];

type EventOf<T extends EmulatorEventType> = Extract<EmulatorEvent, { type: T }>;

/** Filters and cursor of `GET /v1/events`, already validated. */
export interface EventListQuery {
  limit: number;
  startingAfter: string | undefined;
  /** Patterns, `*` a wildcard; an event matches any one of them. */
  types: string[] | undefined;
  created: { gt?: number | undefined; gte?: number | undefined; lt?: number | undefined; lte?: number | undefined };
  deliverySuccess: boolean | undefined;
}

/** Whether `type` matches `pattern`, where `*` stands for any characters (`payment_intent.*`). */
export function eventTypeMatches(pattern: string, type: string): boolean {
  if (!pattern.includes('*')) return pattern === type;
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${source}$`).test(type);
}

/**
 * Every object the emulator has made, in memory, and the event log. Events hold a snapshot of their
 * object taken when they happened, as Stripe's do; the object itself keeps changing.
 */
export class EmulatorStore {
  readonly paymentIntents = new Map<string, Stripe.PaymentIntent>();
  readonly charges = new Map<string, Stripe.Charge>();
  readonly refunds = new Map<string, Stripe.Refund>();
  readonly disputes = new Map<string, Stripe.Dispute>();
  readonly checkoutSessions = new Map<string, Stripe.Checkout.Session>();
  readonly balanceTransactions = new Map<string, Stripe.BalanceTransaction>();
  /** Oldest first; an event's index is its position in time, `created` being only to the second. */
  private readonly events: EmulatorEvent[] = [];
  private readonly eventIndexes = new Map<string, number>();

  constructor(
    private readonly apiVersion: string,
    private readonly onEvent: (event: EmulatorEvent) => void,
  ) {}

  /**
   * Records an event about `object` and hands it to `onEvent` (webhook delivery).
   * `request` is the API request that caused it; events the emulator's controls cause carry
   * `{ id: null, idempotency_key: null }`, like Stripe's automatic events.
   */
  recordEvent<T extends EmulatorEventType>(
    type: T,
    object: EventOf<T>['data']['object'],
    options: { previousAttributes?: EventOf<T>['data']['previous_attributes']; request?: Stripe.Event.Request } = {},
  ): EmulatorEvent {
    const data: Stripe.Event.Data & { object: unknown } = { object: structuredClone(object) };
    if (options.previousAttributes) data.previous_attributes = structuredClone(options.previousAttributes);
    // The payload type follows from `type`, which TypeScript cannot see through the generic.
    const event = {
      id: newId('evt'),
      object: 'event',
      api_version: this.apiVersion,
      created: unixNow(),
      data,
      livemode: false,
      pending_webhooks: 0,
      request: options.request ?? { id: null, idempotency_key: null },
      type,
    } as EmulatorEvent;
    this.eventIndexes.set(event.id, this.events.length);
    this.events.push(event);
    this.onEvent(event);
    return event;
  }

  /** The event with this id, or undefined. */
  findEvent(id: string): EmulatorEvent | undefined {
    const index = this.eventIndexes.get(id);
    return index === undefined ? undefined : this.events[index];
  }

  /** How many events exist. */
  get eventCount(): number {
    return this.events.length;
  }

  /** Events that no delivery has reached yet (`pending_webhooks > 0`). */
  countUndeliveredEvents(): number {
    return this.events.reduce((count, event) => count + (event.pending_webhooks > 0 ? 1 : 0), 0);
  }

  /**
   * One page of `GET /v1/events`, newest first; `starting_after` walks to older events (the only
   * cursor the system uses: reconciliation pages back to its checkpoint with `created[gte]`).
   */
  listEvents(query: EventListQuery): { data: EmulatorEvent[]; has_more: boolean } {
    const matches = this.eventFilter(query);
    const page: EmulatorEvent[] = [];
    const start = query.startingAfter === undefined ? this.events.length : this.indexOf(query.startingAfter, 'starting_after');
    for (let i = start - 1; i >= 0; i -= 1) {
      const event = this.events[i];
      if (event && matches(event) && page.push(event) > query.limit) break;
    }
    return { data: page.slice(0, query.limit), has_more: page.length > query.limit };
  }

  /** The object with this id, whatever its type (ids carry their type in the prefix). */
  findObject(id: string): { object: string } | undefined {
    const prefix = id.slice(0, id.indexOf('_'));
    switch (prefix) {
      case 'pi':
        return this.paymentIntents.get(id);
      case 'ch':
        return this.charges.get(id);
      case 're':
        return this.refunds.get(id);
      case 'dp':
        return this.disputes.get(id);
      case 'cs':
        return this.checkoutSessions.get(id);
      case 'txn':
        return this.balanceTransactions.get(id);
      case 'evt':
        return this.findEvent(id);
      default:
        return undefined;
    }
  }

  private indexOf(id: string, param: string): number {
    const index = this.eventIndexes.get(id);
    if (index === undefined) throw resourceMissing('event', id, param);
    return index;
  }

  private eventFilter(query: EventListQuery): (event: EmulatorEvent) => boolean {
    const { types, created, deliverySuccess } = query;
    return (event) =>
      (types === undefined || types.some((pattern) => eventTypeMatches(pattern, event.type))) &&
      (created.gt === undefined || event.created > created.gt) &&
      (created.gte === undefined || event.created >= created.gte) &&
      (created.lt === undefined || event.created < created.lt) &&
      (created.lte === undefined || event.created <= created.lte) &&
      // Stripe: delivery_success=false lists events still pending or failed at an endpoint,
      // which is exactly pending_webhooks > 0.
      (deliverySuccess === undefined || (event.pending_webhooks === 0) === deliverySuccess);
  }
}
