import type { PrismaClient } from './database.js';

/** An order under review, as operators list it (`npm run review -- list`, `GET /admin/reviews`). */
export interface ReviewSummary {
  orderId: string;
  accountId: string;
  amount: number;
  currency: string;
  reason: string;
  /** Facts waiting for the operator, and what they would post together (signed minor units). */
  heldFacts: number;
  heldAmount: number;
  updatedAt: string;
}

/** One held fact, as `show` prints it. */
export interface HeldFactView {
  entryType: string;
  reference: string;
  amount: number;
  currency: string;
  reason: string;
  stripeEventId: string | null;
  resolutionId: string | null;
  createdAt: string;
}

export interface ResolutionView {
  id: string;
  decision: string;
  amount: number;
  note: string;
  resolvedBy: string;
  createdAt: string;
}

export interface ReviewDetail {
  order: { id: string; accountId: string; amount: number; currency: string; status: string; paymentIntentId: string | null; reviewReason: string | null };
  heldFacts: HeldFactView[];
  resolutions: ResolutionView[];
  ledger: { type: string; amount: number; reference: string; createdAt: string }[];
}

/** Orders under review, oldest first, with what is held for each. */
export async function listReviews(prisma: PrismaClient, limit = 500): Promise<ReviewSummary[]> {
  const rows = await prisma.$queryRaw<
    { id: string; account_id: string; amount: number; currency: string; review_reason: string; held: bigint; held_amount: bigint; updated_at: Date }[]
  >`
    SELECT o.id, o.account_id, o.amount, o.currency, o.review_reason, o.updated_at,
           COUNT(h.id) AS held, COALESCE(SUM(h.amount), 0)::bigint AS held_amount
    FROM orders o LEFT JOIN held_facts h ON h.order_id = o.id AND h.resolution_id IS NULL
    WHERE o.review_reason IS NOT NULL
    GROUP BY o.id
    ORDER BY o.updated_at, o.id
    LIMIT ${limit}`;
  return rows.map((row) => ({
    orderId: row.id,
    accountId: row.account_id,
    amount: row.amount,
    currency: row.currency,
    reason: row.review_reason,
    heldFacts: Number(row.held),
    heldAmount: Number(row.held_amount),
    updatedAt: row.updated_at.toISOString(),
  }));
}

/** Everything an operator needs to decide on one order; undefined for an unknown order. */
export async function showReview(prisma: PrismaClient, orderId: string): Promise<ReviewDetail | undefined> {
  const order = await prisma.order.findUnique({ where: { id: orderId } });
  if (!order) return undefined;
  const [heldFacts, resolutions, ledger] = await Promise.all([
    prisma.heldFact.findMany({ where: { orderId }, orderBy: { id: 'asc' } }),
    prisma.reviewResolution.findMany({ where: { orderId }, orderBy: { createdAt: 'asc' } }),
    prisma.ledgerEntry.findMany({ where: { orderId }, orderBy: { id: 'asc' } }),
  ]);
  return {
    order: {
      id: order.id,
      accountId: order.accountId,
      amount: order.amount,
      currency: order.currency,
      status: order.status,
      paymentIntentId: order.paymentIntentId,
      reviewReason: order.reviewReason,
    },
    heldFacts: heldFacts.map((fact) => ({
      entryType: fact.entryType,
      reference: fact.reference,
      amount: fact.amount,
      currency: fact.currency,
      reason: fact.reason,
      stripeEventId: fact.stripeEventId,
      resolutionId: fact.resolutionId,
      createdAt: fact.createdAt.toISOString(),
    })),
    resolutions: resolutions.map((resolution) => ({
      id: resolution.id,
      decision: resolution.decision,
      amount: resolution.amount,
      note: resolution.note,
      resolvedBy: resolution.resolvedBy,
      createdAt: resolution.createdAt.toISOString(),
    })),
    ledger: ledger.map((entry) => ({ type: entry.entryType, amount: entry.amount, reference: entry.reference, createdAt: entry.createdAt.toISOString() })),
  };
}
