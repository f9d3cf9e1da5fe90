import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { databaseUrlOn, freePorts, runCommand, startChild, waitUntil, withPgClient, type RunningProcess } from '@ledger/testkit';
import { TEST_PG_URL, TEST_REDIS_URL } from './helpers/env.js';
import { deleteKeysWithPrefix, uniquePrefix } from './helpers/redis.js';

// The README's first command, as a user runs it: `npm start` on a database that does not exist yet
// (its migration creates it), `npm run demo` to a credited order and part of it spent, then SIGTERM
// to npm — and every process it started is gone. (.ci/run proves the other half: a fresh clone,
// `npm ci`, a clean tree.)

/** Every descendant of `pid` now, from /proc. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
    } catch {
      // The process ended while we looked.
    }
  }
  const found: number[] = [];
  const walk = (parent: number) => {
    for (const child of children.get(parent) ?? []) {
      found.push(child);
      walk(child);
    }
  };
  walk(pid);
  return found;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const database = `ledger_test_${Math.floor(Date.now() / 1000)}_start${randomBytes(3).toString('hex')}`;
const prefix = uniquePrefix();
let start: RunningProcess | undefined;

afterAll(async () => {
  await start?.stop('SIGKILL');
  await deleteKeysWithPrefix(prefix);
  await withPgClient(TEST_PG_URL, (client) => client.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`));
});

describe('npm start', () => {
  it('migrates a new database, serves the demo to a credited order, and stops every process on SIGTERM', async () => {
    const [port, emulatorPort] = await freePorts(2);
    const env = {
      DATABASE_URL: databaseUrlOn(TEST_PG_URL, database),
      REDIS_URL: TEST_REDIS_URL,
      PORT: String(port),
      STRIPE_API_BASE: `http://127.0.0.1:${emulatorPort}`,
      QUEUE_PREFIX: prefix,
      ADMIN_TOKEN: 'start-test-admin-token-0123456789',
      STRIPE_SECRET_KEY: '',
      STRIPE_WEBHOOK_SECRET: '',
      LOG_FORMAT: '',
    };
    start = startChild({ command: 'npm', args: ['start'], env: { LOG_LEVEL: 'info', ...env } });
    await start.waitFor(new RegExp(`^  receiver     http://127\\.0\\.0\\.1:${port} `), 90_000);
    // Printed only once the receiver answers /readyz and the worker took its place on the queue, both warmed up.
    await start.waitFor(/^ {2}ready {8}receiver and worker warmed up, \d+\.\d s after they were started$/, 5_000);
    const processes = descendants(start.child.pid!);
    // npm, then node scripts/start.ts and its three children (emulator, receiver, worker).
    expect(processes.length).toBeGreaterThanOrEqual(4);

    const demo = await runCommand('npm', ['run', 'demo'], { env, timeoutMs: 60_000 });
    expect(demo.code, demo.stdout + demo.stderr).toBe(0);
    expect(demo.stdout).toMatch(/^ {3}\S+ {2}credited$/m);
    expect(demo.stdout).toMatch(/it holds 1 credit for pi_/);
    // Then it spends part of the credit, with the balance after each step.
    expect(demo.stdout).toMatch(/^ {3}balance 2500 usd, held 0, available 2500$/m);
    expect(demo.stdout).toMatch(/^ {3}hold hold_\S+: active, 1000 until /m);
    expect(demo.stdout).toMatch(/^ {3}balance 2500 usd, held 1000, available 1500$/m);
    expect(demo.stdout).toMatch(/^ {3}hold hold_\S+: captured, 600 captured$/m);
    expect(demo.stdout).toMatch(/^ {3}balance 1900 usd, held 0, available 1900$/m);
    expect(demo.stdout).toMatch(/^ {3}debit (deb_\S+): posted, 300\n {3}the same reference again: debit \1, nothing moved twice$/m);
    expect(demo.stdout).toMatch(/^ {3}balance 1600 usd, held 0, available 1600$/m);
    expect(demo.stdout).toMatch(/^ {3}ledger: hold_capture -600 hold_/m);
    expect(demo.stdout).toMatch(/^ {3}ledger: debit -300 demo-debit-/m);

    expect(await start.stop('SIGTERM', 60_000)).toBe(0);
    const output = start.lines.join('\n');
    for (const stopped of ['webhook receiver stopped', 'order worker stopped', 'stripe emulator stopped'])
      expect(output).toContain(stopped);
    await waitUntil(async () => processes.every((pid) => !alive(pid)), 10_000, 'every process npm start ran to exit');
  });
});
