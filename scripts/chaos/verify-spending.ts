/**
 * The verdict on spending: the ledger and the holds table against what the spending client believes
 * (spending.ts), and no account's spending beyond the money it was given.
 */
import { expireHolds } from '@ledger/ledger';
import type { PrismaClient } from '@ledger/shared';
import type { SpendingBook } from './spending.js';

/** The comparison. Every count but the totals should be 0. */
export interface SpendingReport {
  /** Debit and hold_capture entries in the ledger, holds in the table. */
  debits: number;
  captures: number;
  holds: number;
  /** Debits the client was told were done; of them, told so by a replay (200: its first answer was lost). */
  confirmedDebits: number;
  replayedDebits: number;
  /** Holds the client was told were placed by a replay (200). */
  replayedHolds: number;
  /** Operations refused for insufficient funds (debits and holds). */
  refused: number;
  /** Holds the client was told were released. */
  released: number;
  /** Holds recorded as expired: by the workers' scheduled sweep during the run, or by the judge's after it. */
  swept: number;
  /** Operations with no definitive answer before the run ended (either outcome is right for them). */
  unresolved: number;
  requests: number;
  retries: number;
  /** Answers the client threw away on purpose, so that its retry had to replay. */
  lostAnswers: number;
  /**
   * Accounts whose spending went beyond their money at some entry: replayed in ledger order (the
   * order of the account's row lock), the debits and captures so far exceed the credits so far, or a
   * debit left the balance below zero. (A capture may: a refund after the hold takes money the hold
   * had reserved.)
   */
  overspent: number;
  /** Confirmed debits or captures the ledger lacks, and holds the client placed that are missing. */
  lost: number;
  /** Spending entries present twice (a reference or a hold applied again), or that no client asked for. */
  doubled: number;
  /** Entries or holds that contradict the client's answers (an amount, a status, a refused operation that happened). */
  wrong: number;
  /** Holds still active and unexpired after the run (every one was released, captured or short-lived). */
  activeHolds: number;
  /** Definitive answers the client did not expect (a 400, a 409 on a fresh reference…). */
  unexpectedAnswers: number;
  details: string[];
}

const MAX_DETAILS = 30;

interface EntryRow {
  id: string;
  account_id: string;
  entry_type: string;
  amount: number;
  reference: string;
}

interface HoldRow {
  id: string;
  account_id: string;
  amount: number;
  reference: string;
  status: string;
  captured_amount: number;
  live: boolean;
}

const SPENDING_TYPES = new Set(['debit', 'hold_capture']);

export async function verifySpending(prisma: PrismaClient, book: SpendingBook): Promise<SpendingReport> {
  const details: string[] = [];
  const note = (line: string) => {
    if (details.length < MAX_DETAILS) details.push(line);
  };
  // As an operator's sweep would: the holds past their expiry recorded as expired. The workers'
  // scheduled sweep may have recorded some already (a long run outlasts its interval): both count.
  await expireHolds(prisma);
  const swept = await prisma.hold.count({ where: { status: 'expired' } });

  // By the bigint id (the output column id is text): per account, the order of the row lock.
  const entries = await prisma.$queryRaw<EntryRow[]>`
    SELECT id::text AS id, account_id, entry_type::text AS entry_type, amount, reference FROM ledger_entries
    ORDER BY account_id, ledger_entries.id`;
  const holdRows = await prisma.$queryRaw<HoldRow[]>`
    SELECT id, account_id, amount, reference, status::text AS status, captured_amount, expires_at > now() AS live FROM holds`;

  // Overspending, account by account in ledger order.
  let overspent = 0;
  let account: string | undefined;
  let credited = 0;
  let spent = 0;
  let balance = 0;
  let flagged = false;
  for (const entry of entries) {
    if (entry.account_id !== account) {
      account = entry.account_id;
      credited = 0;
      spent = 0;
      balance = 0;
      flagged = false;
    }
    balance += entry.amount;
    if (!SPENDING_TYPES.has(entry.entry_type)) {
      if (entry.amount > 0) credited += entry.amount;
      continue;
    }
    spent -= entry.amount;
    const beyondCredits = spent > credited;
    const debitIntoDebt = entry.entry_type === 'debit' && balance < 0;
    if ((beyondCredits || debitIntoDebt) && !flagged) {
      flagged = true;
      overspent += 1;
      note(
        `overspent: account ${entry.account_id} at ${entry.entry_type} entry ${entry.id} (${entry.amount}): spent ${spent} of ${credited} credited, balance ${balance}`,
      );
    }
  }

  let lost = 0;
  let doubled = 0;
  let wrong = 0;

  // Debits: one entry per (account, reference), and exactly the ones the client was told were done.
  const debitEntries = new Map<string, EntryRow[]>();
  const captureEntries = new Map<string, EntryRow[]>();
  for (const entry of entries) {
    if (entry.entry_type === 'debit') {
      const key = `${entry.account_id}:${entry.reference}`;
      debitEntries.set(key, [...(debitEntries.get(key) ?? []), entry]);
    } else if (entry.entry_type === 'hold_capture') {
      captureEntries.set(entry.reference, [...(captureEntries.get(entry.reference) ?? []), entry]);
    }
  }
  for (const [key, found] of debitEntries) {
    if (found.length > 1) {
      doubled += found.length - 1;
      note(`doubled: ${found.length} debit entries for ${key}`);
    }
  }
  const askedDebits = new Set<string>();
  for (const debit of book.debits) {
    const key = `${debit.accountId}:${debit.reference}`;
    askedDebits.add(key);
    const found = debitEntries.get(key) ?? [];
    if (debit.outcome === 'debited') {
      if (found.length === 0) {
        lost += 1;
        note(`lost: debit ${key} of ${debit.amount} answered ${debit.status} but is not in the ledger`);
      }
    } else if (debit.outcome === 'refused' && found.length > 0) {
      wrong += 1;
      note(`wrong: debit ${key} answered ${debit.status} (refused) but the ledger has it`);
    }
    for (const entry of found) {
      if (entry.amount !== -debit.amount) {
        wrong += 1;
        note(`wrong: debit ${key} is ${entry.amount} in the ledger, the client debited ${debit.amount}`);
      }
    }
  }
  for (const [key, found] of debitEntries) {
    if (askedDebits.has(key)) continue;
    doubled += found.length;
    note(`unexpected: debit entry ${key} that no client asked for`);
  }

  // Holds: each placed one is in the table; a captured one has exactly one capture entry, of its captured amount.
  const holdById = new Map(holdRows.map((hold) => [hold.id, hold]));
  const holdByReference = new Map(holdRows.map((hold) => [`${hold.account_id}:${hold.reference}`, hold]));
  const askedHolds = new Set<string>();
  for (const hold of book.holds) {
    const key = `${hold.accountId}:${hold.reference}`;
    askedHolds.add(key);
    const row = holdByReference.get(key);
    if (hold.placed === 'held') {
      if (!row || row.id !== hold.holdId) {
        lost += 1;
        note(`lost: hold ${key} answered ${hold.status} (${hold.holdId}) but the table has ${row?.id ?? 'none'}`);
        continue;
      }
    } else if (hold.placed === 'refused' && row) {
      wrong += 1;
      note(`wrong: hold ${key} answered ${hold.status} (refused) but the table has ${row.id}`);
    }
    if (row && row.amount !== hold.amount) {
      wrong += 1;
      note(`wrong: hold ${row.id} holds ${row.amount}, the client held ${hold.amount}`);
    }
    if (!row) continue;
    for (const step of hold.steps) {
      if (step.outcome === 'done' && step.kind === 'capture') {
        const asked = step.amount ?? hold.amount;
        if (row.status !== 'captured' || row.captured_amount !== step.capturedAmount || step.capturedAmount !== asked) {
          wrong += 1;
          note(
            `wrong: capture of ${asked} of hold ${row.id} answered ${step.capturedAmount} but the hold is ${row.status} (${row.captured_amount})`,
          );
        }
      } else if (step.outcome === 'done' && step.kind === 'release' && row.status !== 'released') {
        wrong += 1;
        note(`wrong: hold ${row.id} was released (answer 200) but is ${row.status}`);
      } else if (step.outcome === 'not_active' && step.kind === 'capture' && row.status === 'captured') {
        // Refused as not active, yet captured: only right if another capture of another amount won.
        const other = hold.steps.some((s) => s !== step && s.kind === 'capture' && s.outcome === 'done');
        if (!other) {
          wrong += 1;
          note(`wrong: capture of hold ${row.id} answered 409 but the hold is captured (${row.captured_amount})`);
        }
      }
    }
  }
  let activeHolds = 0;
  for (const row of holdRows) {
    if (!askedHolds.has(`${row.account_id}:${row.reference}`)) {
      doubled += 1;
      note(`unexpected: hold ${row.id} (${row.account_id}:${row.reference}) that no client asked for`);
    }
    if (row.status === 'active' && row.live) {
      activeHolds += 1;
      note(`active: hold ${row.id} is still active and unexpired after the run`);
    }
    const found = captureEntries.get(row.id) ?? [];
    if (row.status === 'captured' && found.length === 0) {
      lost += 1;
      note(`lost: hold ${row.id} is captured (${row.captured_amount}) but has no capture entry`);
    }
    if (row.status !== 'captured' && found.length > 0) {
      wrong += 1;
      note(`wrong: hold ${row.id} is ${row.status} but has ${found.length} capture entr${found.length === 1 ? 'y' : 'ies'}`);
    }
    if (found.length > 1) {
      doubled += found.length - 1;
      note(`doubled: hold ${row.id} captured ${found.length} times`);
    }
    for (const entry of found) {
      if (entry.account_id !== row.account_id || (row.status === 'captured' && entry.amount !== -row.captured_amount)) {
        wrong += 1;
        note(
          `wrong: capture entry ${entry.id} of hold ${row.id} is ${entry.amount} on ${entry.account_id}, the hold ${row.account_id} captured ${row.captured_amount}`,
        );
      }
    }
  }
  for (const [holdId, found] of captureEntries) {
    if (holdById.has(holdId)) continue;
    doubled += found.length;
    note(`unexpected: capture entry of a hold ${holdId} that does not exist`);
  }

  const steps = book.holds.flatMap((hold) => hold.steps);
  for (const line of book.surprises) note(`answer: ${line}`);
  const unexpectedAnswers =
    book.debits.filter((debit) => debit.outcome === 'unexpected').length +
    book.holds.filter((hold) => hold.placed === 'unexpected').length +
    steps.filter((step) => step.outcome === 'unexpected').length;
  return {
    debits: [...debitEntries.values()].reduce((sum, found) => sum + found.length, 0),
    captures: [...captureEntries.values()].reduce((sum, found) => sum + found.length, 0),
    holds: holdRows.length,
    confirmedDebits: book.debits.filter((debit) => debit.outcome === 'debited').length,
    replayedDebits: book.debits.filter((debit) => debit.outcome === 'debited' && debit.status === 200).length,
    replayedHolds: book.holds.filter((hold) => hold.placed === 'held' && hold.status === 200).length,
    refused:
      book.debits.filter((debit) => debit.outcome === 'refused').length + book.holds.filter((hold) => hold.placed === 'refused').length,
    released: steps.filter((step) => step.kind === 'release' && step.outcome === 'done').length,
    swept,
    unresolved:
      book.debits.filter((debit) => debit.outcome === 'unresolved').length +
      book.holds.filter((hold) => hold.placed === 'unresolved').length +
      steps.filter((step) => step.outcome === 'unresolved').length,
    requests: book.requests,
    retries: book.retries,
    lostAnswers: book.lostAnswers,
    overspent,
    lost,
    doubled,
    wrong,
    activeHolds,
    unexpectedAnswers,
    details,
  };
}
