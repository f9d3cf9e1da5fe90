import { spawnSync } from 'node:child_process';
import pg from 'pg';
import { TEMPLATE_DATABASE, TEST_PG_URL, databaseUrl } from './helpers/env.js';

/**
 * Migrates one template database with the real migration path (`npm run migrate`, through the
 * offline schema-engine bridge); every test file then clones it, which takes milliseconds.
 */
export async function setup(): Promise<void> {
  const admin = new pg.Client({ connectionString: TEST_PG_URL });
  await admin.connect();
  try {
    // Leftovers of an interrupted run: their connections would block the template copy.
    const { rows } = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'ledger_test_%'`);
    for (const { datname } of rows) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    await admin.query(`CREATE DATABASE "${TEMPLATE_DATABASE}"`);
  } finally {
    await admin.end();
  }
  const migrate = spawnSync(process.execPath, ['tools/prisma-offline/prisma.mjs', 'migrate', 'deploy'], {
    env: { ...process.env, DATABASE_URL: databaseUrl(TEMPLATE_DATABASE) },
    encoding: 'utf8',
  });
  if (migrate.status !== 0) throw new Error(`migrating the test template failed:\n${migrate.stdout}\n${migrate.stderr}`);
}

export async function teardown(): Promise<void> {
  const admin = new pg.Client({ connectionString: TEST_PG_URL });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${TEMPLATE_DATABASE}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}
