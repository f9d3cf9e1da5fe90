import { randomBytes } from 'node:crypto';
import { createMigratedDatabase, withPgClient, type MigratedDatabase } from '@ledger/testkit';

/** The PostgreSQL server's maintenance database, from which run databases are created and dropped. */
export const ADMIN_DATABASE_URL = process.env.CHAOS_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

/** The database name in a PostgreSQL URL. */
export function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.slice(1));
}

/**
 * Creates `ledger_chaos_<random>` and migrates it the way `npm run migrate` does (the offline
 * Prisma bridge), so the run starts from the real schema on an empty ledger.
 */
export async function createChaosDatabase(adminUrl = ADMIN_DATABASE_URL): Promise<MigratedDatabase> {
  return createMigratedDatabase(adminUrl, `ledger_chaos_${randomBytes(5).toString('hex')}`);
}

/**
 * Terminates every connection to the run's database except this one (the receiver's and the
 * workers' pools included), as a PostgreSQL restart or failover would. Returns how many went.
 */
export async function terminateConnections(databaseUrl: string): Promise<number> {
  return withPgClient(databaseUrl, async (client) => {
    const { rows } = await client.query<{ terminated: boolean }>(
      'SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [databaseName(databaseUrl)],
    );
    return rows.filter((row) => row.terminated).length;
  });
}
