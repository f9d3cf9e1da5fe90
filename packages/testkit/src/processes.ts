import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, createWriteStream, mkdirSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { waitUntil } from './wait.js';

/** The repository root: children run from here, so `--import tsx` and relative script paths resolve. */
export const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** How a child ended: its exit code, or the signal that ended it. */
export type ExitStatus = number | NodeJS.Signals | null;

/** Lines kept in memory per child (a long chaos run's workers print many). */
const KEPT_LINES = 10_000;
/** Lines an error message or a crash report quotes. */
const TAIL_LINES = 60;

export interface StartOptions {
  /** Names the log file (`<logDir>/<name>.log`) and the child in error messages; default: its command line. */
  name?: string;
  /**
   * A Node entry point run by this Node with no wrapper process (the pid is the process doing the
   * work): TypeScript through `--import tsx`, compiled `.js` with `--conditions=compiled` as
   * `npm run receiver` runs it.
   */
  script?: string;
  /** Another program (`npm`, `redis-server`); default: this Node. */
  command?: string;
  /** Arguments after `script`, or the whole argument list without one. */
  args?: string[];
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /** Default: the repository root. */
  cwd?: string;
  /** Where the log file goes; without it output is only kept in memory. */
  logDir?: string;
  /**
   * `lines` (default): output is read here line by line (`lines`, `waitFor`, `onLine`) and appended
   * to the log file. `file`: stdout and stderr go straight to the log file and nothing passes
   * through this process, whose CPU would otherwise count against the child a benchmark measures.
   */
  output?: 'lines' | 'file';
  /** Sees every line (`lines` output only). */
  onLine?: (line: string) => void;
  /** Runs under `nice -n <niceness>` (lower CPU priority), so a parallel test file is not starved. */
  niceness?: number;
  /** `--cpu-prof` into this directory (`script` only): V8 names the files, one per thread. */
  cpuProfileDir?: string;
}

/** A child started by {@link startChild}. */
export interface RunningProcess {
  name: string;
  child: ChildProcess;
  /** `<logDir>/<name>.log`, when a `logDir` was given. */
  logFile: string | undefined;
  /** Its output lines so far, stdout and stderr interleaved (the last 10,000; `lines` output only). */
  lines: string[];
  /** The last lines it printed, for error messages (read from the log file with `file` output). */
  readonly tail: string[];
  /** Resolves with the exit code or signal once the child has exited and its output is read. */
  exited: Promise<ExitStatus>;
  /** Whether the child has exited. */
  readonly done: boolean;
  /** Resolves with the first line (already seen or to come) matching `pattern`; rejects if the child exits first. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /**
   * Polls `ready` (a health probe; an error counts as not ready) until true; rejects with the end
   * of the output if the child exits first or `timeoutMs` passes.
   */
  waitUntil(what: string, ready: () => Promise<boolean>, timeoutMs?: number): Promise<void>;
  /** Sends `signal` (if it still runs) and waits for the exit; SIGKILL after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<ExitStatus>;
  /** `VmHWM` (peak resident set) and `VmRSS` from /proc, in bytes. */
  memory(): { peakRss: number; rss: number };
  /** CPU time (user + system, all threads) the child has used so far, in ms (10 ms resolution). */
  cpuMs(): number;
}

/** The command and arguments that run `options` (a script through this Node, or a program; under `nice`). */
function commandLine(options: StartOptions): [string, string[]] {
  let command = options.command ?? process.execPath;
  let args = options.args ?? [];
  if (options.script) {
    const node = options.script.endsWith('.ts') ? ['--import', 'tsx'] : ['--conditions=compiled'];
    if (options.cpuProfileDir) node.push('--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`);
    args = [...node, options.script, ...args];
  }
  if (options.niceness) {
    // nice execs the command: the child's pid is the program's own, so signals reach it directly.
    args = ['-n', String(options.niceness), command, ...args];
    command = 'nice';
  }
  return [command, args];
}

/** Starts a child process (a system process, a baseline, a load generator, redis-server) and watches it. */
export function startChild(options: StartOptions): RunningProcess {
  const [command, args] = commandLine(options);
  const name = options.name ?? [path.basename(command), ...args].join(' ');
  let logFile: string | undefined;
  if (options.logDir) {
    mkdirSync(options.logDir, { recursive: true });
    logFile = path.join(options.logDir, `${options.name ?? path.basename(options.script ?? command)}.log`);
  }
  const toFile = options.output === 'file';
  if (toFile && !logFile) throw new Error(`${name}: file output needs a logDir`);
  const fd = toFile ? openSync(logFile!, 'a') : undefined;
  const child = spawn(command, args, {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: fd === undefined ? ['ignore', 'pipe', 'pipe'] : ['ignore', fd, fd],
  });
  if (fd !== undefined) closeSync(fd);

  const lines: string[] = [];
  const waiters = new Set<{ pattern: RegExp; resolve: (line: string) => void }>();
  const log = logFile && !toFile ? createWriteStream(logFile, { flags: 'a' }) : undefined;
  const onLine = (line: string) => {
    log?.write(`${line}\n`);
    lines.push(line);
    if (lines.length > KEPT_LINES) lines.shift();
    options.onLine?.(line);
    for (const waiter of waiters) {
      if (waiter.pattern.test(line)) {
        waiters.delete(waiter);
        waiter.resolve(line);
      }
    }
  };
  if (child.stdout) createInterface({ input: child.stdout }).on('line', onLine);
  if (child.stderr) createInterface({ input: child.stderr }).on('line', onLine);
  // A spawn error (a missing binary) also ends in 'exit'/'close'; keep it from being an unhandled 'error'.
  child.on('error', (error) => onLine(`[testkit] spawn error: ${error.message}`));

  let done = false;
  const exited = once(child, 'exit').then(async ([code, signal]) => {
    // 'close' follows once the output is read, so that the tail is complete; not waited for long,
    // as a grandchild (npm's script) may still hold the pipes after the child was killed.
    if (child.stdout) await Promise.race([once(child, 'close'), sleep(1_000, undefined, { ref: false })]);
    done = true;
    log?.end();
    return (code ?? signal) as ExitStatus;
  });
  const tail = (count = TAIL_LINES): string[] => (toFile ? readFileSync(logFile!, 'utf8').trimEnd().split('\n') : lines).slice(-count);

  return {
    name,
    child,
    logFile,
    lines,
    get tail() {
      return tail();
    },
    exited,
    get done() {
      return done;
    },
    waitFor(pattern, timeoutMs = 45_000) {
      const seen = lines.find((line) => pattern.test(line));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const waiter = {
          pattern,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`${name}: no line matching ${pattern} within ${timeoutMs} ms; last lines:\n${tail(15).join('\n')}`));
        }, timeoutMs);
        waiters.add(waiter);
        void exited.then((status) => {
          if (waiters.delete(waiter)) {
            clearTimeout(timer);
            reject(new Error(`${name} exited (${status}) before printing ${pattern}; last lines:\n${tail(15).join('\n')}`));
          }
        });
      });
    },
    async waitUntil(what, ready, timeoutMs = 30_000) {
      const check = async () => {
        if (done) throw new Error(`${name} exited before ${what}:\n${tail(15).join('\n')}`);
        return ready().catch(() => false);
      };
      await waitUntil(check, timeoutMs, `${name}: ${what}`, 50).catch((error: Error) => {
        throw done ? error : new Error(`${error.message}; last lines:\n${tail(15).join('\n')}`);
      });
    },
    stop(signal = 'SIGTERM', graceMs = 15_000) {
      return stopChild(child, exited, signal, graceMs);
    },
    memory() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
      return { peakRss: kib('VmHWM'), rss: kib('VmRSS') };
    },
    cpuMs() {
      return processCpuMs(child.pid);
    },
  };
}

/**
 * Sends `signal` to a child that is still running and waits for `exited`; SIGKILL after `graceMs`
 * if it has not gone by then (a graceful stop that hangs must not hang the caller).
 */
export async function stopChild<T>(child: ChildProcess, exited: Promise<T>, signal: NodeJS.Signals, graceMs: number): Promise<T> {
  if (child.exitCode !== null || child.signalCode !== null) return exited;
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  try {
    return await exited;
  } finally {
    clearTimeout(timer);
  }
}

/** What a command printed, how it exited and how long it took. */
export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs `command args…` to its exit with `env` added to this environment (npm scripts, compiled
 * entry points, `node --import tsx` scripts, load generators); SIGKILL after `timeoutMs`, so a hang
 * fails the caller. `onLine` sees each stdout line as it comes (a generator announcing a phase).
 */
export async function runCommand(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; timeoutMs?: number; onLine?: (line: string) => void } = {},
): Promise<CommandResult> {
  const started = performance.now();
  const child = spawn(command, args, { cwd: REPO_ROOT, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  if (options.onLine) createInterface({ input: child.stdout }).on('line', options.onLine);
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timeoutMs = options.timeoutMs ?? 30_000;
  const timer = Number.isFinite(timeoutMs) ? setTimeout(() => child.kill('SIGKILL'), timeoutMs) : undefined;
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  return { code, signal, stdout, stderr, ms: performance.now() - started };
}

/** Runs a TypeScript script to completion and returns its stdout; throws with the end of its output if it fails. */
export async function runScript(
  script: string,
  args: string[],
  options: { onLine?: (line: string) => void; timeoutMs?: number } = {},
): Promise<string> {
  const result = await runCommand(process.execPath, ['--import', 'tsx', script, ...args], { timeoutMs: Infinity, ...options });
  if (result.code !== 0) {
    const output = (result.stderr || result.stdout).trimEnd().split('\n').slice(-15).join('\n');
    throw new Error(`${script} failed (${result.code ?? result.signal}):\n${output}`);
  }
  return result.stdout;
}

/** Clock ticks per second of /proc/<pid>/stat times (`getconf CLK_TCK`; 100 on Linux everywhere). */
let clockTicksPerSecond: number | undefined;

/** utime + stime of a process from /proc/<pid>/stat, in ms. */
export function processCpuMs(pid: number | undefined): number {
  clockTicksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces: state is [0], utime [11], stime [12].
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicksPerSecond;
}
