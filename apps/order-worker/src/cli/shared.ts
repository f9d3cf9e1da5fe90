import {
  EnvError,
  StartupError,
  createLogger,
  createPrismaClient,
  parseCommandLine,
  requireReachable,
  usageError,
  type CommandSpec,
  type Logger,
  type OptionSpec,
  type PrismaClient,
} from '@ledger/shared';
import { loadWorkerEnv, workerEnvSchema, type WorkerEnv } from '../env.js';

/** What a one-shot operator command gets: its command line, the worker's environment and its resources. */
export interface CliContext<O extends Record<string, OptionSpec>> {
  values: ReturnType<typeof parseCommandLine<O>>['values'];
  positionals: string[];
  env: WorkerEnv;
  prisma: PrismaClient;
  logger: Logger;
}

/** An operator command: its `--help` (the worker's environment is added) and what it needs. */
export interface CliDefinition<O extends Record<string, OptionSpec>> extends Omit<CommandSpec<O>, 'environment' | 'exitCodes'> {
  /** Exit codes beyond (or restating) 0 done, 1 failed / bad environment / unreachable service, 64 bad option. */
  exitCodes?: CommandSpec<O>['exitCodes'];
  /** Whether it uses Redis (checked at start like PostgreSQL). */
  needsRedis: boolean;
  /** Checks the arguments together; a returned problem is a usage error (before anything connects). */
  check?(commandLine: Pick<CliContext<O>, 'values' | 'positionals'>): string | undefined;
}

/**
 * Runs an operator command with the worker's environment; the command's resolved number is the
 * exit code. A bad option, a bad environment or an unreachable PostgreSQL or Redis prints one line
 * and exits (64, 1, 1) before anything runs; resources close on the way out.
 */
export async function runCli<O extends Record<string, OptionSpec>>(
  name: string,
  definition: CliDefinition<O>,
  command: (context: CliContext<O>) => Promise<number>,
): Promise<never> {
  const { values, positionals } = parseCommandLine(name, {
    ...definition,
    environment: Object.keys(workerEnvSchema.shape),
    exitCodes: [
      ...new Map([
        [0, 'done'],
        [1, 'failed, bad environment, or PostgreSQL or Redis unreachable'],
        [64, 'bad option or argument'],
        ...(definition.exitCodes ?? []),
      ]),
    ].sort(([a], [b]) => a - b),
  });
  const problem = definition.check?.({ values, positionals });
  if (problem) usageError(name, problem, definition.usage);
  let env: WorkerEnv;
  try {
    env = loadWorkerEnv();
    await requireReachable({ postgres: env.DATABASE_URL, redis: definition.needsRedis ? env.REDIS_URL : undefined });
  } catch (error) {
    if (error instanceof EnvError) process.stderr.write(`${error.message}\n`);
    else if (error instanceof StartupError) process.stderr.write(`${name} cannot start: ${error.message}\n`);
    else throw error;
    process.exit(1);
  }
  // Operator output goes to stdout as plain lines; logs only when something goes wrong.
  const logger = createLogger(name, env.LOG_LEVEL === 'info' ? 'warn' : env.LOG_LEVEL, undefined, env.LOG_FORMAT);
  const prisma = createPrismaClient(env.DATABASE_URL, { poolSize: 4, applicationName: name });
  let code = 1;
  try {
    code = await command({ values, positionals, env, prisma, logger });
  } catch (error) {
    process.stderr.write(`${name} failed: ${error instanceof Error ? error.message : String(error)}\n`);
  } finally {
    await prisma.$disconnect();
  }
  process.exit(code);
}
