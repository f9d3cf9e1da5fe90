import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Rng, closeAll, freePorts, runCli, runCommand, startChild, waitUntil } from '@ledger/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The harness test/, bench/ and scripts/chaos share: a broken launcher, poller or port helper would
// make every system test flaky or vacuous, so each is checked on its own.

let logDir: string;
beforeAll(async () => {
  logDir = await mkdtemp(path.join(tmpdir(), 'testkit-'));
});
afterAll(async () => {
  await rm(logDir, { recursive: true, force: true });
});

const node = (source: string) => ({ args: ['-e', source] });

describe('freePorts', () => {
  it('hands out distinct ports below the kernel ephemeral range that nothing listens on', async () => {
    const ports = await freePorts(20);
    const ephemeralStart = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    expect(new Set(ports).size).toBe(20);
    for (const port of ports) expect(port).toBeLessThan(ephemeralStart);
  });

  it('takes each port with its partner (a cluster node and its bus port), both free and below the ephemeral range', async () => {
    const ports = await freePorts(6, { partnerOffset: 10_000 });
    const ephemeralStart = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    expect(new Set(ports).size).toBe(6);
    for (const port of ports) expect(port + 10_000).toBeLessThan(ephemeralStart);
    // The partners are reserved too: nobody else in this process gets them.
    const later = await freePorts(40);
    expect(later.filter((port) => ports.includes(port) || ports.includes(port - 10_000))).toEqual([]);
  });

  it('never hands another process a port this one holds', async () => {
    const mine = await freePorts(30);
    const script = "import { freePorts } from '@ledger/testkit'; console.log(JSON.stringify(await freePorts(200)));";
    const other = await runCommand(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeoutMs: 60_000 });
    expect(other.code, other.stderr).toBe(0);
    const theirs = JSON.parse(other.stdout) as number[];
    expect(theirs).toHaveLength(200);
    expect(theirs.filter((port) => mine.includes(port))).toEqual([]);
  });
});

describe('Rng', () => {
  it('replays the same choices from the same seed, and others from another', () => {
    const draw = (seed: number) => {
      const rng = new Rng(seed);
      return [rng.next(), rng.int(1, 6), rng.chance(0.5), rng.pick(['a', 'b', 'c'])];
    };
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
  });

  it('keeps int within its bounds and refuses to pick from nothing', () => {
    const rng = new Rng(7);
    const values = Array.from({ length: 1_000 }, () => rng.int(3, 5));
    expect(new Set(values)).toEqual(new Set([3, 4, 5]));
    expect(() => rng.pick([])).toThrow('pick from an empty list');
  });
});

describe('waitUntil', () => {
  it('returns once the check holds, and names what it waited for when it never does', async () => {
    let calls = 0;
    await waitUntil(async () => ++calls === 3, 5_000, 'the third call', 10);
    expect(calls).toBe(3);
    await expect(waitUntil(async () => false, 100, 'a miracle', 10)).rejects.toThrow('timed out after 100 ms waiting for a miracle');
  });

  it('ends at once when the check throws', async () => {
    const started = Date.now();
    await expect(waitUntil(() => Promise.reject(new Error('refused')), 10_000, 'anything')).rejects.toThrow('refused');
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});

describe('startChild', () => {
  it('reads lines as they come, writes them to the log file, and reports the exit code', async () => {
    const child = startChild({
      name: 'lines',
      ...node("console.log('one'); console.error('two'); setTimeout(() => process.exit(3), 100)"),
      logDir,
    });
    expect(await child.waitFor(/^two$/)).toBe('two');
    expect(await child.exited).toBe(3);
    expect(child.done).toBe(true);
    expect(child.lines).toEqual(expect.arrayContaining(['one', 'two']));
    expect(readFileSync(path.join(logDir, 'lines.log'), 'utf8').split('\n').sort()).toEqual(['', 'one', 'two']);
  });

  it('with file output, the tail comes from the log file and a wait fails as soon as the child exits', async () => {
    const child = startChild({ name: 'file', ...node("console.log('booting'); console.log('giving up')"), logDir, output: 'file' });
    const started = Date.now();
    await expect(child.waitUntil('ready', async () => false, 30_000)).rejects.toThrow(/file exited before ready:\nbooting\ngiving up/);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(child.lines).toEqual([]);
  });

  it('a wait for a line that never comes fails when the child exits, with its last lines', async () => {
    const child = startChild(node("console.log('not it')"));
    await expect(child.waitFor(/ready/, 30_000)).rejects.toThrow(/exited \(0\) before printing \/ready\/; last lines:\nnot it/);
  });

  it('stop sends SIGTERM, and SIGKILL once the grace is over', async () => {
    const stubborn = startChild(
      node("process.on('SIGTERM', () => console.log('ignored')); console.log('up'); setInterval(() => {}, 1000)"),
    );
    await stubborn.waitFor(/^up$/);
    expect(await stubborn.stop('SIGTERM', 500)).toBe('SIGKILL');
    expect(stubborn.lines).toContain('ignored');
    const polite = startChild(node("console.log('up'); setInterval(() => {}, 1000)"));
    await polite.waitFor(/^up$/);
    expect(await polite.stop('SIGTERM', 10_000)).toBe('SIGTERM');
  });

  it('measures the CPU time and memory of the child', async () => {
    const busy = startChild(node("while (process.cpuUsage().user < 300_000); console.log('done'); setInterval(() => {}, 1000)"));
    await busy.waitFor(/^done$/);
    expect(busy.cpuMs()).toBeGreaterThanOrEqual(250);
    expect(busy.memory().rss).toBeGreaterThan(10 * 1024 * 1024);
    await busy.stop('SIGKILL');
  });
});

describe('runCli', () => {
  // Its arguments reach the command (test/build.test.ts runs the compiled ones through npm).
  it.concurrent.each(['audit', 'reconcile', 'replay', 'review'] as const)('runs npm run %s from source to its exit', async (name) => {
    const help = await runCli(name, ['--help']);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^Usage: /);
    expect(help.stdout).toContain(`npm run ${name}`);
  });
});

describe('closeAll', () => {
  it('runs every step even after one failed, then fails with all that failed', async () => {
    const ran: string[] = [];
    const failure = await closeAll('closing', [
      () => ran.push('server'),
      () => Promise.reject(new Error('queue did not close')),
      () => ran.push('connection'),
      () => {
        throw new Error('database still in use');
      },
    ]).catch((error: unknown) => error);
    expect(ran).toEqual(['server', 'connection']);
    expect(failure).toBeInstanceOf(AggregateError);
    expect((failure as AggregateError).errors.map((error: Error) => error.message)).toEqual([
      'queue did not close',
      'database still in use',
    ]);
    expect((failure as AggregateError).message).toBe('closing: 2 of 4 steps failed: queue did not close; database still in use');
    await expect(closeAll('closing', [() => undefined, async () => undefined])).resolves.toBeUndefined();
  });
});
