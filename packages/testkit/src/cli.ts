import { runCommand, type CommandResult } from './processes.js';

/** The operator commands: `npm run <name>`, apps/order-worker/src/cli/<name>.ts. */
export type OperatorCommand = 'audit' | 'reconcile' | 'replay' | 'review';

/** node's arguments that run an operator command from source (through tsx), before its own arguments. */
export function operatorCommandFromSource(name: OperatorCommand): string[] {
  return ['--import', 'tsx', `apps/order-worker/src/cli/${name}.ts`];
}

export interface RunCliOptions {
  /** Added to this process's environment (DATABASE_URL, REDIS_URL, QUEUE_PREFIX…). */
  env?: Record<string, string>;
  /**
   * The production path: `npm run --silent <name> -- args…`, the compiled JavaScript under
   * `node --conditions=compiled` (`npm run build` first). Otherwise from source through tsx.
   */
  compiled?: boolean;
  /** SIGKILL after this long, so a hang fails the test (2 minutes unless told). */
  timeoutMs?: number;
}

/**
 * Runs one operator command (audit, reconcile, replay, review) to its exit: the one way test/
 * starts them. Resolves with its exit code, signal, stdout and stderr whatever the code is.
 */
export function runCli(name: OperatorCommand, args: string[] = [], options: RunCliOptions = {}): Promise<CommandResult> {
  const run = { env: options.env, timeoutMs: options.timeoutMs ?? 120_000 };
  if (options.compiled) return runCommand('npm', ['run', '--silent', name, ...(args.length > 0 ? ['--', ...args] : [])], run);
  return runCommand(process.execPath, [...operatorCommandFromSource(name), ...args], run);
}
