import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createMigratedDatabase } from '@ledger/testkit';
import { BENCH_AMOUNT, BENCH_CURRENCY } from './stripe-events.js';

/** A database of the bench's own, migrated with the project's real migration path. */
export interface BenchDatabase {
  name: string;
  url: string;
  /** A small pool for seeding, polling and checks (the systems under test have their own). */
  pool: pg.Pool;
  drop(): Promise<void>;
}

/** Creates `ledger_bench_<random>` and runs `prisma migrate deploy` on it (offline bridge). */
export async function createBenchDatabase(adminUrl: string): Promise<BenchDatabase> {
  const { name, url, drop } = await createMigratedDatabase(adminUrl, `ledger_bench_${randomBytes(4).toString('hex')}`);
  const pool = new pg.Pool({ connectionString: url, max: 4, application_name: 'bench' });
  return {
    name,
    url,
    pool,
    async drop() {
      await pool.end();
      await drop();
    },
  };
}

/**
 * Inserts `count` accounts and orders awaiting payment, named by {@link benchOrder}, as
 * `POST /orders` leaves them (one account per order: top-ups from many customers, so credits
 * do not queue on one account's row lock). One statement each: seeding must not dominate the run.
 */
export async function seedOrders(pool: pg.Pool, batch: string, count: number): Promise<void> {
  await pool.query(
    `INSERT INTO accounts (id, currency, updated_at)
     SELECT 'acct_' || $1 || '_' || g, $3, now() FROM generate_series(0, $2 - 1) g`,
    [batch, count, BENCH_CURRENCY],
  );
  await pool.query(
    `INSERT INTO orders (id, account_id, amount, currency, payment_intent_id, client_secret, idempotency_key, request_hash, updated_at)
     SELECT 'ord_' || $1 || '_' || g, 'acct_' || $1 || '_' || g, $3, $4, 'pi_' || $1 || '_' || g,
            'pi_' || $1 || '_' || g || '_secret_bench', 'key_' || g, md5(g::text), now()
     FROM generate_series(0, $2 - 1) g`,
    [batch, count, BENCH_AMOUNT, BENCH_CURRENCY],
  );
}

/** The highest ledger entry id so far (0 when empty): entries above it belong to what runs next. */
export async function lastLedgerId(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ id: string | null }>('SELECT max(id)::text AS id FROM ledger_entries');
  return Number(rows[0]?.id ?? 0);
}

/**
 * Checks that a batch was credited exactly once: every order credited, one top-up per order,
 * every balance equal to its ledger. A fast benchmark of a wrong credit path is worthless.
 * Returns a description of what is wrong, or undefined when all is well.
 */
export async function checkBatchCredited(pool: pg.Pool, batch: string, count: number): Promise<string | undefined> {
  const { rows } = await pool.query<{ credited: number; entries: number; drift: number }>(
    `SELECT
       (SELECT count(*)::int FROM orders WHERE account_id LIKE 'acct\\_' || $1 || '\\_%' AND status = 'credited') AS credited,
       (SELECT count(*)::int FROM ledger_entries WHERE account_id LIKE 'acct\\_' || $1 || '\\_%' AND entry_type = 'topup') AS entries,
       (SELECT count(*)::int FROM accounts a
          WHERE a.id LIKE 'acct\\_' || $1 || '\\_%'
            AND a.balance <> (SELECT COALESCE(sum(amount), 0) FROM ledger_entries l WHERE l.account_id = a.id)) AS drift`,
    [batch],
  );
  const result = rows[0];
  if (!result) return 'no answer';
  const problems = [];
  if (result.credited !== count) problems.push(`${result.credited}/${count} orders credited`);
  if (result.entries !== count) problems.push(`${result.entries} top-up entries for ${count} orders`);
  if (result.drift > 0) problems.push(`${result.drift} balances differ from their ledger`);
  return problems.length > 0 ? problems.join(', ') : undefined;
}
