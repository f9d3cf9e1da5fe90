import { BALANCE_DRIFT_SQL } from '@ledger/ledger';
import { withTransaction, type PrismaClient } from '@ledger/shared';

/** One inconsistency the audit found. */
export interface AuditProblem {
  kind: 'balance_drift' | 'credited_without_topup' | 'topup_count' | 'refunded_amount_drift';
  subject: string;
  detail: string;
}

/** What waits for an operator: not drift, but money that has not reached the ledger yet. */
export interface HeldReport {
  /** Held facts not resolved yet, and the orders they are on. */
  facts: number;
  orders: string[];
  /** Inbox events recorded as held. */
  events: number;
}

/** Money per currency, in minor units (what finance reads). */
export interface CurrencyTotals {
  currency: string;
  /** Top-ups. */
  credited: number;
  /** Refunds, less those that failed or were canceled. */
  refunded: number;
  /** Disputes, less those won. */
  disputed: number;
  /** Operators' adjustments (signed). */
  adjusted: number;
  /** Debits and captured holds. */
  spent: number;
  /** Active holds (not captured, released or past their expiry). */
  held: number;
  /** The credit customers still hold: the sum of positive balances, what finance carries as a liability. */
  outstanding: number;
  /** What accounts in debt owe (a refund or lost dispute after the credit was spent). */
  debt: number;
}

/** An account whose balance is below zero: never hidden, and it spends nothing until repaid. */
export interface AccountDebt {
  accountId: string;
  currency: string;
  balance: number;
}

export interface AuditReport {
  accounts: number;
  ledgerEntries: number;
  creditedOrders: number;
  reviewOrders: number;
  held: HeldReport;
  totals: CurrencyTotals[];
  /** Accounts in debt, deepest first. */
  debts: AccountDebt[];
  problems: AuditProblem[];
}

/** Statuses that say the order's payment was credited. */
const CREDITED_STATUSES = ['credited', 'partially_refunded', 'refunded', 'disputed'];

/**
 * Checks the money invariants over every order, those under review included: every balance equals
 * the sum of its ledger entries; a credited order has a credit (its top-up, or an operator's
 * adjustment) and an unpaid one has no top-up; no order has two top-ups; each order's refunded
 * amount equals its refund entries. Also reports what is held for operators, the money per currency
 * (credited, refunded, disputed, spent, held, outstanding, debt) and the accounts in debt. Reads in one
 * REPEATABLE READ snapshot so concurrent credits cannot show as drift.
 */
export async function auditLedger(prisma: PrismaClient): Promise<AuditReport> {
  return withTransaction(
    prisma,
    async (tx) => {
      const drift = await tx.$queryRawUnsafe<{ id: string; balance: bigint; ledger: bigint }[]>(BALANCE_DRIFT_SQL);
      const credits = await tx.$queryRaw<{ id: string; status: string; topups: bigint; credits: bigint }[]>`
        SELECT o.id, o.status::text AS status,
               COUNT(l.id) FILTER (WHERE l.entry_type = 'topup')::bigint AS topups,
               COUNT(l.id) FILTER (WHERE l.entry_type = 'topup' OR (l.entry_type = 'adjustment' AND l.amount > 0))::bigint AS credits
        FROM orders o LEFT JOIN ledger_entries l ON l.order_id = o.id AND l.entry_type IN ('topup', 'adjustment')
        WHERE o.status::text = ANY(${CREDITED_STATUSES}) OR l.id IS NOT NULL
        GROUP BY o.id, o.status
        HAVING COUNT(l.id) FILTER (WHERE l.entry_type = 'topup') > 1
            OR (o.status::text = ANY(${CREDITED_STATUSES}) AND COUNT(l.id) FILTER (WHERE l.entry_type = 'topup' OR (l.entry_type = 'adjustment' AND l.amount > 0)) = 0)
            -- A top-up on an order still unpaid means a credit moved money but not its order.
            OR (o.status::text <> ALL(${CREDITED_STATUSES}) AND o.status <> 'needs_review' AND COUNT(l.id) FILTER (WHERE l.entry_type = 'topup') > 0)
        ORDER BY o.id`;
      const refunds = await tx.$queryRaw<{ id: string; recorded: number; ledger: bigint }[]>`
        SELECT o.id, o.amount_refunded AS recorded, COALESCE(-SUM(l.amount), 0)::bigint AS ledger
        FROM orders o JOIN ledger_entries l ON l.order_id = o.id AND l.entry_type IN ('refund', 'refund_reversal')
        GROUP BY o.id, o.amount_refunded
        HAVING o.amount_refunded <> COALESCE(-SUM(l.amount), 0)
        ORDER BY o.id`;
      const heldOrders = await tx.$queryRaw<{ order_id: string; facts: bigint }[]>`
        SELECT order_id, COUNT(*)::bigint AS facts FROM held_facts WHERE resolution_id IS NULL GROUP BY order_id ORDER BY order_id`;
      const totals = await tx.$queryRaw<Record<keyof CurrencyTotals, string | bigint>[]>`
        WITH entries AS (
          SELECT currency,
                 COALESCE(SUM(amount) FILTER (WHERE entry_type = 'topup'), 0) AS credited,
                 COALESCE(-SUM(amount) FILTER (WHERE entry_type IN ('refund', 'refund_reversal')), 0) AS refunded,
                 COALESCE(-SUM(amount) FILTER (WHERE entry_type IN ('dispute', 'dispute_reversal')), 0) AS disputed,
                 COALESCE(SUM(amount) FILTER (WHERE entry_type = 'adjustment'), 0) AS adjusted,
                 COALESCE(-SUM(amount) FILTER (WHERE entry_type IN ('debit', 'hold_capture')), 0) AS spent
          FROM ledger_entries GROUP BY currency
        ), balances AS (
          SELECT currency, COALESCE(SUM(balance) FILTER (WHERE balance > 0), 0) AS outstanding,
                 COALESCE(-SUM(balance) FILTER (WHERE balance < 0), 0) AS debt
          FROM accounts GROUP BY currency
        ), holds AS (
          -- ledger_held: the one definition of an active hold (the spending functions use it too).
          SELECT currency, SUM(ledger_held(id, clock_timestamp())) AS held FROM accounts GROUP BY currency
        )
        SELECT currency, COALESCE(e.credited, 0)::bigint AS credited, COALESCE(e.refunded, 0)::bigint AS refunded,
               COALESCE(e.disputed, 0)::bigint AS disputed, COALESCE(e.adjusted, 0)::bigint AS adjusted,
               COALESCE(e.spent, 0)::bigint AS spent, COALESCE(h.held, 0)::bigint AS held,
               COALESCE(b.outstanding, 0)::bigint AS outstanding, COALESCE(b.debt, 0)::bigint AS debt
        FROM entries e FULL JOIN balances b USING (currency) FULL JOIN holds h USING (currency)
        ORDER BY currency`;
      const debts = await tx.$queryRaw<{ id: string; currency: string; balance: bigint }[]>`
        SELECT id, currency, balance FROM accounts WHERE balance < 0 ORDER BY balance, id`;
      const [counts] = await tx.$queryRaw<{ accounts: bigint; entries: bigint; credited: bigint; review: bigint; held_events: bigint }[]>`
        SELECT (SELECT COUNT(*) FROM accounts) AS accounts,
               (SELECT COUNT(*) FROM ledger_entries) AS entries,
               (SELECT COUNT(*) FROM orders WHERE status::text = ANY(${CREDITED_STATUSES})) AS credited,
               (SELECT COUNT(*) FROM orders WHERE review_reason IS NOT NULL) AS review,
               (SELECT COUNT(*) FROM stripe_events WHERE status = 'held') AS held_events`;
      const problems: AuditProblem[] = [
        ...drift.map((row) => ({
          kind: 'balance_drift' as const,
          subject: `account ${row.id}`,
          detail: `balance ${row.balance} but ledger sums to ${row.ledger} (difference ${row.balance - row.ledger})`,
        })),
        ...credits.map((row) =>
          row.topups > 1n
            ? {
                kind: 'topup_count' as const,
                subject: `order ${row.id}`,
                detail: `status ${row.status} with ${row.topups} top-up entries (at most 1; npm run review -- duplicates)`,
              }
            : row.credits === 0n
              ? {
                  kind: 'credited_without_topup' as const,
                  subject: `order ${row.id}`,
                  detail: `status ${row.status} but no top-up ledger entry`,
                }
              : {
                  kind: 'topup_count' as const,
                  subject: `order ${row.id}`,
                  detail: `status ${row.status} with ${row.topups} top-up entries (expected 0)`,
                },
        ),
        ...refunds.map((row) => ({
          kind: 'refunded_amount_drift' as const,
          subject: `order ${row.id}`,
          detail: `refunded amount ${row.recorded} but refund entries sum to ${row.ledger}`,
        })),
      ];
      return {
        accounts: Number(counts?.accounts ?? 0),
        ledgerEntries: Number(counts?.entries ?? 0),
        creditedOrders: Number(counts?.credited ?? 0),
        reviewOrders: Number(counts?.review ?? 0),
        held: {
          facts: heldOrders.reduce((sum, row) => sum + Number(row.facts), 0),
          orders: heldOrders.map((row) => row.order_id),
          events: Number(counts?.held_events ?? 0),
        },
        totals: totals.map((row) => ({
          currency: String(row.currency),
          credited: Number(row.credited),
          refunded: Number(row.refunded),
          disputed: Number(row.disputed),
          adjusted: Number(row.adjusted),
          spent: Number(row.spent),
          held: Number(row.held),
          outstanding: Number(row.outstanding),
          debt: Number(row.debt),
        })),
        debts: debts.map((row) => ({ accountId: row.id, currency: row.currency, balance: Number(row.balance) })),
        problems,
      };
    },
    { isolationLevel: 'RepeatableRead' },
  );
}
