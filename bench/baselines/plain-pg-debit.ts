/**
 * The baseline of the spending benchmark: a debit as one plain `pg` statement, no HTTP, no Fastify,
 * no Prisma. The row lock of the UPDATE re-checks `balance >= amount` on the latest row version
 * (READ COMMITTED), so concurrent debits never overdraw; the ledger entry is written in the same
 * statement. It checks neither holds nor replays (the real `ledger_debit` does both): a floor, not an
 * equivalent. `LEDGER_DEBIT_SQL` is the system's own function called over `pg`, to split the cost
 * between the function and what is around it (HTTP, Fastify, Prisma).
 */
import type pg from 'pg';

export const PLAIN_DEBIT_SQL = `
  WITH debited AS (
    UPDATE accounts SET balance = balance - $2::int, updated_at = now()
    WHERE id = $1 AND currency = $3 AND balance >= $2::int
    RETURNING id, currency
  )
  INSERT INTO ledger_entries (account_id, entry_type, amount, currency, reference, description, created_at)
  SELECT id, 'debit'::"LedgerEntryType", -$2::int, currency, $4, $5, clock_timestamp() FROM debited
  RETURNING id`;

export const LEDGER_DEBIT_SQL = 'SELECT outcome FROM ledger_debit($1, $2::int, $3, $4, $5)';

export interface PlainDebit {
  accountId: string;
  amount: number;
  currency: string;
  reference: string;
  description: string | null;
}

/** One debit through `pg`; true when it was written. */
export async function debitWithPg(pool: pg.Pool, sql: 'statement' | 'function', debit: PlainDebit): Promise<boolean> {
  const params = [debit.accountId, debit.amount, debit.currency, debit.reference, debit.description];
  if (sql === 'statement') return (await pool.query(PLAIN_DEBIT_SQL, params)).rowCount === 1;
  const { rows } = await pool.query<{ outcome: string }>(LEDGER_DEBIT_SQL, params);
  return rows[0]?.outcome === 'created';
}
