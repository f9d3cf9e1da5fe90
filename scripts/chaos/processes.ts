import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { stopChild } from '../support/child-process.js';

/** The repository root: child processes run from here so `--import tsx` and relative scripts resolve. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A child process of the chaos run, its log file and the tail of its output. */
export interface ChildApp {
  name: string;
  child: ChildProcess;
  /** The last lines it printed (stdout and stderr), for error messages. */
  tail: string[];
  /** Resolves with the exit code or signal once the process has exited. */
  exited: Promise<number | NodeJS.Signals | null>;
  /** Whether the process has exited. */
  readonly done: boolean;
  /** Sends `signal` and waits for the exit; SIGKILL after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | NodeJS.Signals | null>;
}

const TAIL_LINES = 60;

/**
 * Starts `node --import tsx <script>` (or any command) with `env` added to this environment. Every
 * line goes to `<logDir>/<name>.log`; `onLine` sees each one (the run counts stalls from them).
 */
export function startChild(options: {
  name: string;
  command?: string;
  args?: string[];
  script?: string;
  env?: Record<string, string>;
  logDir: string;
  onLine?: (line: string) => void;
  /** Run under `nice -n <niceness>` (lower CPU priority), so a parallel test file is not starved. */
  niceness?: number;
}): ChildApp {
  let command = options.command ?? process.execPath;
  let args = options.args ?? ['--import', 'tsx', options.script ?? ''];
  if (options.niceness) {
    // nice execs the command: the child's pid is the program's own, so signals reach it directly.
    args = ['-n', String(options.niceness), command, ...args];
    command = 'nice';
  }
  const child = spawn(command, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: WriteStream = createWriteStream(join(options.logDir, `${options.name}.log`), { flags: 'a' });
  const tail: string[] = [];
  const onLine = (line: string) => {
    log.write(`${line}\n`);
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
    options.onLine?.(line);
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  let done = false;
  // 'close' (not 'exit') so that the last lines are read before anyone looks at the tail.
  const exited = once(child, 'close').then(([code, signal]) => {
    done = true;
    log.end();
    return (code ?? signal) as number | NodeJS.Signals | null;
  });
  // A spawn error (missing binary) also ends in 'close'; keep it from being an unhandled 'error'.
  child.on('error', (error) => onLine(`[chaos] spawn error: ${error.message}`));

  return {
    name: options.name,
    child,
    tail,
    exited,
    get done() {
      return done;
    },
    stop(signal = 'SIGTERM', graceMs = 10_000) {
      return stopChild(child, exited, signal, graceMs);
    },
  };
}

/**
 * `count` distinct TCP ports free right now on 127.0.0.1: the OS picks them while all are held
 * open, so they differ; a tiny race with other programs remains until the caller binds them.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  try {
    return await Promise.all(
      servers.map(async (server) => {
        server.listen(0, '127.0.0.1');
        await once(server, 'listening');
        const address = server.address();
        if (typeof address !== 'object' || !address) throw new Error('could not find a free port');
        return address.port;
      }),
    );
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()))));
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Polls `check` every `intervalMs` until it returns true; throws `what` after `timeoutMs`. An error
 * thrown by `check` ends the wait at once (checks catch what they expect themselves).
 */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
