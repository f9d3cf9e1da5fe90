import type { ChildProcess } from 'node:child_process';

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
