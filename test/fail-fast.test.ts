import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts, operatorCommandFromSource, runCommand, type CommandResult } from '@ledger/testkit';
import { TEST_PG_URL, TEST_REDIS_URL } from './helpers/env.js';

// Every command, started the way its npm script starts it (from source here; test/build.test.ts runs
// the compiled ones), must stop within seconds with one readable line when it cannot work.
//
// "Within seconds" is measured against the command's own `--help` run just before, which loads the
// same code and exits: on two shared cores a start-up alone can take 10 s and vary by as much from
// one run to the next, while what matters is that a failure adds no more than the probe (≤ 3 s):
// no hang, no retry loop (those take tens of seconds, or forever).

/** A password in every URL: no message may echo it. */
const PASSWORD = 'pw-never-printed';

/**
 * Ports 1 and 2 (privileged, unassigned) refuse connections on any machine; a port that was merely
 * free a moment ago may meanwhile belong to another test's server.
 */
const deadPg = `postgresql://postgres:${PASSWORD}@127.0.0.1:1/ledger`;
const deadRedis = `redis://:${PASSWORD}@127.0.0.1:2`;
const deadPort = 1;
let busyPort: number;
let busy: Server;

beforeAll(async () => {
  [busyPort] = (await freePorts(1)) as [number];
  busy = createServer().listen(busyPort, '127.0.0.1');
  await once(busy, 'listening');
});
afterAll(() => {
  busy?.close();
});

const source = (script: string) => ['--import', 'tsx', script];
const COMMANDS = {
  receiver: source('apps/webhook-receiver/src/server.ts'),
  worker: source('apps/order-worker/src/main.ts'),
  'stripe-emulator': source('packages/stripe-emulator/src/main.ts'),
  reconcile: operatorCommandFromSource('reconcile'),
  replay: operatorCommandFromSource('replay'),
  audit: operatorCommandFromSource('audit'),
  start: source('scripts/start.ts'),
  demo: source('scripts/demo.ts'),
  chaos: source('scripts/chaos.ts'),
  bench: source('bench/run.ts'),
  migrate: ['tools/migrate/migrate.mjs'],
} as const;
type Command = keyof typeof COMMANDS;

/** Runs a command with the test's services unless `env` says otherwise. */
function run(command: Command, args: string[], env: Record<string, string> = {}): Promise<CommandResult> {
  // The kill after 2 minutes only stops a hang from stalling the suite; the bound is expectFailFast's.
  return runCommand(process.execPath, [...COMMANDS[command], ...args], {
    env: { DATABASE_URL: TEST_PG_URL, REDIS_URL: TEST_REDIS_URL, LOG_FORMAT: 'json', ...env },
    timeoutMs: 120_000,
  });
}

/**
 * `--help` (usage, exit codes, exit 0) and, for the commands that only run from source, an unknown
 * option (one line, exit 64; test/build.test.ts checks the compiled ones); returns the help run's
 * duration, the yardstick of the failures that follow.
 */
async function checkCommandLine(command: Command, name: string = command): Promise<number> {
  const help = await run(command, ['--help']);
  expect(help.code, help.stderr).toBe(0);
  expect(help.stdout).toMatch(/^usage: /i);
  expect(help.stdout).toMatch(/^Exit codes:/m);
  if (!['start', 'demo', 'chaos', 'bench', 'migrate'].includes(command)) return help.ms;
  const bad = await run(command, ['--no-such-option']);
  expect(bad.code, bad.stdout + bad.stderr).toBe(64);
  expect(bad.stderr.trim()).toMatch(new RegExp(`^${name}: Unknown option '--no-such-option'; usage: npm .+ \\(see --help\\)$`));
  expect(bad.stdout).toBe('');
  return help.ms;
}

/** Exit 1 about as fast as `--help`, one line on stderr matching `message`, no stack, no password. */
function expectFailFast(result: CommandResult, message: RegExp, helpMs: number): void {
  const output = result.stdout + result.stderr;
  expect(result.code, output).toBe(1);
  expect(result.stderr.trim().split('\n'), output).toHaveLength(1);
  expect(result.stderr.trim()).toMatch(message);
  expect(output).not.toContain(PASSWORD);
  expect(output).not.toMatch(/^\s+at /m);
  expect(result.ms, `${Math.round(result.ms)} ms against ${Math.round(helpMs)} ms for --help`).toBeLessThan(2 * helpMs + 8_000);
}

const where = (url: string) => new URL(url).host.replaceAll('.', '\\.');
const inUse = (port: number, variable: string) =>
  new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use: set ${variable} to a free port$`, 'm');

// One process at a time (start-ups are CPU-bound: running them side by side only blurs the
// timings); each test starts several, which takes minutes on a loaded machine.
describe('each command: --help, and one line with exit 1 within seconds when it cannot work', { timeout: 300_000 }, () => {
  it('receiver: Redis down, PostgreSQL down, PORT=abc, port taken', async () => {
    const helpMs = await checkCommandLine('receiver', 'webhook-receiver');
    expectFailFast(
      await run('receiver', [], { REDIS_URL: deadRedis }),
      new RegExp(`^webhook-receiver cannot start: Redis unreachable at ${where(deadRedis)}: connection refused$`),
      helpMs,
    );
    expectFailFast(
      await run('receiver', [], { DATABASE_URL: deadPg }),
      new RegExp(`^webhook-receiver cannot start: PostgreSQL unreachable at ${where(deadPg)}: connection refused$`),
      helpMs,
    );
    // A server that accepts and never answers (a firewall, a wrong port): the probe's 3 s bound it.
    const silent = `127.0.0.1:${busyPort}`;
    expectFailFast(
      await run('receiver', [], { REDIS_URL: `redis://${silent}`, DATABASE_URL: `postgresql://postgres@${silent}/ledger` }),
      new RegExp(
        `^webhook-receiver cannot start: PostgreSQL unreachable at ${silent.replaceAll('.', '\\.')}: no answer within 3 s; Redis unreachable at ${silent.replaceAll('.', '\\.')}: no answer within 3 s$`,
      ),
      helpMs,
    );
    // Invalid, not "required": zod's coercion used to hide the value.
    expectFailFast(await run('receiver', [], { PORT: 'abc' }), /^Invalid environment: PORT must be a number \(got "abc"\)$/, helpMs);
    expectFailFast(await run('receiver', [], { PORT: String(busyPort) }), inUse(busyPort, 'PORT'), helpMs);
  });

  it('worker: Redis down, PostgreSQL down, a variable out of range, port taken', async () => {
    const helpMs = await checkCommandLine('worker', 'order-worker');
    expectFailFast(
      await run('worker', [], { REDIS_URL: deadRedis }),
      /^order-worker cannot start: Redis unreachable at .*: connection refused$/,
      helpMs,
    );
    expectFailFast(
      await run('worker', [], { DATABASE_URL: deadPg }),
      /^order-worker cannot start: PostgreSQL unreachable at .*: connection refused$/,
      helpMs,
    );
    expectFailFast(
      await run('worker', [], { WORKER_CONCURRENCY: '0' }),
      /^Invalid environment: WORKER_CONCURRENCY must be at least 1 \(got "0"\)$/,
      helpMs,
    );
    expectFailFast(await run('worker', [], { WORKER_HEALTH_PORT: String(busyPort) }), inUse(busyPort, 'WORKER_HEALTH_PORT'), helpMs);
  });

  it('Redis Cluster: no node answers, or QUEUE_PREFIX without a hash tag', async () => {
    const helpMs = await checkCommandLine('worker', 'order-worker');
    const deadCluster = `redis+cluster://:${PASSWORD}@127.0.0.1:2,127.0.0.1:1`;
    expectFailFast(
      await run('worker', [], { REDIS_URL: deadCluster, QUEUE_PREFIX: '{ledger}' }),
      /^order-worker cannot start: Redis unreachable at 127\.0\.0\.1:2,127\.0\.0\.1:1: no cluster node answered$/,
      helpMs,
    );
    expectFailFast(
      await run('receiver', [], { REDIS_URL: deadCluster, QUEUE_PREFIX: '{ledger}' }),
      /^webhook-receiver cannot start: Redis unreachable at 127\.0\.0\.1:2,127\.0\.0\.1:1: no cluster node answered$/,
      helpMs,
    );
    // Checked before anything connects: the prefix would spread a queue's keys over many slots.
    for (const [command, name] of [
      ['worker', 'order-worker'],
      ['receiver', 'webhook-receiver'],
      ['reconcile', 'reconcile'],
    ] as const) {
      const result = await run(command, [], { REDIS_URL: deadCluster, QUEUE_PREFIX: 'ledger' });
      expectFailFast(
        result,
        /^Invalid environment: QUEUE_PREFIX must hold a hash tag such as \{ledger\} on Redis Cluster \(REDIS_URL is redis\+cluster:\/\/\), so that each queue's keys live in one slot \(got "ledger"\)$/,
        helpMs,
      );
      expect(result.stderr, name).not.toContain('cannot start');
    }
  });

  it('operator commands: reconcile and replay need Redis, audit PostgreSQL', async () => {
    for (const [command, env, message] of [
      ['reconcile', { REDIS_URL: deadRedis }, /^reconcile cannot start: Redis unreachable at /],
      ['replay', { REDIS_URL: deadRedis }, /^replay cannot start: Redis unreachable at /],
      ['audit', { DATABASE_URL: deadPg }, /^audit cannot start: PostgreSQL unreachable at /],
    ] as const) {
      const helpMs = await checkCommandLine(command);
      expectFailFast(await run(command, command === 'replay' ? ['--failed'] : [], env), message, helpMs);
    }
  });

  it('npm start: Redis down, PostgreSQL down, port taken — before anything starts', async () => {
    const helpMs = await checkCommandLine('start');
    expectFailFast(await run('start', [], { REDIS_URL: deadRedis }), /^npm start: Redis unreachable at /, helpMs);
    expectFailFast(await run('start', [], { DATABASE_URL: deadPg }), /^npm start: PostgreSQL unreachable at /, helpMs);
    expectFailFast(
      await run('start', [], { PORT: String(busyPort) }),
      new RegExp(`^npm start: ${inUse(busyPort, 'PORT').source}`, 'm'),
      helpMs,
    );
  });

  it('migrate, chaos, bench with PostgreSQL or Redis down; the emulator with its port taken', async () => {
    for (const [command, name, args, env, message] of [
      ['migrate', 'migrate', [], { DATABASE_URL: deadPg }, /^cannot reach PostgreSQL at 127\.0\.0\.1:1\/ledger: ECONNREFUSED/],
      ['chaos', 'chaos', ['--short'], { CHAOS_ADMIN_DATABASE_URL: deadPg }, /^chaos cannot start: PostgreSQL unreachable at /],
      ['bench', 'bench', ['--runtime', 'source'], { REDIS_URL: deadRedis }, /^bench cannot start: Redis unreachable at /],
      ['stripe-emulator', 'stripe-emulator', [], { STRIPE_EMULATOR_PORT: String(busyPort) }, inUse(busyPort, 'STRIPE_EMULATOR_PORT')],
    ] as const) {
      const helpMs = await checkCommandLine(command, name);
      expectFailFast(await run(command, [...args], env), message, helpMs);
    }
  });

  it('demo without a running system says what to start', async () => {
    const helpMs = await checkCommandLine('demo');
    expectFailFast(
      await run('demo', [], { PORT: String(deadPort) }),
      new RegExp(`the receiver does not answer at http://127\\.0\\.0\\.1:${deadPort}: is \`npm start\` running\\?`),
      helpMs,
    );
  });
});
