import { z } from 'zod';
import { ORDER_STATUSES, type PrismaClient } from '@ledger/shared';

/** Whose order and how much (minor units). */
const orderAmount = { accountId: z.string(), amount: z.number().int(), currency: z.string() };

/** An order under review, as operators list it (`npm run review -- list`, `GET /admin/reviews`). */
export const reviewSummarySchema = z.object({
  orderId: z.string(),
  ...orderAmount,
  reason: z.string(),
  /** Facts waiting for the operator, and what they would post together (signed minor units). */
  heldFacts: z.number().int(),
  heldAmount: z.number().int(),
  updatedAt: z.string(),
});
export type ReviewSummary = z.infer<typeof reviewSummarySchema>;

/** Everything an operator needs to decide on one order (`npm run review -- show`, `GET /admin/reviews/:orderId`). */
export const reviewDetailSchema = z.object({
  order: z.object({
    id: z.string(),
    ...orderAmount,
    status: z.enum(ORDER_STATUSES),
    paymentIntentId: z.string().nullable(),
    reviewReason: z.string().nullable(),
  }),
  heldFacts: z.array(
    z.object({
      entryType: z.string(),
      reference: z.string(),
      amount: z.number().int(),
      currency: z.string(),
      reason: z.string(),
      stripeEventId: z.string().nullable(),
      resolutionId: z.string().nullable(),
      createdAt: z.string(),
    }),
  ),
  resolutions: z.array(
    z.object({
      id: z.string(),
      decision: z.string(),
      amount: z.number().int(),
      note: z.string(),
      resolvedBy: z.string(),
      createdAt: z.string(),
    }),
  ),
  ledger: z.array(z.object({ type: z.string(), amount: z.number().int(), reference: z.string(), createdAt: z.string() })),
});
export type ReviewDetail = z.infer<typeof reviewDetailSchema>;

/** Orders under review, oldest first, with what is held for each. */
export async function listReviews(prisma: PrismaClient, limit = 500): Promise<ReviewSummary[]> {
  const rows = await prisma.$queryRaw<
    {
      id: string;
      account_id: string;
      amount: number;
      currency: string;
      review_reason: string;
      held: bigint;
      held_amount: bigint;
      updated_at: Date;
    }[]
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

/** Money waiting for an operator, as the worker's `/metrics` reports it (ages in seconds, 0 when none waits). */
export interface ReviewBacklog {
  heldFacts: number;
  oldestHeldFactSeconds: number;
  ordersUnderReview: number;
  /** Since the oldest unsettled held fact of the order (its last change when it has none). */
  oldestReviewSeconds: number;
}

/**
 * One read per scrape, never per job: held facts are few (unsettled ones a handful) and orders under
 * review are found through the `(status, created_at)` index.
 */
export async function reviewBacklog(prisma: PrismaClient): Promise<ReviewBacklog> {
  const [row] = await prisma.$queryRaw<{ held: bigint; held_oldest: number | null; reviews: bigint; review_oldest: number | null }[]>`
    SELECT (SELECT COUNT(*) FROM held_facts WHERE resolution_id IS NULL) AS held,
           (SELECT EXTRACT(EPOCH FROM clock_timestamp() - MIN(created_at))::float8 FROM held_facts WHERE resolution_id IS NULL) AS held_oldest,
           COUNT(*) AS reviews,
           EXTRACT(EPOCH FROM clock_timestamp() - MIN(since))::float8 AS review_oldest
    FROM (SELECT COALESCE(MIN(h.created_at), o.updated_at) AS since
          FROM orders o LEFT JOIN held_facts h ON h.order_id = o.id AND h.resolution_id IS NULL
          WHERE o.status = 'needs_review'
          GROUP BY o.id) AS under_review`;
  return {
    heldFacts: Number(row?.held ?? 0),
    oldestHeldFactSeconds: Math.max(0, row?.held_oldest ?? 0),
    ordersUnderReview: Number(row?.reviews ?? 0),
    oldestReviewSeconds: Math.max(0, row?.review_oldest ?? 0),
  };
}

/** Everything an operator needs to decide on one order; undefined for an unknown order. */
export async function showReview(prisma: PrismaClient, orderId: string): Promise<ReviewDetail | undefined> {
  const order = await prisma.order.findUnique({
    where: { id: orderId },
    select: { id: true, accountId: true, amount: true, currency: true, status: true, paymentIntentId: true, reviewReason: true },
  });
  if (!order) return undefined;
  const [heldFacts, resolutions, ledger] = await Promise.all([
    prisma.heldFact.findMany({ where: { orderId }, orderBy: { id: 'asc' } }),
    prisma.reviewResolution.findMany({ where: { orderId }, orderBy: { createdAt: 'asc' } }),
    prisma.ledgerEntry.findMany({ where: { orderId }, orderBy: { id: 'asc' } }),
  ]);
  return {
    order,
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
    ledger: ledger.map((entry) => ({
      type: entry.entryType,
      amount: entry.amount,
      reference: entry.reference,
      createdAt: entry.createdAt.toISOString(),
    })),
  };
}
