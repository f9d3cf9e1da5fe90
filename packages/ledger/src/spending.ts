import { randomBytes } from 'node:crypto';
import type { Prisma, PrismaClient } from '@ledger/shared';
import * as statements from './statements.js';

// Spending: debits and holds, for the receiver's routes. Each operation is ONE call of a PostgreSQL
// function (migration 20261207110200_spending_functions): the account's row lock, the check of
// `available = balance − Σ active holds` and the write happen in one statement, so neither a
// concurrent debit nor a retry of the same reference can see a balance that is about to change.
// This module only names the outcomes; it decides nothing.

/** The caller's id of an operation: unique per account, it makes every call safe to retry. */
export const SPENDING_REFERENCE = /^[A-Za-z0-9\-_.:/]{1,200}$/;
/** How long a hold lasts unless the caller says (seconds), and the longest it may. */
export const DEFAULT_HOLD_SECONDS = 900;
export const MAX_HOLD_SECONDS = 7 * 24 * 3600;

/** An account's money as spending sees it: `available = balance − held`; a negative balance is debt. */
export interface AccountFigures {
  accountId: string;
  currency: string;
  balance: number;
  held: number;
  available: number;
}

export interface Debit {
  id: string;
  accountId: string;
  amount: number;
  currency: string;
  reference: string;
  description: string | null;
  status: 'posted';
  createdAt: Date;
}

export type HoldState = 'active' | 'captured' | 'released' | 'expired';

export interface Hold {
  id: string;
  accountId: string;
  amount: number;
  currency: string;
  reference: string;
  /** `expired` as soon as `expiresAt` passed, whether or not the sweeper has recorded it. */
  status: HoldState;
  capturedAmount: number;
  expiresAt: Date;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * Why an operation did nothing: the account or hold is unknown, the currency is not the account's,
 * `available` is too small (a debt included), the reference was used with another body, the hold
 * no longer allows it, or the capture is larger than the hold.
 */
export type SpendingRefusal =
  | 'unknown_account'
  | 'currency_mismatch'
  | 'insufficient_funds'
  | 'reference_conflict'
  | 'unknown_hold'
  | 'hold_not_active'
  | 'exceeds_hold';

/**
 * What an operation answered: done now (`created`), done before under the same reference or hold
 * (`created: false`: nothing moved this time), or refused. A refusal carries the account's figures
 * when the account exists, and the hold it concerns.
 */
export type SpendingAnswer<T> =
  | { ok: true; created: boolean; value: T; account: AccountFigures }
  | { ok: false; refusal: SpendingRefusal; account?: AccountFigures; hold?: Hold };

/** One row of `ledger_spending_result`. */
interface SpendingRow {
  outcome: string;
  kind: 'debit' | 'hold' | null;
  id: string | null;
  account_id: string | null;
  currency: string | null;
  amount: number | null;
  reference: string | null;
  description: string | null;
  status: string | null;
  captured_amount: number | null;
  expires_at: Date | null;
  created_at: Date | null;
  updated_at: Date | null;
  balance: bigint | null;
  held: bigint | null;
}

type Database = Pick<PrismaClient, '$queryRaw'>;

export interface DebitRequest {
  accountId: string;
  amount: number;
  currency: string;
  reference: string;
  description?: string | undefined;
}

export interface HoldRequest {
  accountId: string;
  amount: number;
  currency: string;
  reference: string;
  expiresInSeconds?: number | undefined;
}

/** Debits `amount` once per (account, reference), never beyond `available`. */
export async function debitAccount(db: Database, request: DebitRequest): Promise<SpendingAnswer<Debit>> {
  const row = await one(db, statements.debitAccount({ ...request, description: request.description ?? null }));
  return answer(row, 'created', debitOf);
}

/** Reserves `amount` once per (account, reference) until it is captured, released or expires. */
export async function placeHold(db: Database, request: HoldRequest): Promise<SpendingAnswer<Hold>> {
  const expiresInSeconds = request.expiresInSeconds ?? DEFAULT_HOLD_SECONDS;
  if (!Number.isSafeInteger(expiresInSeconds) || expiresInSeconds < 1 || expiresInSeconds > MAX_HOLD_SECONDS) {
    throw new RangeError(`a hold expires in 1 to ${MAX_HOLD_SECONDS} seconds, got ${expiresInSeconds}`);
  }
  const row = await one(db, statements.placeHold({ ...request, id: newHoldId(), expiresInSeconds }));
  return answer(row, 'created', holdOf);
}

/** Captures `amount` of an active hold (all of it when absent); the same capture again moves nothing. */
export async function captureHold(db: Database, holdId: string, amount?: number): Promise<SpendingAnswer<Hold>> {
  return answer(await one(db, statements.captureHold(holdId, amount ?? null)), 'captured', holdOf);
}

/** Releases an active hold; releasing it again moves nothing. */
export async function releaseHold(db: Database, holdId: string): Promise<SpendingAnswer<Hold>> {
  return answer(await one(db, statements.releaseHold(holdId)), 'released', holdOf);
}

/** The hold as it is now (its status computed against the clock), or undefined. */
export async function findHold(db: Database, holdId: string): Promise<{ hold: Hold; account: AccountFigures } | undefined> {
  const [row] = await db.$queryRaw<SpendingRow[]>(statements.holdById(holdId));
  return row ? { hold: holdOf(row), account: figuresOf(row) } : undefined;
}

/** The account's balance, what its active holds reserve and what is available, or undefined. */
export async function accountBalance(db: Database, accountId: string): Promise<AccountFigures | undefined> {
  const [row] = await db.$queryRaw<Pick<SpendingRow, 'account_id' | 'currency' | 'balance' | 'held'>[]>(
    statements.accountFigures(accountId),
  );
  return row ? figuresOf(row) : undefined;
}

/**
 * Records holds past `expiresAt` as expired, `batch` at a time, until none are left. They stopped
 * counting against `available` the moment they expired; this only writes it down.
 */
export async function expireHolds(db: Database, options: { batch?: number } = {}): Promise<number> {
  const batch = options.batch ?? 1_000;
  let total = 0;
  for (;;) {
    const [row] = await db.$queryRaw<{ expired: number }[]>(statements.expireHolds(batch));
    const expired = row?.expired ?? 0;
    total += expired;
    if (expired < batch) return total;
  }
}

/** Hold ids are unguessable: a hold is captured or released by its id alone. */
function newHoldId(): string {
  return `hold_${randomBytes(16).toString('base64url')}`;
}

async function one(db: Database, query: Prisma.Sql): Promise<SpendingRow> {
  const [row] = await db.$queryRaw<SpendingRow[]>(query);
  if (!row) throw new Error('a spending function answered no row');
  return row;
}

/** Outcomes of the SQL functions that are refusals, by the name the API gives them. */
const REFUSALS: Record<string, SpendingRefusal> = {
  unknown_account: 'unknown_account',
  currency_mismatch: 'currency_mismatch',
  insufficient_funds: 'insufficient_funds',
  reference_conflict: 'reference_conflict',
  unknown_hold: 'unknown_hold',
  not_active: 'hold_not_active',
  exceeds_hold: 'exceeds_hold',
};

function answer<T>(row: SpendingRow, doneNow: string, read: (row: SpendingRow) => T): SpendingAnswer<T> {
  const refusal = REFUSALS[row.outcome];
  if (refusal) {
    return {
      ok: false,
      refusal,
      ...(row.balance === null ? {} : { account: figuresOf(row) }),
      ...(row.kind === 'hold' ? { hold: holdOf(row) } : {}),
    };
  }
  if (row.outcome !== doneNow && row.outcome !== 'replayed') throw new Error(`unexpected spending outcome ${row.outcome}`);
  return { ok: true, created: row.outcome === doneNow, value: read(row), account: figuresOf(row) };
}

function figuresOf(row: Pick<SpendingRow, 'account_id' | 'currency' | 'balance' | 'held'>): AccountFigures {
  const balance = Number(row.balance ?? 0n);
  const held = Number(row.held ?? 0n);
  return { accountId: row.account_id ?? '', currency: row.currency ?? '', balance, held, available: balance - held };
}

/** What a debit and a hold share: the operation's id, account, amount and reference. */
function operationOf(row: SpendingRow) {
  return {
    id: row.id ?? '',
    accountId: row.account_id ?? '',
    amount: row.amount ?? 0,
    currency: row.currency ?? '',
    reference: row.reference ?? '',
    createdAt: row.created_at ?? new Date(0),
  };
}

function debitOf(row: SpendingRow): Debit {
  return { ...operationOf(row), description: row.description, status: 'posted' };
}

function holdOf(row: SpendingRow): Hold {
  return {
    ...operationOf(row),
    status: (row.status ?? 'active') as HoldState,
    capturedAmount: row.captured_amount ?? 0,
    expiresAt: row.expires_at ?? new Date(0),
    updatedAt: row.updated_at ?? new Date(0),
  };
}
