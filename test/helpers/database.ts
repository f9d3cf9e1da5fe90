import { randomBytes } from 'node:crypto';
import { BALANCE_DRIFT_SQL } from '@ledger/ledger';
import { Prisma, createPrismaClient, type PrismaClient } from '@ledger/shared';
import { closeAll } from '@ledger/testkit';
import { inject } from 'vitest';
import { databaseUrl, testDatabaseName, withAdmin } from './env.js';

/** A database of its own for one test file, cloned from the migrated template. */
export interface TestDatabase {
  name: string;
  url: string;
  prisma: PrismaClient;
  /** Disconnects and drops the database. */
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = testDatabaseName(randomBytes(5).toString('hex'));
  await withAdmin((client) => client.query(`CREATE DATABASE "${name}" TEMPLATE "${inject('templateDatabase')}"`));
  const url = databaseUrl(name);
  const prisma = createPrismaClient(url, { poolSize: 20 });
  return {
    name,
    url,
    prisma,
    async drop() {
      // The database goes even if the client did not disconnect cleanly (FORCE ends its sessions).
      await closeAll(`dropping ${name}`, [
        () => prisma.$disconnect(),
        () => withAdmin((client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)),
      ]);
    },
  };
}

/**
 * The ledger invariant, checked after tests that move money: every balance equals the sum of its
 * ledger entries (the audit's own statement). Returns the accounts that drift (empty when all is well).
 */
export async function balanceDrift(prisma: PrismaClient): Promise<{ id: string; balance: bigint; ledger: bigint }[]> {
  return prisma.$queryRawUnsafe(BALANCE_DRIFT_SQL);
}

/**
 * Makes PostgreSQL itself refuse every new ledger entry (a trigger raising an error: a real
 * failure of the real database, not a mock) until the returned function lifts it.
 */
export async function refuseLedgerInserts(prisma: PrismaClient): Promise<() => Promise<void>> {
  await prisma.$executeRawUnsafe(`
    CREATE OR REPLACE FUNCTION test_refuse_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'ledger closed by a test'; END $$`);
  await prisma.$executeRawUnsafe(
    `CREATE TRIGGER test_refuse_ledger BEFORE INSERT ON ledger_entries FOR EACH ROW EXECUTE FUNCTION test_refuse_ledger()`,
  );
  return async () => {
    await prisma.$executeRawUnsafe(`DROP TRIGGER IF EXISTS test_refuse_ledger ON ledger_entries`);
  };
}

/** True for Prisma's unique-constraint violation (P2002): for the ledger it means "already applied". */
export function isUniqueConstraintError(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002';
}
