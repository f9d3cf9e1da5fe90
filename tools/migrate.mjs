#!/usr/bin/env node
// `npm run migrate`: applies the Prisma migrations through the offline engine bridge. Plain
// JavaScript so that it runs on a fresh clone and in the production image alike (no build, no tsx).
// Checks PostgreSQL first, so that a server that is down is one line, not Prisma's screenful.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';

const HELP = `Usage: npm run migrate

Applies the pending Prisma migrations to DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/ledger),
creating the database if it does not exist. Works with no network access (tools/prisma-offline).

Options:
  -h, --help  print this help and exit

Exit codes:
    0  migrations applied (or none pending)
    1  PostgreSQL unreachable or a migration failed
   64  bad option
`;

try {
  if (parseArgs({ options: { help: { type: 'boolean', short: 'h' } }, strict: true }).values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
} catch (error) {
  console.error(`migrate: ${error.message.split('. ')[0]} (see --help)`);
  process.exit(64);
}

const url = process.env.DATABASE_URL || 'postgresql://postgres@127.0.0.1:5432/ledger';
const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
client.on('error', () => {});
try {
  await client.connect();
} catch (error) {
  // 3D000: the server answers but the database is missing, which Prisma creates.
  if (error.code !== '3D000') {
    const where = URL.canParse(url) ? `${new URL(url).hostname}:${new URL(url).port || 5432}` : '(unparseable DATABASE_URL)';
    console.error(`migrate cannot start: PostgreSQL unreachable at ${where}: ${error.code === 'ECONNREFUSED' ? 'connection refused' : error.message.split('\n')[0]}`);
    process.exit(1);
  }
} finally {
  await client.end().catch(() => {});
}

const prisma = fileURLToPath(new URL('./prisma-offline/prisma.mjs', import.meta.url));
const child = spawn(process.execPath, [prisma, 'migrate', 'deploy'], { stdio: 'inherit' });
// Ctrl+C reaches the whole process group; a SIGTERM sent to this process alone is passed on.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
