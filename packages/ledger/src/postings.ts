import type { LedgerEntryType, Prisma } from '@ledger/shared';
import { moveOrder } from './orders.js';
import * as statements from './statements.js';
import type { FactResult, HeldEntry, OrderRow, Posting } from './types.js';

type Tx = Prisma.TransactionClient;

/**
 * The sign of each entry type: money in (+1), money out (-1), or the amount's own (0: an
 * operator's adjustment goes either way, never 0). PostgreSQL holds the same rule as a CHECK on
 * ledger_entries (migration 20261207100000_ledger_sign_per_type), so a caller that gets it wrong
 * is refused by the database too.
 */
export const ENTRY_SIGN: Record<LedgerEntryType, 1 | -1 | 0> = {
  topup: 1,
  refund: -1,
  dispute: -1,
  dispute_reversal: 1,
  refund_reversal: 1,
  adjustment: 0,
  debit: -1,
  hold_capture: -1,
};

/** The signed amount an entry of `type` records for `amount` (a magnitude; signed for an adjustment). */
export function signedAmount(type: LedgerEntryType, amount: number): number {
  const sign = ENTRY_SIGN[type];
  if (!Number.isSafeInteger(amount) || amount === 0 || (sign !== 0 && amount < 0)) {
    throw new RangeError(
      sign === 0
        ? `an ${type} is a nonzero integer amount, got ${amount}`
        : `a ${type} posts a positive integer amount (its sign comes from its type), got ${amount}`,
    );
  }
  return sign === 0 ? amount : sign * amount;
}

/**
 * Posts one entry and, only if it went in, moves the account's balance by it. Returns whether it
 * went in: false means the ledger already holds this (account, type, reference) — or another unique
 * rule (one top-up per order) refused it — and nothing moved. The caller holds the account's lock.
 */
export async function post(tx: Tx, posting: Posting): Promise<boolean> {
  const amount = signedAmount(posting.type, posting.amount);
  const inserted = await tx.$executeRaw(statements.insertEntry({ ...posting, signedAmount: amount }));
  if (inserted === 0) return false;
  await tx.$executeRaw(statements.moveBalance(posting.accountId, amount));
  return true;
}

/** Whether the account's ledger holds an entry of this type and reference. */
export async function hasEntry(tx: Tx, accountId: string, type: LedgerEntryType, reference: string): Promise<boolean> {
  return (await tx.$queryRaw<{ id: bigint }[]>(statements.entryOf(accountId, type, reference))).length > 0;
}

/** Whether a fact of the order with this type and reference is held (settled or not). */
export async function isHeld(tx: Tx, orderId: string, type: LedgerEntryType, reference: string): Promise<boolean> {
  return (await tx.$queryRaw<{ id: bigint }[]>(statements.heldFactOf(orderId, type, reference))).length > 0;
}

/**
 * Records, instead of posting it, the entry a fact would have made, for an operator, and flags the
 * order. Idempotent per (order, entry type, reference): a fact already held stays held; one an
 * operator already settled is done. The held amount carries the sign the entry would have had.
 */
export async function holdFact(tx: Tx, order: OrderRow, held: HeldEntry, reason: string, eventId: string | null): Promise<FactResult> {
  const inserted = await tx.$queryRaw<{ id: bigint }[]>(
    // A held payment of 0 (a mismatch with its order) is kept as it came.
    statements.insertHeldFact(
      order,
      { ...held, signedAmount: held.amount === 0 ? 0 : signedAmount(held.type, held.amount) },
      reason,
      eventId,
    ),
  );
  if (inserted.length > 0) {
    await moveOrder(tx, order, { kind: 'review', reason });
    return { outcome: 'held', detail: reason };
  }
  const [existing] = await tx.$queryRaw<{ resolution_id: string | null; reason: string }[]>(
    statements.heldFactOf(order.id, held.type, held.reference),
  );
  return existing?.resolution_id ? { outcome: 'already_applied' } : { outcome: 'held', detail: existing?.reason ?? reason };
}
