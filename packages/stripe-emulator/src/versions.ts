import { z } from 'zod';

// Stripe renders every object at an API version: webhooks at their endpoint's, `GET /v1/events` at
// each event's own `api_version` (https://docs.stripe.com/upgrades). The store keeps one full form of
// each object, holding the fields of every version; the functions here cut it down to one version.

/** An API version as Stripe names them: `2022-08-01`, `2025-03-31.basil`. */
export const apiVersionSchema = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}(\.[a-z0-9_]+)?$/i, 'must be an API version such as 2025-03-31.basil or 2022-08-01');

/**
 * From this version on, a Charge has no `refunds` list and a PaymentIntent no `charges` list.
 * https://docs.stripe.com/changelog/2022-11-15
 */
export const LISTS_REMOVED_VERSION = '2022-11-15';
/**
 * From basil on, a Checkout Session with Adaptive Pricing keeps the integration's currency and amounts
 * and describes the customer's in `presentment_details`; before, it was in the customer's currency
 * with `currency_conversion` describing the integration's. https://docs.stripe.com/changelog/basil
 */
export const PRESENTMENT_DETAILS_VERSION = '2025-03-31';
/** Old versions show at most this many items of an embedded list, with `has_more` beyond. */
export const EMBEDDED_LIST_LIMIT = 10;

/** Whether `version` is older than `date` (`YYYY-MM-DD`); versions compare by their date prefix. */
export function isBefore(version: string, date: string): boolean {
  return version.slice(0, 10) < date;
}

/** A list object as Stripe embeds one (`charge.refunds`, `payment_intent.charges`). */
export interface EmbeddedList {
  object: 'list';
  data: unknown[];
  has_more: boolean;
  total_count: number;
  url: string;
}

/** The customer's side of an Adaptive Pricing payment, as basil shows it. */
export interface PresentmentDetails {
  presentment_amount: number;
  presentment_currency: string;
}

type Json = Record<string, unknown>;

/**
 * An object of the store in full form, rendered at `version`. `object` picks the rules; objects
 * without versioned fields come back as a copy.
 */
export function renderObject<T>(version: string, object: T): T {
  return renderInPlace(version, structuredClone(object) as Json) as T;
}

/**
 * `previous_attributes` of an event about `objectType`, rendered at `version`: a list field that
 * does not exist at that version is left out too.
 */
export function renderPreviousAttributes(version: string, objectType: string, previous: Json): Json {
  return renderFields(version, objectType, structuredClone(previous));
}

function renderInPlace(version: string, object: Json): Json {
  return renderFields(version, typeof object.object === 'string' ? object.object : '', object);
}

function renderFields(version: string, objectType: string, object: Json): Json {
  const listField = objectType === 'charge' ? 'refunds' : objectType === 'payment_intent' ? 'charges' : undefined;
  if (listField !== undefined && listField in object) {
    const list = object[listField] as EmbeddedList | null;
    if (!isBefore(version, LISTS_REMOVED_VERSION) || list === null) {
      delete object[listField];
    } else {
      const shown = list.data.slice(0, EMBEDDED_LIST_LIMIT).map((item) => renderInPlace(version, item as Json));
      object[listField] = { ...list, data: shown, has_more: list.total_count > shown.length };
    }
  }
  if (objectType === 'checkout.session') renderCheckoutSession(version, object);
  return object;
}

function renderCheckoutSession(version: string, session: Json): void {
  if (!isBefore(version, PRESENTMENT_DETAILS_VERSION)) return;
  const presentment = session.presentment_details as PresentmentDetails | undefined;
  delete session.presentment_details;
  if (presentment === undefined || !('amount_total' in session)) return;
  const amountTotal = session.amount_total as number;
  session.currency_conversion = {
    amount_subtotal: session.amount_subtotal,
    amount_total: amountTotal,
    fx_rate: fxRate(presentment.presentment_amount, amountTotal),
    source_currency: session.currency,
  };
  // One line item, no discount or tax: the subtotal converts like the total.
  session.amount_subtotal = presentment.presentment_amount;
  session.amount_total = presentment.presentment_amount;
  session.currency = presentment.presentment_currency;
}

/** Stripe's `fx_rate`, a decimal string: customer currency per unit of the integration's. */
function fxRate(presentmentAmount: number, sourceAmount: number): string {
  return String(Number((presentmentAmount / sourceAmount).toFixed(6)));
}
