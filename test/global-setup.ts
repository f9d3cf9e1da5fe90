import { randomBytes } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { createMigratedDatabase, type MigratedDatabase } from '@ledger/testkit';
import { TEST_PG_URL, testDatabaseName, withAdmin } from './helpers/env.js';

declare module 'vitest' {
  export interface ProvidedContext {
    templateDatabase: string;
  }
}

/** Databases of runs that died more than this long ago are dropped by the next run. */
const LEFTOVER_AGE_SECONDS = 2 * 3600;

let template: MigratedDatabase | undefined;

/**
 * Migrates one template database with the real migration path (`npm run migrate`, through the
 * offline schema-engine bridge); every test file then clones it, which takes milliseconds. Names
 * carry the run's start time, so concurrent runs on one server leave each other alone.
 */
export async function setup(project: TestProject): Promise<void> {
  await withAdmin(async (admin) => {
    const { rows } = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'ledger_test_%'`);
    const cutoff = Math.floor(Date.now() / 1000) - LEFTOVER_AGE_SECONDS;
    for (const { datname } of rows) {
      const started = Number(datname.split('_')[2]);
      if (Number.isFinite(started) && started < cutoff) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    }
  });
  template = await createMigratedDatabase(TEST_PG_URL, testDatabaseName(`tpl${randomBytes(3).toString('hex')}`));
  project.provide('templateDatabase', template.name);
}

export async function teardown(): Promise<void> {
  await template?.drop();
}
