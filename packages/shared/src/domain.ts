import type { OrderStatus } from './generated/prisma/enums.js';

export type { OrderStatus };

/** Every order status, in the order the contract lists them. */
export const ORDER_STATUSES = [
  'awaiting_payment',
  'processing',
  'credited',
  'payment_failed',
  'canceled',
  'partially_refunded',
  'refunded',
  'disputed',
  'needs_review',
  'expired',
] as const satisfies readonly OrderStatus[];

/** Stripe's largest charge amount (eight digits in minor units). */
export const MAX_AMOUNT = 99_999_999;

/** ISO 4217 codes the runtime knows (ICU's list), lower case as Stripe writes them. */
const ISO_CURRENCIES = new Set(Intl.supportedValuesOf('currency').map((code) => code.toLowerCase()));

/** An ISO 4217 alphabetic code, normalised to Stripe's lower case; undefined for anything else. */
export function normalizeCurrency(code: string): string | undefined {
  const lower = code.trim().toLowerCase();
  return ISO_CURRENCIES.has(lower) ? lower : undefined;
}

/** An account id: the caller's own external id (also a JWT's `sub`). */
export const ACCOUNT_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
