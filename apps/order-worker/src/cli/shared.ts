import { createLogger, createPrismaClient, type PrismaClient } from '@ledger/shared';
import { loadWorkerEnv, type WorkerEnv } from '../env.js';

/** What a one-shot operator command gets: the worker's environment and its resources. */
export interface CliContext {
  env: WorkerEnv;
  prisma: PrismaClient;
  logger: ReturnType<typeof createLogger>;
}

/**
 * Runs an operator command with the worker's environment; the command's resolved number is the
 * exit code. Configuration errors print one line and exit 1; resources close on the way out.
 */
export async function runCli(name: string, command: (context: CliContext) => Promise<number>): Promise<never> {
  let env: WorkerEnv;
  try {
    env = loadWorkerEnv();
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
  // Operator output goes to stdout as plain lines; logs only when something goes wrong.
  const logger = createLogger(name, env.LOG_LEVEL === 'info' ? 'warn' : env.LOG_LEVEL);
  const prisma = createPrismaClient(env.DATABASE_URL, { poolSize: 4, applicationName: name });
  let code = 1;
  try {
    code = await command({ env, prisma, logger });
  } catch (error) {
    process.stderr.write(`${name} failed: ${error instanceof Error ? error.message : String(error)}\n`);
  } finally {
    await prisma.$disconnect();
  }
  process.exit(code);
}
