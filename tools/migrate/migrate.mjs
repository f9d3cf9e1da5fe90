#!/usr/bin/env node
// `npm run migrate`: applies the Prisma migrations, safely over a database that already holds money.
//
// 1. A concurrent index build that failed before (killed, or refused by data) leaves an INVALID
//    index and a failed row in _prisma_migrations, after which Prisma refuses every deploy. Such a
//    migration is rolled back here (the invalid index dropped, the row marked rolled back) so it
//    runs again.
// 2. Pre-flight: before a migration that adds a rule, the data it will constrain is checked. If
//    rows break it, NOTHING is applied and no failed migration is recorded: the command exits 1 with
//    which rule, how many rows, the first offenders and the command that resolves them.
// 3. `prisma migrate deploy` (offline engine bridge) applies what is pending.
//
// Plain JavaScript with no dev dependency: it runs in the production image as it is.

import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { PREFLIGHT_CHECKS } from './preflight.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MIGRATIONS_DIR = path.join(ROOT, 'prisma', 'migrations');
const PRISMA = path.join(ROOT, 'tools', 'prisma-offline', 'prisma.mjs');
const DEFAULT_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/ledger';
const SAMPLE = 5;

const USAGE = `usage: npm run migrate [-- --check] [-- --until <migration>]

Applies the Prisma migrations (no network needed). Before a migration that adds a rule over
existing data, checks that data first and refuses, applying nothing, when rows break the rule.

  --check              only the checks: say what is pending and whether the data allows it
  --until <migration>  apply the pending migrations up to and including this one (an upgrade whose
                       data must be fixed first takes the migrations before the rule this way)
  --help               this text

Environment: DATABASE_URL (default ${DEFAULT_DATABASE_URL}).
Exit codes: 0 applied (or nothing pending), 1 refused by a check or failed, 64 bad usage.`;

class Refusal extends Error {}

function fail(message, code = 1) {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

let options;
try {
  options = parseArgs({
    options: { check: { type: 'boolean' }, until: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  }).values;
} catch (error) {
  // One line, as every command answers a bad option (the first sentence of Node's message says it).
  fail(`migrate: ${error.message.split('. ')[0]}; usage: npm run migrate [-- --check] [-- --until <migration>] (see --help)`, 64);
}
if (options.help) {
  console.log(USAGE);
  process.exit(0);
}

const databaseUrl = process.env.DATABASE_URL || DEFAULT_DATABASE_URL;
let url;
try {
  url = new URL(databaseUrl);
  if (url.protocol !== 'postgresql:' && url.protocol !== 'postgres:') throw new Error('protocol');
} catch {
  fail('Invalid environment: DATABASE_URL must be a URL starting with postgresql:// or postgres://');
}
const where = `${url.hostname || 'localhost'}:${url.port || 5432}/${decodeURIComponent(url.pathname.slice(1))}`;
const schema = url.searchParams.get('schema') ?? 'public';

/** Migrations in the repository, oldest first, with the indexes each builds CONCURRENTLY. */
function repositoryMigrations() {
  return readdirSync(MIGRATIONS_DIR, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(path.join(MIGRATIONS_DIR, entry.name, 'migration.sql')))
    .map((entry) => {
      const sql = readFileSync(path.join(MIGRATIONS_DIR, entry.name, 'migration.sql'), 'utf8');
      const concurrentIndexes = [
        ...sql.matchAll(/CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?"?([A-Za-z0-9_]+)"?/gi),
      ].map((match) => match[1]);
      return { name: entry.name, concurrentIndexes };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

function runPrisma(args) {
  const result = spawnSync(process.execPath, [PRISMA, ...args], { stdio: 'inherit', cwd: ROOT, env: process.env });
  return result.status ?? 1;
}

/**
 * `prisma migrate deploy`, of every migration, or only of those up to `until` (Prisma has no such
 * option: it deploys a copy of the folder holding just those; the files are the same bytes, so the
 * checksums it records are the ones a full deploy expects).
 */
function deploy(migrations, until) {
  if (!until) return runPrisma(['migrate', 'deploy']);
  const dir = mkdtempSync(path.join(tmpdir(), 'migrate-until-'));
  try {
    const subset = path.join(dir, 'migrations');
    cpSync(path.join(MIGRATIONS_DIR, 'migration_lock.toml'), path.join(subset, 'migration_lock.toml'));
    for (const migration of migrations.slice(0, migrations.findIndex((m) => m.name === until) + 1)) {
      cpSync(path.join(MIGRATIONS_DIR, migration.name), path.join(subset, migration.name), { recursive: true });
    }
    const config = path.join(dir, 'prisma.config.mjs');
    writeFileSync(
      config,
      `export default ${JSON.stringify({ schema: path.join(ROOT, 'prisma', 'schema.prisma'), migrations: { path: subset }, datasource: { url: databaseUrl } })};\n`,
    );
    return runPrisma(['migrate', 'deploy', '--config', config]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function connect() {
  const connectionUrl = new URL(databaseUrl);
  connectionUrl.searchParams.delete('schema');
  const client = new pg.Client({
    connectionString: connectionUrl.toString(),
    connectionTimeoutMillis: 5_000,
    options: `-c search_path="${schema}"`,
    application_name: 'migrate',
  });
  try {
    await client.connect();
    return client;
  } catch (error) {
    await client.end().catch(() => {});
    // A database that does not exist yet holds no data: Prisma creates it.
    if (error.code === '3D000') return undefined;
    throw new Refusal(`cannot reach PostgreSQL at ${where}: ${error.code ?? ''} ${error.message}`.replace(/\s+/g, ' ').trim());
  }
}

async function tableExists(client, table) {
  const { rows } = await client.query(`SELECT to_regclass($1) IS NOT NULL AS present`, [`"${schema}"."${table}"`]);
  return rows[0].present;
}

async function dropInvalidIndex(client, index) {
  const { rows } = await client.query(
    `SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE NOT i.indisvalid AND c.relname = $1 AND n.nspname = $2`,
    [index, schema],
  );
  if (rows.length === 0) return false;
  await client.query(`DROP INDEX CONCURRENTLY IF EXISTS "${schema}"."${index}"`);
  return true;
}

async function main() {
  const migrations = repositoryMigrations();
  if (options.until && !migrations.some((migration) => migration.name === options.until)) {
    throw new Refusal(`--until: no migration ${options.until} in prisma/migrations`);
  }
  const client = await connect();
  if (!client) {
    if (options.check)
      console.log(`pre-flight: database ${where} does not exist yet; every migration is pending and there is no data to check`);
    return options.check ? 0 : deploy(migrations, options.until);
  }
  try {
    const recorded = (await tableExists(client, '_prisma_migrations'))
      ? (await client.query(`SELECT migration_name, finished_at, rolled_back_at, logs FROM _prisma_migrations`)).rows
      : [];
    const applied = new Set(recorded.filter((row) => row.finished_at && !row.rolled_back_at).map((row) => row.migration_name));

    // 1. A failed concurrent index build: drop what it left, mark it rolled back, run it again.
    const failed = recorded.filter((row) => !row.finished_at && !row.rolled_back_at);
    for (const row of failed) {
      const migration = migrations.find((candidate) => candidate.name === row.migration_name);
      if (!migration || migration.concurrentIndexes.length === 0) {
        throw new Refusal(
          `migration ${row.migration_name} failed earlier and Prisma will not go on until it is resolved:\n  ${(row.logs ?? '').split('\n')[0]}\n` +
            `Fix its cause, then: npm run prisma -- migrate resolve --rolled-back ${row.migration_name}`,
        );
      }
      if (options.check) {
        console.log(`pre-flight: ${row.migration_name} failed earlier; npm run migrate drops what it left and runs it again`);
        continue;
      }
      for (const index of migration.concurrentIndexes) {
        if (await dropInvalidIndex(client, index)) console.log(`dropped the invalid index ${index} a failed build left`);
      }
      if (runPrisma(['migrate', 'resolve', '--rolled-back', row.migration_name]) !== 0)
        throw new Refusal(`could not mark ${row.migration_name} as rolled back`);
    }

    // 2. Pre-flight checks of every pending migration, before anything is applied.
    const last = options.until ? migrations.findIndex((migration) => migration.name === options.until) : migrations.length - 1;
    const pending = migrations.slice(0, last + 1).filter((migration) => !applied.has(migration.name));
    const problems = [];
    for (const migration of pending) {
      const check = PREFLIGHT_CHECKS[migration.name];
      if (!check || !(await Promise.all(check.tables.map((table) => tableExists(client, table)))).every(Boolean)) continue;
      const { rows } = await client.query(check.offenders);
      if (rows.length > 0) {
        const [{ total }] = (await client.query(check.count)).rows;
        problems.push({ migration: migration.name, check, total: Number(total), sample: rows.slice(0, SAMPLE) });
      }
    }
    if (problems.length > 0) {
      const lines = [`npm run migrate: refused before applying anything: data in ${where} breaks rules that pending migrations add.`, ''];
      for (const problem of problems) {
        lines.push(`  rule:     ${problem.check.rule} (migration ${problem.migration})`);
        lines.push(`  rows:     ${problem.total} ${problem.check.unit}`);
        lines.push(`  first:    ${problem.sample.map(problem.check.describe).join('; ')}`);
        lines.push(`  resolve:  ${problem.check.resolve}`, '');
      }
      lines.push('Nothing was applied and no failed migration was recorded.');
      // The resolution commands need this release's additive migrations (new tables, entry types).
      const before = pending[pending.findIndex((migration) => migration.name === problems[0].migration) - 1];
      if (before)
        lines.push(`First apply the migrations before the rule, which the resolution needs: npm run migrate -- --until ${before.name}`);
      lines.push('Then resolve as above, and run npm run migrate again.');
      throw new Refusal(lines.join('\n'));
    }

    // A build killed before Prisma could record it leaves an invalid index under the same name.
    if (!options.check) {
      for (const migration of pending) {
        for (const index of migration.concurrentIndexes) {
          if (await dropInvalidIndex(client, index)) console.log(`dropped the invalid index ${index} an interrupted build left`);
        }
      }
    }
    if (options.check) {
      console.log(
        `pre-flight OK: ${pending.length} migration(s) pending${pending.length ? `: ${pending.map((m) => m.name).join(', ')}` : ''}`,
      );
      return 0;
    }
  } finally {
    await client.end().catch(() => {});
  }
  // 3. Apply.
  return deploy(migrations, options.until);
}

main().then(
  (code) => process.exit(code),
  (error) => fail(error instanceof Refusal ? error.message : `npm run migrate failed: ${error?.message ?? error}`),
);
