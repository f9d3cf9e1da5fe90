import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { REPO_ROOT } from './processes.js';

/** The PostgreSQL server's maintenance database, from which run databases are created and dropped. */
export const ADMIN_DATABASE_URL = process.env.CHAOS_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, application_name: 'chaos-admin' });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** The URL of database `name` on the server of `adminUrl`. */
function urlOf(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** The database name in a PostgreSQL URL. */
export function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.slice(1));
}

/**
 * Creates `ledger_chaos_<random>` and migrates it the way `npm run migrate` does (the offline
 * Prisma bridge), so the run starts from the real schema on an empty ledger.
 */
export async function createChaosDatabase(adminUrl = ADMIN_DATABASE_URL): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `ledger_chaos_${randomBytes(5).toString('hex')}`;
  await withClient(adminUrl, (client) => client.query(`CREATE DATABASE "${name}"`));
  const url = urlOf(adminUrl, name);
  const drop = () => withClient(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(() => undefined);
  const migrate = spawnSync(process.execPath, ['tools/prisma-offline/prisma.mjs', 'migrate', 'deploy'], {
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

/**
 * Terminates every connection to the run's database except this one (the receiver's and the
 * workers' pools included), as a PostgreSQL restart or failover would. Returns how many went.
 */
export async function terminateConnections(databaseUrl: string): Promise<number> {
  return withClient(databaseUrl, async (client) => {
    const { rows } = await client.query<{ terminated: boolean }>(
      'SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [databaseName(databaseUrl)],
    );
    return rows.filter((row) => row.terminated).length;
  });
}
