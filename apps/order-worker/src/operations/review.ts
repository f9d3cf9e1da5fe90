import { randomBytes } from 'node:crypto';
import { withTransaction, type Prisma, type PrismaClient } from '@ledger/shared';
import { lockAccountAndOrder, moveOrder, post } from '@ledger/ledger';

/** An operator's decision on an order under review. */
export interface ResolveRequest {
  orderId: string;
  /** `credit`: post what is held (or `amount`) as one adjustment; `dismiss`: post nothing. */
  decision: 'credit' | 'dismiss';
  note: string;
  resolvedBy: string;
  /** Signed minor units in the account's currency, instead of the sum of the held facts. */
  amount?: number;
}

export type ResolveResult =
  | { outcome: 'resolved'; resolutionId: string; accountId: string; amount: number; heldFacts: number; status: string }
  | { outcome: 'not_under_review'; accountId: string; status: string }
  | { outcome: 'unknown_order' };

/** The request cannot be carried out as given (the message says why); nothing was written. */
export class ReviewRequestError extends Error {
  override name = 'ReviewRequestError';
}

/** Locks the account, then the order (the ledger's lock order); undefined for an unknown order. */
async function lockOrderForReview(tx: Prisma.TransactionClient, orderId: string) {
  const [located] = await tx.$queryRaw<{ account_id: string }[]>`SELECT account_id FROM orders WHERE id = ${orderId}`;
  return located ? lockAccountAndOrder(tx, located.account_id, orderId) : undefined;
}

/**
 * Settles an order under review, exactly once: under the account and order locks, an order no
 * longer under review is left alone (a concurrent or repeated resolve changes nothing). A credit
 * posts ONE `adjustment` entry keyed by the new resolution id; the held facts and their events are
 * marked settled by it, and who, when and why are kept with it.
 */
export async function resolveReview(prisma: PrismaClient, request: ResolveRequest): Promise<ResolveResult> {
  const note = request.note.trim();
  if (!note) throw new ReviewRequestError('a note saying why is required');
  return withTransaction(prisma, async (tx) => {
    const locked = await lockOrderForReview(tx, request.orderId);
    if (!locked) return { outcome: 'unknown_order' as const };
    const { account, order } = locked;
    if (order.review_reason === null) return { outcome: 'not_under_review' as const, accountId: account.id, status: order.status };

    const held = await tx.$queryRaw<{ amount: number; currency: string }[]>`
      SELECT amount, currency FROM held_facts WHERE order_id = ${order.id} AND resolution_id IS NULL`;
    let amount = 0;
    if (request.decision === 'credit') {
      if (request.amount === undefined && held.some((fact) => fact.currency !== account.currency)) {
        throw new ReviewRequestError(`held facts are not in the account's currency (${account.currency}); give the amount to post`);
      }
      amount = request.amount ?? held.reduce((sum, fact) => sum + fact.amount, 0);
      if (!Number.isSafeInteger(amount) || amount === 0)
        throw new ReviewRequestError('nothing to credit: the held facts net to 0 (dismiss instead, or give an amount)');
    }

    const resolutionId = `rsl_${randomBytes(12).toString('base64url')}`;
    await tx.reviewResolution.create({
      data: {
        id: resolutionId,
        orderId: order.id,
        accountId: account.id,
        decision: request.decision,
        amount,
        note,
        resolvedBy: request.resolvedBy,
      },
    });
    if (amount !== 0) {
      await post(tx, {
        type: 'adjustment',
        accountId: account.id,
        currency: account.currency,
        reference: resolutionId,
        amount,
        orderId: order.id,
        eventId: null,
      });
    }
    await tx.$executeRaw`UPDATE held_facts SET resolution_id = ${resolutionId} WHERE order_id = ${order.id} AND resolution_id IS NULL`;
    await tx.$executeRaw`
      UPDATE stripe_events SET status = 'processed', detail = ${`settled by ${resolutionId}`}
      WHERE status = 'held' AND id IN (SELECT stripe_event_id FROM held_facts WHERE resolution_id = ${resolutionId})`;
    await moveOrder(tx, order, { kind: 'review_resolved' });
    return { outcome: 'resolved' as const, resolutionId, accountId: account.id, amount, heldFacts: held.length, status: order.status };
  });
}

/** An order credited more than once, from before one top-up per order was a rule. */
export interface DuplicateTopups {
  orderId: string;
  accountId: string;
  /** Every top-up, oldest first: the first is kept. */
  topups: { id: string; reference: string; amount: number; createdAt: string }[];
}

/** Orders with more than one top-up entry (the data that stops the one-top-up-per-order index). */
export async function listDuplicateTopups(prisma: PrismaClient, limit = 1_000): Promise<DuplicateTopups[]> {
  const rows = await prisma.$queryRaw<
    { order_id: string; account_id: string; id: bigint; reference: string; amount: number; created_at: Date }[]
  >`
    SELECT l.order_id, l.account_id, l.id, l.reference, l.amount, l.created_at
    FROM ledger_entries l
    WHERE l.entry_type = 'topup' AND l.order_id IN (
      SELECT order_id FROM ledger_entries WHERE entry_type = 'topup' AND order_id IS NOT NULL
      GROUP BY order_id HAVING COUNT(*) > 1 ORDER BY order_id LIMIT ${limit})
    ORDER BY l.order_id, l.id`;
  const byOrder = new Map<string, DuplicateTopups>();
  for (const row of rows) {
    const entry = byOrder.get(row.order_id) ?? { orderId: row.order_id, accountId: row.account_id, topups: [] };
    entry.topups.push({ id: row.id.toString(), reference: row.reference, amount: row.amount, createdAt: row.created_at.toISOString() });
    byOrder.set(row.order_id, entry);
  }
  return [...byOrder.values()];
}

/**
 * Settles the duplicate top-ups of one order: the first top-up stays; each later one becomes an
 * `adjustment` keyed by its own resolution (`rsl_dup_<entry id>`, so a second run changes nothing),
 * with the same amount — the balance still equals the ledger — and its payment is recorded as held
 * and credited by that resolution, so its refund debits as it should. The order goes to
 * `needs_review`: the customer paid twice, and an operator refunds one payment at Stripe and then
 * dismisses the review. Afterwards the one-top-up-per-order index can be built.
 */
export async function resolveDuplicateTopups(
  prisma: PrismaClient,
  request: { orderId: string; note: string; resolvedBy: string },
): Promise<{ converted: number }> {
  const note = request.note.trim();
  if (!note) throw new ReviewRequestError('a note saying why is required');
  return withTransaction(prisma, async (tx) => {
    const locked = await lockOrderForReview(tx, request.orderId);
    if (!locked) throw new ReviewRequestError(`no order ${request.orderId}`);
    const { account, order } = locked;
    const topups = await tx.$queryRaw<{ id: bigint; reference: string; amount: number; currency: string }[]>`
      SELECT id, reference, amount, currency FROM ledger_entries WHERE order_id = ${order.id} AND entry_type = 'topup' ORDER BY id`;
    const [kept, ...duplicates] = topups;
    if (!kept || duplicates.length === 0) return { converted: 0 };
    for (const duplicate of duplicates) {
      const resolutionId = `rsl_dup_${duplicate.id}`;
      const reason = `duplicate top-up ${duplicate.reference} of an order already credited by ${kept.reference}: the customer paid twice, refund one`;
      await tx.reviewResolution.create({
        data: {
          id: resolutionId,
          orderId: order.id,
          accountId: account.id,
          decision: 'credit',
          amount: duplicate.amount,
          note,
          resolvedBy: request.resolvedBy,
        },
      });
      // The one UPDATE of a posted entry, and only ever before migration 20261207100200 makes the
      // ledger append-only: duplicates exist only in a database from before the one-top-up rule
      // (20261130150400), and the upgrade recipe resolves them there (npm run migrate -- --until).
      await tx.$executeRaw`
        UPDATE ledger_entries SET entry_type = 'adjustment', reference = ${resolutionId} WHERE id = ${duplicate.id}`;
      await tx.$executeRaw`
        INSERT INTO held_facts (order_id, account_id, entry_type, reference, amount, currency, reason, resolution_id)
        VALUES (${order.id}, ${account.id}, 'topup', ${duplicate.reference}, ${duplicate.amount}, ${duplicate.currency}, ${reason}, ${resolutionId})
        ON CONFLICT (order_id, entry_type, reference) DO NOTHING`;
      await moveOrder(tx, order, { kind: 'review', reason });
    }
    return { converted: duplicates.length };
  });
}
