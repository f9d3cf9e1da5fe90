import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { stopChild } from '../scripts/support/child-process.js';

/** Where `--cpu-prof` writes the profiles of children started with `cpuProfile`, one directory each. */
export const PROFILE_DIR = path.resolve('bench/profiles');

/** A process under test (or a baseline, or a load generator) started by the bench. */
export interface BenchChild {
  name: string;
  child: ChildProcess;
  /** File holding the child's stdout and stderr. */
  logFile: string;
  /**
   * Resolves once `ready` (a health probe, a log line) resolves true; rejects if the child exits
   * first or `timeoutMs` passes, with the end of its log.
   */
  waitUntil(what: string, ready: () => Promise<boolean>, timeoutMs?: number): Promise<void>;
  /** `VmHWM` (peak resident set) and `VmRSS` from /proc, in bytes. */
  memory(): { peakRss: number; rss: number };
  /** CPU time (user + system, all threads) the child has used so far, in ms (10 ms resolution). */
  cpuMs(): number;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code or signal. */
  stop(graceMs?: number): Promise<number | string | null>;
  /** Resolves when the child exits on its own. */
  exited: Promise<number | string | null>;
}

/**
 * Starts `<script>` in a node process of its own: compiled JavaScript (`.js`) as `npm run receiver`
 * and `npm run worker` run it, TypeScript (`.ts`) through `--import tsx` (no wrapper process, so
 * the pid measured is the process doing the work). Output goes straight to a file: piping it
 * through this process would cost CPU on the same two cores.
 */
export function startChild(
  name: string,
  script: string,
  options: { env: Record<string, string>; logDir: string; args?: string[]; cpuProfile?: boolean },
): BenchChild {
  mkdirSync(options.logDir, { recursive: true });
  const logFile = path.join(options.logDir, `${name}.log`);
  const fd = openSync(logFile, 'a');
  const nodeArgs = script.endsWith('.ts') ? ['--import', 'tsx'] : ['--conditions=compiled'];
  if (options.cpuProfile) {
    // A directory per child and V8's own file names: with `--import tsx` the loader hooks run on a
    // thread of their own, which writes its own profile (the main thread's is the larger file).
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${path.join(PROFILE_DIR, `${name}-${Date.now()}`)}`);
  }
  const child = spawn(process.execPath, [...nodeArgs, script, ...(options.args ?? [])], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const exited = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | string | null);

  return {
    name,
    child,
    logFile,
    exited,
    async waitUntil(what, ready, timeoutMs = 30_000) {
      let gone = false;
      void exited.then(() => (gone = true));
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (await ready().catch(() => false)) return;
        if (gone) throw new Error(`${name} exited before ${what}:\n${tail(readFileSync(logFile, 'utf8'))}`);
        await sleep(50);
      }
      throw new Error(`${name}: not ${what} within ${timeoutMs} ms:\n${tail(readFileSync(logFile, 'utf8'))}`);
    },
    memory() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
      return { peakRss: kib('VmHWM'), rss: kib('VmRSS') };
    },
    cpuMs() {
      return processCpuMs(child.pid);
    },
    stop(graceMs = 15_000) {
      return stopChild(child, exited, 'SIGTERM', graceMs);
    },
  };
}

/** Clock ticks per second of /proc/<pid>/stat times (`getconf CLK_TCK`; 100 on Linux everywhere). */
const CLOCK_TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** utime + stime of a process from /proc/<pid>/stat, in ms. */
export function processCpuMs(pid: number | undefined): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces: state is [0], utime [11], stime [12].
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * Runs a child to completion and returns its stdout (a load generator's JSON result); `onLine`
 * sees each stdout line as it comes (a generator announcing a phase).
 */
export async function runToCompletion(script: string, args: string[], onLine?: (line: string) => void): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  if (onLine) createInterface({ input: child.stdout }).on('line', onLine);
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  if (code !== 0) throw new Error(`${script} failed (${code ?? signal}):\n${tail(stderr || stdout)}`);
  return stdout;
}

/** A TCP port nothing listens on right now (the kernel's pick). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (!address || typeof address === 'string') throw new Error('could not pick a free port');
  return address.port;
}
