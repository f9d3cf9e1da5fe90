import type pg from 'pg';
import { databaseUrlOn, withPgClient } from '@ledger/testkit';

/** Where the tests find PostgreSQL and Redis (the machine's own services by default). */
export const TEST_PG_URL = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** The URL of database `name` on the test server. */
export function databaseUrl(name: string): string {
  return databaseUrlOn(TEST_PG_URL, name);
}

/** `ledger_test_<unix seconds>_<suffix>`: the time lets a later run drop what a dead run left. */
export function testDatabaseName(suffix: string): string {
  return `ledger_test_${Math.floor(Date.now() / 1000)}_${suffix}`;
}

/** Runs `work` with a fresh client on `url` (the server's admin database by default), then closes it. */
export function withAdmin<T>(work: (client: pg.Client) => Promise<T>, url = TEST_PG_URL): Promise<T> {
  return withPgClient(url, work);
}
