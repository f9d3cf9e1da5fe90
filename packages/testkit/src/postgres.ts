import { spawnSync } from 'node:child_process';
import pg from 'pg';
import { REPO_ROOT } from './processes.js';

/** Runs `work` with a fresh client on `url`, then closes it. */
export async function withPgClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** The URL of database `name` on the server `serverUrl` points at. */
export function databaseUrlOn(serverUrl: string, name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** A database made by {@link createMigratedDatabase}. */
export interface MigratedDatabase {
  name: string;
  url: string;
  /** Drops the database, closing whatever is still connected to it. */
  drop(): Promise<void>;
}

/**
 * Creates database `name` on the server of `adminUrl` and migrates it the way `npm run migrate`
 * does (pre-flight checks, then the offline Prisma bridge), so tests, benchmarks and chaos runs start from the real schema.
 * A database whose migration fails is dropped again.
 */
export async function createMigratedDatabase(adminUrl: string, name: string): Promise<MigratedDatabase> {
  await withPgClient(adminUrl, (client) => client.query(`CREATE DATABASE "${name}"`));
  const url = databaseUrlOn(adminUrl, name);
  const drop = async () => {
    await withPgClient(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
  };
  const migrate = spawnSync(process.execPath, ['tools/migrate/migrate.mjs'], {
    cwd: REPO_ROOT,
    env: { ...process.env, DATABASE_URL: url },
    encoding: 'utf8',
  });
  if (migrate.status !== 0) {
    await drop();
    throw new Error(`migrating ${name} failed:\n${migrate.stdout}\n${migrate.stderr}`);
  }
  return { name, url, drop };
}
