// The offline Prisma CLI (tools/prisma-offline): the real CLI driven through the WebAssembly
// schema-engine bridge must migrate an empty database exactly as the native engine would.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { databaseUrl, testDatabaseName, withAdmin as admin } from './helpers/env.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const MIGRATIONS_DIR = path.join(ROOT, 'prisma', 'migrations');
const TIMEOUT = 90_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node tools/prisma-offline/prisma.mjs <args>` against `url`. */
function prisma(args: string[], url: string): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: url, CHECKPOINT_DISABLE: '1' };
  delete env.PRISMA_SCHEMA_ENGINE_BINARY; // the wrapper must pick the bridge itself
  const child = spawn(process.execPath, ['tools/prisma-offline/prisma.mjs', ...args], { cwd: ROOT, env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const migrationNames = readdirSync(MIGRATIONS_DIR, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name)
  .sort();

describe('offline Prisma CLI (schema-engine bridge)', () => {
  const name = testDatabaseName(`offline${randomBytes(3).toString('hex')}`);
  const url = databaseUrl(name);

  afterAll(async () => {
    await admin((client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
  }, TIMEOUT);

  it(
    'migrate deploy builds the schema on an empty database and records each migration like native Prisma',
    async () => {
      await admin((client) => client.query(`CREATE DATABASE "${name}"`));

      const run = await prisma(['migrate', 'deploy'], url);
      expect(run.stdout).toContain('All migrations have been successfully applied.');
      expect(run.code).toBe(0);

      const tables = await admin(async (client) => {
        const { rows } = await client.query<{ table_name: string }>(
          `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`,
        );
        return rows.map((row) => row.table_name);
      }, url);
      expect(tables).toEqual(
        expect.arrayContaining(['_prisma_migrations', 'accounts', 'orders', 'ledger_entries', 'stripe_events', 'checkpoints']),
      );

      const applied = await admin(async (client) => {
        const { rows } = await client.query<{
          migration_name: string;
          checksum: string;
          finished_at: Date | null;
          rolled_back_at: Date | null;
          applied_steps_count: number;
        }>(
          `SELECT migration_name, checksum, finished_at, rolled_back_at, applied_steps_count FROM _prisma_migrations ORDER BY migration_name`,
        );
        return rows;
      }, url);
      expect(applied.map((row) => row.migration_name)).toEqual(migrationNames);
      for (const row of applied) {
        const script = readFileSync(path.join(MIGRATIONS_DIR, row.migration_name, 'migration.sql'));
        expect(row.checksum).toBe(createHash('sha256').update(script).digest('hex'));
        expect(row.finished_at).toBeInstanceOf(Date);
        expect(row.rolled_back_at).toBeNull();
        expect(row.applied_steps_count).toBe(1);
      }
    },
    TIMEOUT,
  );

  it(
    'migrate status reports the database up to date',
    async () => {
      const run = await prisma(['migrate', 'status'], url);
      expect(run.stdout).toContain('Database schema is up to date!');
      expect(run.code).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'migrate diff prints the SQL for the schema, and the migrations match the schema',
    async () => {
      const fromEmpty = await prisma(['migrate', 'diff', '--from-empty', '--to-schema', 'prisma/schema.prisma', '--script'], url);
      expect(fromEmpty.code).toBe(0);
      expect(fromEmpty.stdout).toContain('CREATE TABLE "ledger_entries"');
      expect(fromEmpty.stdout).toContain('CREATE UNIQUE INDEX "ledger_entries_account_id_entry_type_reference_key"');

      // Replays the migrations on a temporary shadow database: no drift means exit code 0.
      const drift = await prisma(
        ['migrate', 'diff', '--from-migrations', 'prisma/migrations', '--to-schema', 'prisma/schema.prisma', '--exit-code'],
        url,
      );
      expect(drift.stdout).toContain('No difference detected.');
      expect(drift.code).toBe(0);
    },
    TIMEOUT,
  );
});
