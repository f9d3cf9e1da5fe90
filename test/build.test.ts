import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts, runCli, runCommand, startChild, waitUntil, type RunningProcess } from '@ledger/testkit';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { TEST_REDIS_URL } from './helpers/env.js';
import { deleteKeysWithPrefix, uniquePrefix } from './helpers/redis.js';

// The production path: `npm run build`, then the npm scripts that run compiled JavaScript with no
// tsx (the container runs the same files with `node --conditions=compiled`).

const npm = (script: string, args: string[] = [], env: Record<string, string> = {}) =>
  runCommand('npm', ['run', '--silent', script, ...(args.length > 0 ? ['--', ...args] : [])], { env, timeoutMs: 120_000 });

let db: TestDatabase;
const prefix = uniquePrefix();
const running: RunningProcess[] = [];

beforeAll(async () => {
  const build = await npm('build');
  expect(build.code, build.stdout + build.stderr).toBe(0);
  db = await createTestDatabase();
}, 180_000);
afterAll(async () => {
  await Promise.all(running.map((process) => process.stop('SIGKILL')));
  await deleteKeysWithPrefix(prefix);
  await db?.drop();
});

describe('compiled commands', () => {
  it('receiver and worker start, report ready, and stop cleanly on SIGTERM', async () => {
    const [port, healthPort] = await freePorts(2);
    const env = {
      DATABASE_URL: db.url,
      REDIS_URL: TEST_REDIS_URL,
      QUEUE_PREFIX: prefix,
      RECONCILE_INTERVAL_SECONDS: '0',
      LOG_FORMAT: 'json',
    };
    const receiver = startChild({
      command: 'npm',
      args: ['run', '--silent', 'receiver'],
      env: { LOG_LEVEL: 'info', ...env, PORT: String(port) },
    });
    const worker = startChild({
      command: 'npm',
      args: ['run', '--silent', 'worker'],
      env: { LOG_LEVEL: 'info', ...env, WORKER_HEALTH_PORT: String(healthPort), WORKER_METRICS_PORT: String(healthPort) },
    });
    running.push(receiver, worker);

    const ready = async (url: string) => (await fetch(url).catch(() => undefined))?.status === 200;
    await waitUntil(() => ready(`http://127.0.0.1:${port}/readyz`), 30_000, 'the compiled receiver to be ready');
    await waitUntil(() => ready(`http://127.0.0.1:${healthPort}/readyz`), 30_000, 'the compiled worker to be ready');
    const readiness = await (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).json();
    expect(readiness).toEqual({ status: 'ready', checks: { postgres: 'ok', redis: 'ok', workers: 'ok' } });
    expect(await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text()).toMatch(/^# TYPE ledger_worker_jobs_total counter$/m);

    // npm passes SIGTERM on to the process it runs (the scripts `exec` node: no shell in between).
    expect(await receiver.stop('SIGTERM')).toBe(0);
    expect(await worker.stop('SIGTERM')).toBe(0);
    expect(receiver.lines.some((line) => line.includes('webhook receiver stopped'))).toBe(true);
    expect(worker.lines.some((line) => line.includes('order worker stopped'))).toBe(true);
  });

  it('the operator commands run compiled', async () => {
    const audit = await runCli('audit', [], { env: { DATABASE_URL: db.url }, compiled: true });
    expect(audit.code, audit.stderr).toBe(0);
    expect(audit.stdout).toMatch(/^OK: every balance equals the sum of its ledger/m);
  });

  it.concurrent.each(['receiver', 'worker', 'stripe:emulator', 'reconcile', 'replay', 'audit', 'review'])(
    'npm run %s answers --help and refuses an unknown option',
    async (script) => {
      const help = await npm(script, ['--help']);
      expect(help.code, help.stderr).toBe(0);
      expect(help.stdout).toMatch(/^Usage: /);
      expect(help.stdout).toMatch(/^Exit codes:$/m);
      const bad = await npm(script, ['--no-such-option']);
      expect(bad.code).toBe(64);
      expect(bad.stderr.trim()).toMatch(/^[\w-]+: Unknown option '--no-such-option'; usage: npm run \S+.* \(see --help\)$/);
    },
  );
});
