import type { OrderStatus, PrismaClient } from '@ledger/shared';
import { auditLedger, type AuditProblem } from '../../apps/order-worker/src/operations/audit.js';
import type { OrderRecord } from './workload.js';

/** What the ledger should hold after the run, from what Stripe (the emulator) did. */
interface ExpectedEntry {
  type: 'topup' | 'refund' | 'refund_reversal' | 'dispute' | 'dispute_reversal';
  reference: string;
  amount: number;
  accountId: string;
  orderId: string;
}

/** The order status the contract promises for what happened to its payment. */
export function expectedStatus(record: OrderRecord): OrderStatus {
  if (!record.paid) return record.failedAttempt ? 'payment_failed' : 'awaiting_payment';
  if (record.dispute && record.dispute.status !== 'won') return 'disputed';
  const refunded = record.refunds.filter((refund) => !refund.reversed).reduce((sum, refund) => sum + refund.amount, 0);
  if (refunded >= record.amount) return 'refunded';
  if (refunded > 0) return 'partially_refunded';
  return 'credited';
}

function expectedEntries(records: OrderRecord[]): ExpectedEntry[] {
  const entries: ExpectedEntry[] = [];
  for (const record of records) {
    const base = { accountId: record.accountId, orderId: record.orderId };
    if (record.paid) entries.push({ ...base, type: 'topup', reference: record.paymentIntentId, amount: record.amount });
    for (const refund of record.refunds) {
      entries.push({ ...base, type: 'refund', reference: refund.id, amount: -refund.amount });
      if (refund.reversed) entries.push({ ...base, type: 'refund_reversal', reference: refund.id, amount: refund.amount });
    }
    if (record.dispute) {
      entries.push({ ...base, type: 'dispute', reference: record.dispute.id, amount: -record.dispute.amount });
      if (record.dispute.status === 'won')
        entries.push({ ...base, type: 'dispute_reversal', reference: record.dispute.id, amount: record.dispute.amount });
    }
  }
  return entries;
}

/** The comparison of the database with the ground truth. Every count but the totals should be 0. */
export interface VerifyReport {
  expectedEntries: number;
  /** The ledger's entries of Stripe's facts (spending entries apart: `spendingEntries`). */
  ledgerEntries: number;
  spendingEntries: number;
  /** Expected ledger entries (credits, refund and dispute debits, reversals) that are missing. */
  lost: number;
  /** Expected entries present more than once, plus entries Stripe never asked for. */
  doubled: number;
  /** Entries whose amount, account or order differs from Stripe's. */
  wrongEntries: number;
  /** Accounts whose balance differs from what Stripe's payments, refunds and disputes and the spending entries add up to. */
  balanceMismatches: number;
  /** Orders whose status is not what their payment's history implies. */
  wrongStatuses: number;
  /** Orders in the database beyond the ones placed (a retried POST /orders that made a second one). */
  extraOrders: number;
  /** Inbox rows left in `failed`. */
  failedInboxEvents: number;
  /** Inbox rows left `held` (nothing in the run should need an operator). */
  heldInboxEvents: number;
  /** The other integration's events the inbox recorded as not ours, and those it did not. */
  foreignEventsNotOurs: number;
  foreignEventsMisrecorded: number;
  audit: { accounts: number; ledgerEntries: number; creditedOrders: number; problems: AuditProblem[] };
  /** The first problems found, one line each. */
  details: string[];
}

const MAX_DETAILS = 30;
const SPENDING_TYPES = new Set(['debit', 'hold_capture']);

/** Compares the ledger, balances and orders with what the run made Stripe do. */
export async function verifyRun(prisma: PrismaClient, records: OrderRecord[]): Promise<VerifyReport> {
  const details: string[] = [];
  const note = (line: string) => {
    if (details.length < MAX_DETAILS) details.push(line);
  };

  const expected = expectedEntries(records);
  const allRows = await prisma.$queryRaw<
    { entry_type: string; reference: string; amount: number; account_id: string; order_id: string | null }[]
  >`
    SELECT entry_type::text AS entry_type, reference, amount, account_id, order_id FROM ledger_entries`;
  // Spending (debits and captured holds) is no fact of Stripe's: verify-spending.ts judges those
  // entries against what the spending client was told; here they only count in the balances.
  const rows = allRows.filter((row) => !SPENDING_TYPES.has(row.entry_type));
  const spendingRows = allRows.filter((row) => SPENDING_TYPES.has(row.entry_type));
  const actual = new Map<string, typeof rows>();
  for (const row of rows) {
    const key = `${row.entry_type}:${row.reference}`;
    actual.set(key, [...(actual.get(key) ?? []), row]);
  }

  let lost = 0;
  let doubled = 0;
  let wrongEntries = 0;
  const expectedKeys = new Set<string>();
  for (const entry of expected) {
    const key = `${entry.type}:${entry.reference}`;
    expectedKeys.add(key);
    const found = actual.get(key) ?? [];
    if (found.length === 0) {
      lost += 1;
      note(`lost: no ${entry.type} entry ${entry.reference} (order ${entry.orderId}, ${entry.amount})`);
      continue;
    }
    if (found.length > 1) {
      doubled += found.length - 1;
      note(`doubled: ${found.length} ${entry.type} entries ${entry.reference} (order ${entry.orderId})`);
    }
    for (const row of found) {
      if (row.amount !== entry.amount || row.account_id !== entry.accountId || row.order_id !== entry.orderId) {
        wrongEntries += 1;
        note(
          `wrong entry: ${entry.type} ${entry.reference} is ${row.amount} on ${row.account_id}/${row.order_id}, expected ${entry.amount} on ${entry.accountId}/${entry.orderId}`,
        );
      }
    }
  }
  for (const [key, found] of actual) {
    if (expectedKeys.has(key)) continue;
    doubled += found.length;
    note(`unexpected: ${found.length} ledger entr${found.length === 1 ? 'y' : 'ies'} ${key} that Stripe never reported`);
  }

  const expectedBalances = new Map<string, number>();
  for (const record of records) expectedBalances.set(record.accountId, expectedBalances.get(record.accountId) ?? 0);
  for (const entry of expected) expectedBalances.set(entry.accountId, (expectedBalances.get(entry.accountId) ?? 0) + entry.amount);
  for (const row of spendingRows) expectedBalances.set(row.account_id, (expectedBalances.get(row.account_id) ?? 0) + row.amount);
  const accounts = await prisma.account.findMany({ select: { id: true, balance: true } });
  let balanceMismatches = 0;
  const seenAccounts = new Set<string>();
  for (const account of accounts) {
    seenAccounts.add(account.id);
    const want = BigInt(expectedBalances.get(account.id) ?? 0);
    if (account.balance !== want) {
      balanceMismatches += 1;
      note(`balance: account ${account.id} holds ${account.balance}, Stripe's history and the spending entries say ${want}`);
    }
  }
  for (const id of expectedBalances.keys()) {
    if (!seenAccounts.has(id)) {
      balanceMismatches += 1;
      note(`balance: account ${id} is missing`);
    }
  }

  const orders = await prisma.order.findMany({ select: { id: true, status: true } });
  const statusById = new Map(orders.map((order) => [order.id, order.status]));
  let wrongStatuses = 0;
  for (const record of records) {
    const want = expectedStatus(record);
    const got = statusById.get(record.orderId);
    if (got !== want) {
      wrongStatuses += 1;
      note(`status: order ${record.orderId} (${record.scenario}) is ${got ?? 'missing'}, expected ${want}`);
    }
  }
  const extraOrders = Math.max(0, orders.length - records.length);
  if (extraOrders > 0) note(`orders: ${orders.length} in the database for ${records.length} placed`);

  const failedInbox = await prisma.stripeEvent.findMany({ where: { status: 'failed' }, select: { id: true, type: true, lastError: true } });
  for (const event of failedInbox) note(`inbox: ${event.id} (${event.type}) failed: ${event.lastError ?? '?'}`);

  const held = await prisma.stripeEvent.findMany({ where: { status: 'held' }, select: { id: true, type: true, detail: true } });
  for (const event of held) note(`inbox: ${event.id} (${event.type}) held: ${event.detail ?? '?'}`);
  // The other integration's events: every one the inbox has must say not ours (an unhandled type is
  // never queued; a dropped delivery may be missing until reconciliation).
  const foreignObjects = records.flatMap((record) =>
    record.foreignPayment
      ? [record.foreignPayment.paymentIntentId, ...(record.foreignPayment.refundId ? [record.foreignPayment.refundId] : [])]
      : [],
  );
  const foreignEvents = await prisma.stripeEvent.findMany({
    where: { objectId: { in: foreignObjects } },
    select: { id: true, status: true, type: true },
  });
  const misrecorded = foreignEvents.filter((event) => event.status !== 'not_ours');
  for (const event of misrecorded) note(`inbox: another integration's ${event.type} ${event.id} is ${event.status}, expected not_ours`);

  const audit = await auditLedger(prisma);
  for (const problem of audit.problems) note(`audit: ${problem.kind} ${problem.subject}: ${problem.detail}`);

  return {
    expectedEntries: expected.length,
    ledgerEntries: rows.length,
    spendingEntries: spendingRows.length,
    lost,
    doubled,
    wrongEntries,
    balanceMismatches,
    wrongStatuses,
    extraOrders,
    failedInboxEvents: failedInbox.length,
    heldInboxEvents: held.length,
    foreignEventsNotOurs: foreignEvents.length - misrecorded.length,
    foreignEventsMisrecorded: misrecorded.length,
    audit,
    details,
  };
}
