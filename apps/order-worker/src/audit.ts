import type { PrismaClient } from '@ledger/shared';

/** One inconsistency the audit found. */
export interface AuditProblem {
  kind: 'balance_drift' | 'credited_without_topup' | 'topup_count';
  subject: string;
  detail: string;
}

export interface AuditReport {
  accounts: number;
  ledgerEntries: number;
  creditedOrders: number;
  problems: AuditProblem[];
}

/** Statuses that say the order's top-up was credited. */
const CREDITED_STATUSES = ['credited', 'partially_refunded', 'refunded', 'disputed'];

/**
 * Checks the money invariants: every balance equals the sum of its ledger entries, and every
 * credited order has exactly one top-up entry (a disputed or refunded order was credited first).
 * Reads in one REPEATABLE READ snapshot so concurrent credits cannot show as drift.
 */
export async function auditLedger(prisma: PrismaClient): Promise<AuditReport> {
  return prisma.$transaction(
    async (tx) => {
      const drift = await tx.$queryRaw<{ id: string; balance: bigint; ledger: bigint }[]>`
        SELECT a.id, a.balance, COALESCE(SUM(l.amount), 0)::bigint AS ledger
        FROM accounts a LEFT JOIN ledger_entries l ON l.account_id = a.id
        GROUP BY a.id, a.balance
        HAVING a.balance <> COALESCE(SUM(l.amount), 0)
        ORDER BY a.id`;
      const topups = await tx.$queryRaw<{ id: string; status: string; topups: bigint }[]>`
        SELECT o.id, o.status::text AS status, COUNT(l.id)::bigint AS topups
        FROM orders o LEFT JOIN ledger_entries l ON l.order_id = o.id AND l.entry_type = 'topup'
        WHERE o.status::text = ANY(${CREDITED_STATUSES}) OR l.id IS NOT NULL
        GROUP BY o.id, o.status
        HAVING (o.status::text = ANY(${CREDITED_STATUSES}) AND COUNT(l.id) <> 1)
            -- A top-up on an order still unpaid means a credit moved money but not its order.
            -- Orders under review are the operators' to settle and are left out.
            OR (NOT (o.status::text = ANY(${CREDITED_STATUSES})) AND o.status <> 'needs_review' AND COUNT(l.id) > 0)
        ORDER BY o.id`;
      const [counts] = await tx.$queryRaw<{ accounts: bigint; entries: bigint; credited: bigint }[]>`
        SELECT (SELECT COUNT(*) FROM accounts) AS accounts,
               (SELECT COUNT(*) FROM ledger_entries) AS entries,
               (SELECT COUNT(*) FROM orders WHERE status::text = ANY(${CREDITED_STATUSES})) AS credited`;
      const problems: AuditProblem[] = [
        ...drift.map((row) => ({
          kind: 'balance_drift' as const,
          subject: `account ${row.id}`,
          detail: `balance ${row.balance} but ledger sums to ${row.ledger} (difference ${row.balance - row.ledger})`,
        })),
        ...topups.map((row) =>
          row.topups === 0n
            ? { kind: 'credited_without_topup' as const, subject: `order ${row.id}`, detail: `status ${row.status} but no top-up ledger entry` }
            : { kind: 'topup_count' as const, subject: `order ${row.id}`, detail: `status ${row.status} with ${row.topups} top-up entries (expected ${CREDITED_STATUSES.includes(row.status) ? 1 : 0})` },
        ),
      ];
      return {
        accounts: Number(counts?.accounts ?? 0),
        ledgerEntries: Number(counts?.entries ?? 0),
        creditedOrders: Number(counts?.credited ?? 0),
        problems,
      };
    },
    { isolationLevel: 'RepeatableRead' },
  );
}
