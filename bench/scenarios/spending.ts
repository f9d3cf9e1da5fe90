import { randomBytes } from 'node:crypto';
import { freePort, runScript, type RunningProcess } from '@ledger/testkit';
import type { BenchDatabase } from '../lib/bench-database.js';
import type { DebitLoadOptions, DebitLoadSummary } from '../lib/debit-load.js';
import { BENCH_CURRENCY } from '../lib/stripe-events.js';
import { startReceiver, type RunContext } from '../lib/system-processes.js';

/** Who the debits go through: the receiver (HTTP + Fastify + Prisma + ledger_debit) or plain pg. */
export type DebitTarget = DebitLoadOptions['target'];

export interface SpendingRun {
  target: DebitTarget;
  shape: 'hot' | 'many';
  accounts: number;
  /** Fixed rate (debits/s), or undefined for as fast as `clients` go. */
  rate?: number;
  clients: number;
  summary: DebitLoadSummary;
}

export interface SpendingResult {
  rate: number;
  seconds: number;
  maxSeconds: number;
  runs: SpendingRun[];
}

const API_KEY = `bench_${randomBytes(24).toString('base64url')}`;
const FUNDS = 1_000_000_000;
const DEBIT = 100;
/** The receiver's Prisma pool (10 by default): the baselines get as many connections. */
const PG_CONNECTIONS = 10;
const HTTP_SOCKETS = 64;

/** Accounts `<prefix>_<i>`, each funded by one top-up entry of {@link FUNDS} (balance = its ledger). */
async function seedFundedAccounts(db: BenchDatabase, prefix: string, count: number): Promise<void> {
  await db.pool.query(
    `INSERT INTO accounts (id, currency, balance, updated_at)
     SELECT $1 || '_' || g, $3, $4, now() FROM generate_series(0, $2 - 1) g`,
    [prefix, count, BENCH_CURRENCY, FUNDS],
  );
  await db.pool.query(
    `INSERT INTO ledger_entries (account_id, entry_type, amount, currency, reference)
     SELECT $1 || '_' || g, 'topup', $4, $3, 'fund_' || $1 || '_' || g FROM generate_series(0, $2 - 1) g`,
    [prefix, count, BENCH_CURRENCY, FUNDS],
  );
}

/** What a run must leave: one debit entry per debit answered as written, no account below zero, balance = Σ ledger. */
async function checkDebits(db: BenchDatabase, prefix: string, created: number): Promise<string | undefined> {
  const like = `${prefix.replaceAll('_', '\\_')}\\_%`;
  const { rows } = await db.pool.query<{ debits: number; negative: number; drift: number }>(
    `SELECT
       (SELECT count(*)::int FROM ledger_entries WHERE account_id LIKE $1 AND entry_type = 'debit') AS debits,
       (SELECT count(*)::int FROM accounts WHERE id LIKE $1 AND balance < 0) AS negative,
       (SELECT count(*)::int FROM accounts a WHERE a.id LIKE $1
          AND a.balance <> (SELECT COALESCE(sum(amount), 0) FROM ledger_entries l WHERE l.account_id = a.id)) AS drift`,
    [like],
  );
  const result = rows[0];
  if (!result) return 'no answer';
  const problems = [];
  if (result.debits !== created) problems.push(`${result.debits} debit entries for ${created} debits answered as written`);
  if (result.negative > 0) problems.push(`${result.negative} accounts below zero`);
  if (result.drift > 0) problems.push(`${result.drift} balances differ from their ledger`);
  return problems.length > 0 ? problems.join(', ') : undefined;
}

/**
 * Spending: debits with a unique reference each, from concurrent clients, on a few hot accounts
 * (each debit waits for the account's row lock) and on many, at a fixed rate and as fast as the
 * clients go; through a real receiver process (`POST /accounts/:id/debits`) and, in the same run,
 * through plain `pg` (one CTE statement, and the system's `ledger_debit` function). Each run gets
 * fresh funded accounts and is checked: one ledger entry per 201, none below zero, balance = ledger.
 */
export async function runSpendingBenchmark(context: RunContext, db: BenchDatabase, prefix: string): Promise<SpendingResult> {
  const { config } = context;
  const port = await freePort();
  let receiver: RunningProcess | undefined;
  const runs: SpendingRun[] = [];
  try {
    receiver = await startReceiver(context, 'receiver-spending', {
      port,
      prefix: `${prefix}-spending`,
      env: { ORDERS_API_KEYS: API_KEY, SPENDING_RATE_LIMIT_ACCOUNT: '100000000' },
    });
    const shapes = [
      { shape: 'hot', accounts: config.spendingHotAccounts },
      { shape: 'many', accounts: config.spendingManyAccounts },
    ] as const;
    const targets: DebitTarget[] = ['receiver', 'pg-function', 'pg-statement'];
    let n = 0;
    const load = async (target: DebitTarget, accounts: number, rate: number | undefined, seconds: number, warmupSeconds: number) => {
      const accountPrefix = `spend${n++}_${target === 'receiver' ? 'rx' : 'pg'}`;
      await seedFundedAccounts(db, accountPrefix, accounts);
      const options: DebitLoadOptions = {
        target,
        url: `http://127.0.0.1:${port}`,
        apiKey: API_KEY,
        databaseUrl: db.url,
        accountPrefix,
        accounts,
        amount: DEBIT,
        currency: BENCH_CURRENCY,
        rate,
        clients: config.spendingClients,
        seconds,
        warmupSeconds,
        connections: target === 'receiver' ? HTTP_SOCKETS : PG_CONNECTIONS,
      };
      const output = await runScript('bench/lib/debit-load.ts', [JSON.stringify(options)]);
      const summary = JSON.parse(output.trim().split('\n').at(-1) ?? '{}') as DebitLoadSummary;
      const problem = await checkDebits(db, accountPrefix, summary.created);
      if (problem) throw new Error(`spending, ${target} on ${accounts} accounts: ${problem}`);
      return summary;
    };
    // A fresh receiver is cold (JIT, Prisma's pool): one unmeasured run first, checked all the same.
    await load('receiver', config.spendingManyAccounts, config.spendingRate, 2, 0);
    for (const { shape, accounts } of shapes) {
      for (const rate of [config.spendingRate, undefined]) {
        for (const target of targets) {
          const seconds = rate === undefined ? config.spendingMaxSeconds : config.spendingSeconds;
          const summary = await load(target, accounts, rate, seconds, 1);
          runs.push({ target, shape, accounts, rate, clients: config.spendingClients, summary });
        }
      }
    }
    return { rate: config.spendingRate, seconds: config.spendingSeconds, maxSeconds: config.spendingMaxSeconds, runs };
  } finally {
    await receiver?.stop('SIGTERM', 5_000);
  }
}
