import type Stripe from 'stripe';
import { resourceMissing } from './errors.js';
import { newId } from './ids.js';
import { unixNow } from './resources.js';
import { renderObject, renderPreviousAttributes, type EmbeddedList } from './versions.js';

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
  | Stripe.ChargeDisputeUpdatedEvent
  | Stripe.ChargeDisputeFundsWithdrawnEvent
  | Stripe.ChargeDisputeFundsReinstatedEvent
  | Stripe.ChargeDisputeClosedEvent
  | Stripe.PaymentIntentPartiallyFundedEvent
  | Stripe.PaymentIntentAmountCapturableUpdatedEvent
  | Stripe.CheckoutSessionCompletedEvent;

/** The `type` of an {@link EmulatorEvent}. */
export type EmulatorEventType = EmulatorEvent['type'];

type EventOf<T extends EmulatorEventType> = Extract<EmulatorEvent, { type: T }>;

/**
 * An event as the store keeps it: the snapshot of its object in full form (the fields of every API
 * version, see versions.ts) and the version it was created at. {@link renderAt} makes the payload.
 */
export interface StoredEvent {
  id: string;
  type: EmulatorEventType;
  /** The account's default version when the event happened. */
  api_version: string;
  created: number;
  data: { object: Record<string, unknown>; previous_attributes?: Record<string, unknown> };
  request: Stripe.Event.Request;
  /** Endpoints (`we_…`) that should get this event and have not answered a delivery with a 2xx yet. */
  pendingEndpoints: Set<string>;
}

/**
 * The event as Stripe shows it at `version`: a webhook at its endpoint's version, `GET /v1/events`
 * at the event's own. `pending_webhooks` counts the endpoints not yet reached.
 */
export function renderAt(version: string, event: StoredEvent): EmulatorEvent {
  const objectType = String(event.data.object.object);
  const data: { object: unknown; previous_attributes?: unknown } = { object: renderObject(version, event.data.object) };
  if (event.data.previous_attributes) {
    data.previous_attributes = renderPreviousAttributes(version, objectType, event.data.previous_attributes);
  }
  // The payload type follows from `type`, which TypeScript cannot see through the stored form.
  return {
    id: event.id,
    object: 'event',
    api_version: version,
    created: event.created,
    data,
    livemode: false,
    pending_webhooks: event.pendingEndpoints.size,
    request: event.request,
    type: event.type,
  } as unknown as EmulatorEvent;
}

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
  private readonly events: StoredEvent[] = [];
  private readonly eventIndexes = new Map<string, number>();

  /**
   * @param accountVersion the account's default API version now (it can change at runtime).
   * @param onEvent takes each new event (webhook delivery).
   */
  constructor(
    private readonly accountVersion: () => string,
    private readonly onEvent: (event: StoredEvent) => void,
  ) {}

  /** The account's default API version right now. */
  get apiVersion(): string {
    return this.accountVersion();
  }

  /**
   * `object` in full form: a Charge with every refund (`refunds`), a PaymentIntent with every charge
   * (`charges`), newest first, as versions before 2022-11-15 embed them; {@link renderObject} cuts
   * the lists down (or out) per version.
   */
  fullForm<T extends object>(object: T): T {
    const copy = structuredClone(object) as T & Record<string, unknown>;
    const { object: type, id } = copy as { object?: unknown; id?: unknown };
    if (type === 'charge' && typeof id === 'string') {
      (copy as Record<string, unknown>).refunds = this.refundList(id);
    } else if (type === 'payment_intent' && typeof id === 'string') {
      const charges = [...this.charges.values()].filter((charge) => charge.payment_intent === id).reverse();
      (copy as Record<string, unknown>).charges = embeddedList(
        charges.map((charge) => this.fullForm(charge)),
        `/v1/charges?payment_intent=${id}`,
      );
    }
    return copy;
  }

  /** Every refund of the charge, newest first, as a list object (`charge.refunds` in full form). */
  refundList(chargeId: string): EmbeddedList {
    const refunds = [...this.refunds.values()].filter((refund) => refund.charge === chargeId).reverse();
    return embeddedList(refunds, `/v1/charges/${chargeId}/refunds`);
  }

  /** `object` as the API shows it at `version` (a control's result at the account's version). */
  render<T extends object>(object: T, version = this.apiVersion): T {
    return renderObject(version, this.fullForm(object));
  }

  /**
   * Records an event about `object` and hands it to `onEvent` (webhook delivery).
   * `request` is the API request that caused it; events the emulator's controls cause carry
   * `{ id: null, idempotency_key: null }`, like Stripe's automatic events.
   */
  recordEvent<T extends EmulatorEventType>(
    type: T,
    object: EventOf<T>['data']['object'],
    options: {
      /** In full form where it holds a versioned list (the charge's `refunds` before a refund). */
      previousAttributes?: Record<string, unknown>;
      request?: Stripe.Event.Request;
    } = {},
  ): StoredEvent {
    const data: StoredEvent['data'] = { object: this.fullForm(object) as unknown as Record<string, unknown> };
    if (options.previousAttributes) data.previous_attributes = structuredClone(options.previousAttributes);
    const event: StoredEvent = {
      id: newId('evt'),
      type,
      api_version: this.apiVersion,
      created: unixNow(),
      data,
      request: options.request ?? { id: null, idempotency_key: null },
      pendingEndpoints: new Set(),
    };
    this.eventIndexes.set(event.id, this.events.length);
    this.events.push(event);
    this.onEvent(event);
    return event;
  }

  /** The event with this id, or undefined. */
  findEvent(id: string): StoredEvent | undefined {
    const index = this.eventIndexes.get(id);
    return index === undefined ? undefined : this.events[index];
  }

  /** How many events exist. */
  get eventCount(): number {
    return this.events.length;
  }

  /** Events that no delivery has reached yet (`pending_webhooks > 0`). */
  countUndeliveredEvents(): number {
    return this.events.reduce((count, event) => count + (event.pendingEndpoints.size > 0 ? 1 : 0), 0);
  }

  /**
   * One page of `GET /v1/events`, newest first; `starting_after` walks to older events (the only
   * cursor the system uses: reconciliation pages back to its checkpoint with `created[gte]`).
   * Each event is rendered at the version it was created at, as Stripe lists them.
   */
  listEvents(query: EventListQuery): { data: EmulatorEvent[]; has_more: boolean } {
    const matches = this.eventFilter(query);
    const page: StoredEvent[] = [];
    const start = query.startingAfter === undefined ? this.events.length : this.indexOf(query.startingAfter, 'starting_after');
    for (let i = start - 1; i >= 0; i -= 1) {
      const event = this.events[i];
      if (event && matches(event) && page.push(event) > query.limit) break;
    }
    return { data: page.slice(0, query.limit).map((event) => renderAt(event.api_version, event)), has_more: page.length > query.limit };
  }

  /**
   * One page of `GET /v1/refunds`, newest first, optionally only the refunds of one charge or
   * PaymentIntent. https://docs.stripe.com/api/refunds/list
   */
  listRefunds(query: { limit: number; startingAfter: string | undefined; charge: string | undefined; paymentIntent: string | undefined }): {
    data: Stripe.Refund[];
    has_more: boolean;
  } {
    const all = [...this.refunds.values()].reverse();
    let start = 0;
    if (query.startingAfter !== undefined) {
      start = all.findIndex((refund) => refund.id === query.startingAfter) + 1;
      if (start === 0) throw resourceMissing('refund', query.startingAfter, 'starting_after');
    }
    const matches = all
      .slice(start)
      .filter(
        (refund) =>
          (query.charge === undefined || refund.charge === query.charge) &&
          (query.paymentIntent === undefined || refund.payment_intent === query.paymentIntent),
      );
    return { data: structuredClone(matches.slice(0, query.limit)), has_more: matches.length > query.limit };
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
      case 'evt': {
        const event = this.findEvent(id);
        return event && renderAt(event.api_version, event);
      }
      default:
        return undefined;
    }
  }

  private indexOf(id: string, param: string): number {
    const index = this.eventIndexes.get(id);
    if (index === undefined) throw resourceMissing('event', id, param);
    return index;
  }

  private eventFilter(query: EventListQuery): (event: StoredEvent) => boolean {
    const { types, created, deliverySuccess } = query;
    return (event) =>
      (types === undefined || types.some((pattern) => eventTypeMatches(pattern, event.type))) &&
      (created.gt === undefined || event.created > created.gt) &&
      (created.gte === undefined || event.created >= created.gte) &&
      (created.lt === undefined || event.created < created.lt) &&
      (created.lte === undefined || event.created <= created.lte) &&
      // Stripe: delivery_success=false lists events still pending or failed at an endpoint,
      // which is exactly pending_webhooks > 0.
      (deliverySuccess === undefined || (event.pendingEndpoints.size === 0) === deliverySuccess);
  }
}

function embeddedList(data: unknown[], url: string): EmbeddedList {
  return { object: 'list', data, has_more: false, total_count: data.length, url };
}
