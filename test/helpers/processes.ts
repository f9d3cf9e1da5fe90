import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { stopChild } from '../../scripts/support/child-process.js';

/** A system process (receiver, worker, emulator) started by a test, with its output lines. */
export interface RunningProcess {
  child: ChildProcess;
  lines: string[];
  /** Resolves with the first line (from now or already seen) that matches. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends `signal` and waits for the exit; SIGKILL after `graceMs`. Returns the exit code or signal. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | NodeJS.Signals | null>;
}

/** Starts `node --import tsx <script>` with `env` added to this process's environment. */
export function startProcess(script: string, env: Record<string, string>): RunningProcess {
  return startCommand(process.execPath, ['--import', 'tsx', script], env);
}

/** Starts `command args…` (an npm script, a compiled entry point) with `env` added to this process's environment. */
export function startCommand(command: string, args: string[], env: Record<string, string>): RunningProcess {
  const script = [command, ...args].join(' ');
  const child = spawn(command, args, {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters = new Set<{ pattern: RegExp; resolve: (line: string) => void }>();
  const onLine = (line: string) => {
    lines.push(line);
    for (const waiter of waiters) {
      if (waiter.pattern.test(line)) {
        waiters.delete(waiter);
        waiter.resolve(line);
      }
    }
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  const exited = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | NodeJS.Signals | null);

  return {
    child,
    lines,
    waitFor(pattern, timeoutMs = 45_000) {
      const seen = lines.find((line) => pattern.test(line));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const waiter = { pattern, resolve: (line: string) => (clearTimeout(timer), resolve(line)) };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`${script}: no line matching ${pattern} within ${timeoutMs} ms; last lines:\n${lines.slice(-15).join('\n')}`));
        }, timeoutMs);
        waiters.add(waiter);
        void exited.then((code) => {
          if (waiters.delete(waiter)) {
            clearTimeout(timer);
            reject(new Error(`${script} exited (${code}) before printing ${pattern}; last lines:\n${lines.slice(-15).join('\n')}`));
          }
        });
      });
    },
    stop(signal = 'SIGTERM', graceMs = 15_000) {
      return stopChild(child, exited, signal, graceMs);
    },
  };
}

/** What a command printed, how it exited and how long it took. */
export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs `command args…` to its exit with `env` added to this environment (npm scripts, compiled
 * entry points, `node --import tsx` scripts); SIGKILL after `timeoutMs`, so a hang fails the test.
 */
export async function runCommand(command: string, args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<CommandResult> {
  const started = performance.now();
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr, ms: performance.now() - started };
}
