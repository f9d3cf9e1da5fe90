import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { PrismaClient } from '@ledger/shared';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, type OperatorCommand } from '@ledger/testkit';
import { applyPaymentFacts } from '@ledger/ledger';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { databaseUrl, testDatabaseName, withAdmin } from './helpers/env.js';
import { insertOrderFixture, newOrderFixture } from './helpers/fixtures.js';

// Upgrades over data the previous release wrote: pre-flight checks refuse before anything is
// applied, the documented resolution makes the upgrade pass, a failed concurrent index build is
// cleaned up, and credits keep committing while a new index builds on a big ledger.

/** The last migration of the previous release (the schema a running deployment has today). */
const PREVIOUS_RELEASE = '20261123145935_init';
/** The last migration before the one-top-up rule (the report names it for `--until`). */
const BEFORE_THE_RULES = '20261130150300_validate_ledger_account_currency_fk';
/** The sign-per-type rule (NOT VALID), its validation (the pre-flight check's), and the migration before them. */
const BEFORE_THE_SIGN_RULE = '20261130163000_stripe_events_received_at_index';
const SIGN_RULE = '20261207100000_ledger_sign_per_type';
const VALIDATE_SIGN_RULE = '20261207100100_validate_ledger_sign_per_type';
const ONE_TOPUP_MIGRATION = 'prisma/migrations/20261130150400_one_topup_per_order/migration.sql';

const opened: { drop(): Promise<void> }[] = [];
afterEach(async () => {
  for (const resource of opened.splice(0)) await resource.drop();
});

/** An empty database of this test's own. */
async function emptyDatabase(): Promise<{ url: string; name: string }> {
  const name = testDatabaseName(`up${randomBytes(4).toString('hex')}`);
  await withAdmin((client) => client.query(`CREATE DATABASE "${name}"`));
  opened.push({ drop: () => withAdmin((client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(() => undefined) });
  return { url: databaseUrl(name), name };
}

function run(url: string, args: string[]) {
  const result = spawnSync(process.execPath, args, { env: { ...process.env, DATABASE_URL: url }, encoding: 'utf8', timeout: 120_000 });
  return { code: result.status, out: `${result.stdout}${result.stderr}` };
}
const migrate = (url: string, ...args: string[]) => run(url, ['tools/migrate/migrate.mjs', ...args]);
/** An operator command from source against `url`. */
const cli = (url: string, name: OperatorCommand, ...args: string[]) => runCli(name, args, { env: { DATABASE_URL: url } });

async function query<T extends pg.QueryResultRow>(url: string, sql: string, values: unknown[] = []): Promise<T[]> {
  return withAdmin(async (client) => (await client.query<T>(sql, values)).rows, url);
}

/**
 * A database on the previous release's schema, holding what that release could write: one order
 * credited twice (two PaymentIntents paid it; it had no one-top-up rule) and one credited once.
 */
async function previousReleaseWithDuplicates() {
  const db = await emptyDatabase();
  expect(migrate(db.url, '--until', PREVIOUS_RELEASE).code).toBe(0);
  await query(db.url, `INSERT INTO accounts (id, currency, balance, updated_at) VALUES ('acct_old', 'usd', 1500, now())`);
  await query(
    db.url,
    `INSERT INTO orders (id, account_id, amount, currency, status, payment_intent_id, idempotency_key, request_hash, updated_at) VALUES
       ('ord_paidtwice00000000000000', 'acct_old', 500, 'usd', 'credited', 'pi_first_payment', 'k1', 'h1', now()),
       ('ord_paidonce000000000000000', 'acct_old', 500, 'usd', 'credited', 'pi_only_payment', 'k2', 'h2', now())`,
  );
  await query(
    db.url,
    `INSERT INTO ledger_entries (account_id, entry_type, amount, currency, reference, order_id) VALUES
       ('acct_old', 'topup', 500, 'usd', 'pi_first_payment', 'ord_paidtwice00000000000000'),
       ('acct_old', 'topup', 500, 'usd', 'pi_second_payment', 'ord_paidtwice00000000000000'),
       ('acct_old', 'topup', 500, 'usd', 'pi_only_payment', 'ord_paidonce000000000000000')`,
  );
  return db;
}

async function migrationRows(url: string) {
  return query<{ migration_name: string; finished_at: Date | null; rolled_back_at: Date | null }>(
    url,
    `SELECT migration_name, finished_at, rolled_back_at FROM _prisma_migrations ORDER BY started_at`,
  );
}

async function indexState(url: string, index: string) {
  const rows = await query<{ valid: boolean }>(
    url,
    `SELECT i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1`,
    [index],
  );
  return rows[0] === undefined ? 'missing' : rows[0].valid ? 'valid' : 'invalid';
}

describe('npm run migrate over data that breaks a new rule', () => {
  it('refuses with a readable report and applies nothing; after the documented resolution it succeeds and the audit is clean', {
    timeout: 180_000,
  }, async () => {
    const db = await previousReleaseWithDuplicates();

    const refused = migrate(db.url);
    expect(refused.code).toBe(1);
    expect(refused.out).toContain('rule:     at most one top-up per order (migration 20261130150400_one_topup_per_order)');
    expect(refused.out).toContain('rows:     1 orders with more than one top-up');
    expect(refused.out).toContain('order ord_paidtwice00000000000000 (account acct_old, 2 top-ups)');
    expect(refused.out).toContain('npm run review -- duplicates');
    expect(refused.out).toContain(`npm run migrate -- --until ${BEFORE_THE_RULES}`);
    expect(refused.out).not.toMatch(/\n\s+at /); // no stack trace
    expect((await migrationRows(db.url)).map((row) => row.migration_name)).toEqual([PREVIOUS_RELEASE]);
    expect(await indexState(db.url, 'ledger_entries_one_topup_per_order')).toBe('missing');

    // The documented procedure (README, "Upgrading").
    expect(migrate(db.url, '--until', BEFORE_THE_RULES).code).toBe(0);
    const listed = await cli(db.url, 'review', 'duplicates');
    expect(listed.stdout).toContain('ord_paidtwice00000000000000  acct_old  pi_first_payment 500, pi_second_payment 500');
    expect((await cli(db.url, 'review', 'duplicates', '--resolve', '--note', 'paid twice before the one-top-up rule')).code).toBe(0);
    const applied = migrate(db.url);
    expect(applied.code, applied.out).toBe(0);

    const rows = await migrationRows(db.url);
    expect(rows.every((row) => row.finished_at !== null && row.rolled_back_at === null)).toBe(true);
    expect(await indexState(db.url, 'ledger_entries_one_topup_per_order')).toBe('valid');
    const audit = await cli(db.url, 'audit');
    expect(audit.code, audit.stdout + audit.stderr).toBe(0);
    expect(audit.stdout).toContain('OK: every balance equals the sum of its ledger');
    const [order] = await query<{ status: string }>(db.url, `SELECT status::text FROM orders WHERE id = 'ord_paidtwice00000000000000'`);
    expect(order?.status).toBe('needs_review');
  });

  it('cleans up after a concurrent index build that failed: drops the invalid index, then checks and builds again', {
    timeout: 180_000,
  }, async () => {
    const db = await previousReleaseWithDuplicates();
    expect(migrate(db.url, '--until', BEFORE_THE_RULES).code).toBe(0);
    // Prisma alone, without the pre-flight checks (as an older tool, or data written meanwhile):
    // the build fails on the duplicates, leaves an INVALID index and a failed migration row.
    const raw = run(db.url, ['tools/prisma-offline/prisma.mjs', 'migrate', 'deploy']);
    expect(raw.code).not.toBe(0);
    expect(await indexState(db.url, 'ledger_entries_one_topup_per_order')).toBe('invalid');
    expect((await migrationRows(db.url)).some((row) => row.finished_at === null && row.rolled_back_at === null)).toBe(true);

    const refused = migrate(db.url);
    expect(refused.code).toBe(1);
    expect(refused.out).toContain('dropped the invalid index ledger_entries_one_topup_per_order');
    expect(refused.out).toContain('rows:     1 orders with more than one top-up');
    expect(await indexState(db.url, 'ledger_entries_one_topup_per_order')).toBe('missing');

    expect((await cli(db.url, 'review', 'duplicates', '--resolve', '--note', 'paid twice')).code).toBe(0);
    expect(migrate(db.url).code).toBe(0);
    expect(await indexState(db.url, 'ledger_entries_one_topup_per_order')).toBe('valid');
  });
});

describe('npm run migrate over entries whose sign breaks the sign-per-type rule', () => {
  it('refuses with the offending entries before anything is applied; once corrected the ledger becomes append-only', {
    timeout: 180_000,
  }, async () => {
    const db = await emptyDatabase();
    expect(migrate(db.url, '--until', BEFORE_THE_SIGN_RULE).code).toBe(0);
    await query(db.url, `INSERT INTO accounts (id, currency, balance, updated_at) VALUES ('acct_signs', 'usd', 700, now())`);
    // As a hand-written fix could leave them: a refund recorded as money in.
    await query(
      db.url,
      `INSERT INTO ledger_entries (account_id, entry_type, amount, currency, reference) VALUES
         ('acct_signs', 'topup', 500, 'usd', 'pi_signs'), ('acct_signs', 'refund', 200, 'usd', 're_wrong_sign')`,
    );

    const refused = migrate(db.url);
    expect(refused.code).toBe(1);
    expect(refused.out).toContain(`(migration ${VALIDATE_SIGN_RULE})`);
    expect(refused.out).toContain('rows:     1 ledger entries whose sign does not match their type');
    expect(refused.out).toMatch(/entry \d+ of account acct_signs: refund 200 \(reference re_wrong_sign\)/);
    expect(refused.out).toContain(`npm run migrate -- --until ${SIGN_RULE}`);
    expect((await migrationRows(db.url)).at(-1)?.migration_name).toBe(BEFORE_THE_SIGN_RULE);

    // The resolution the report gives: correct the row and its balance, then migrate.
    await query(db.url, `UPDATE ledger_entries SET amount = -200 WHERE reference = 're_wrong_sign'`);
    await query(db.url, `UPDATE accounts SET balance = 300 WHERE id = 'acct_signs'`);
    const applied = migrate(db.url);
    expect(applied.code, applied.out).toBe(0);
    await expect(query(db.url, `UPDATE ledger_entries SET amount = -100 WHERE reference = 're_wrong_sign'`)).rejects.toThrow(/append-only/);
    const audit = await cli(db.url, 'audit');
    expect(audit.code, audit.stdout + audit.stderr).toBe(0);
  });
});

describe('an index built CONCURRENTLY on a ledger of a million rows', () => {
  let db: TestDatabase | undefined;
  afterEach(async () => {
    await db?.drop();
    db = undefined;
  });

  it('lets credits keep committing while it builds', { timeout: 180_000 }, async () => {
    db = await createTestDatabase();
    const prisma = db.prisma;
    await prepareMillionRowLedger(db.url);
    const orders = await Promise.all(Array.from({ length: 400 }, () => insertOrderFixture(prisma, newOrderFixture({ amount: 100 }))));

    const latencies = await creditWhile(prisma, orders, async () => {
      const client = new pg.Client({ connectionString: db!.url });
      await client.connect();
      try {
        // The migration exactly as it ships.
        await client.query(readFileSync(ONE_TOPUP_MIGRATION, 'utf8'));
      } finally {
        await client.end();
      }
    });
    console.log(
      `credits during the CONCURRENTLY build of ledger_entries_one_topup_per_order over 1,000,000 rows: ${latencies.during.length} committed in ${Math.round(latencies.buildMs)} ms, ` +
        `longest ${Math.round(Math.max(...latencies.during))} ms, median ${Math.round(median(latencies.during))} ms`,
    );
    expect(latencies.during.length).toBeGreaterThan(0);
    // Never blocked for the build: the longest credit is well below the build's own duration.
    expect(Math.max(...latencies.during)).toBeLessThan(latencies.buildMs / 2);
    expect(await indexState(db.url, 'ledger_entries_one_topup_per_order')).toBe('valid');
  });
});

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

/**
 * A million top-ups on one account, without the index under test. Loaded fast (other indexes
 * rebuilt after the load, foreign-key triggers off for it): the preparation, not what is measured.
 */
async function prepareMillionRowLedger(url: string): Promise<void> {
  await withAdmin(async (client) => {
    await client.query(`INSERT INTO accounts (id, currency, balance, updated_at) VALUES ('acct_bulk', 'usd', 1000000, now())`);
    await client.query(
      `DROP INDEX ledger_entries_one_topup_per_order, ledger_entries_account_id_entry_type_reference_key, ledger_entries_order_id_idx, ledger_entries_topup_reference_idx`,
    );
    await client.query(`SET session_replication_role = replica`);
    await client.query(
      `INSERT INTO ledger_entries (account_id, entry_type, amount, currency, reference) SELECT 'acct_bulk', 'topup', 1, 'usd', 'pi_bulk_' || g FROM generate_series(1, 1000000) g`,
    );
    await client.query(`SET session_replication_role = origin`);
    await client.query(
      `CREATE UNIQUE INDEX ledger_entries_account_id_entry_type_reference_key ON ledger_entries(account_id, entry_type, reference)`,
    );
    await client.query(`CREATE INDEX ledger_entries_order_id_idx ON ledger_entries(order_id)`);
    await client.query(`CREATE INDEX ledger_entries_topup_reference_idx ON ledger_entries(reference) WHERE entry_type = 'topup'`);
    await client.query(`ANALYZE ledger_entries`);
  }, url);
}

/** Credits orders one after another (two at a time) while `build` runs; latencies of those that committed during it. */
async function creditWhile(
  prisma: PrismaClient,
  orders: { id: string; paymentIntentId: string; amount: number; currency: string }[],
  build: () => Promise<void>,
) {
  let building = true;
  const during: number[] = [];
  let next = 0;
  const crediter = async () => {
    while (building) {
      const order = orders[next++];
      if (!order) return;
      const started = performance.now();
      await applyPaymentFacts(prisma, [
        {
          kind: 'payment_succeeded',
          paymentIntentId: order.paymentIntentId,
          orderId: order.id,
          amount: order.amount,
          currency: order.currency,
        },
      ]);
      if (building) during.push(performance.now() - started);
    }
  };
  const crediters = [crediter(), crediter()];
  const started = performance.now();
  await build();
  const buildMs = performance.now() - started;
  building = false;
  await Promise.all(crediters);
  return { during, buildMs };
}
