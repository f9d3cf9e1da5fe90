import closeWithGrace from 'close-with-grace';
import { parseCommandLine, type CommandSpec, type OptionSpec } from './cli.js';
import { StartupError, requireReachable } from './dependencies.js';
import { EnvError } from './env.js';
import { createLogger, type LogFormat, type Logger } from './logger.js';
import { TRACING_ENVIRONMENT, startTracing } from './tracing.js';

/** What a long-running process gets while it starts. */
export interface ServiceContext<Env> {
  env: Env;
  logger: Logger;
  /**
   * Registers how to close a resource once it is open. At shutdown the steps run in reverse order of
   * registration (the last opened closes first: workers, then queues, then connections), each one
   * even if an earlier one failed.
   */
  onClose(name: string, close: () => unknown): void;
}

/** A long-running process: the receiver, a worker, the emulator. */
export interface ServiceDefinition<Env extends { LOG_LEVEL: string; LOG_FORMAT: LogFormat }> {
  /** Process name, in every log line. */
  name: string;
  /** Its `--help`. */
  help: CommandSpec<Record<string, OptionSpec>>;
  /** Parses the environment; throws {@link EnvError} naming the bad variables. */
  loadEnv(): Env;
  /** Services that must answer before `start` runs (a process that cannot work stops at once). */
  dependencies?(env: Env): { postgres?: string; redis?: string };
  /** Longest graceful shutdown; past it the process exits 1 anyway (finish well before SIGKILL). */
  graceMs: number;
  /** Opens everything and starts serving; resolves once started. */
  start(context: ServiceContext<Env>): Promise<void>;
}

/**
 * Runs a process from start to exit, the same way for every service:
 * - `--help` and unknown options are answered before anything opens;
 * - a bad environment, an unreachable PostgreSQL or Redis, or a taken port stop it within seconds
 *   with one line on stderr and exit code 1;
 * - SIGTERM or SIGINT close what was opened, last opened first, and exit 0 (1 if a step failed or
 *   the grace period ran out);
 * - an uncaught exception or unhandled rejection is logged, everything is closed, and it exits 1.
 */
export async function runService<Env extends { LOG_LEVEL: string; LOG_FORMAT: LogFormat }>(service: ServiceDefinition<Env>): Promise<void> {
  parseCommandLine(service.name, { ...service.help, environment: [...(service.help.environment ?? []), ...TRACING_ENVIRONMENT] });

  let env: Env;
  try {
    env = service.loadEnv();
  } catch (error) {
    if (!(error instanceof EnvError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
  const logger = createLogger(service.name, env.LOG_LEVEL, undefined, env.LOG_FORMAT);
  const steps: { name: string; close: () => unknown }[] = [];
  /** The step being closed, named when the grace period runs out. */
  let closing: string | undefined;

  /** Runs every close step, last registered first; true when all succeeded. */
  const closeAll = async (): Promise<boolean> => {
    let ok = true;
    for (const step of steps.splice(0).reverse()) {
      closing = step.name;
      try {
        await step.close();
      } catch (error) {
        ok = false;
        logger.error({ err: error, step: step.name }, `shutdown step "${step.name}" failed`);
      }
    }
    return ok;
  };

  // Installed before anything opens, so that a signal during start-up still closes what opened.
  closeWithGrace(
    {
      delay: service.graceMs,
      logger: false,
      onTimeout: (delay) =>
        logger.error({ step: closing }, `shutdown took longer than ${delay} ms (still closing "${closing}"); exiting anyway`),
      onSecondSignal: (signal) => logger.error({ signal }, 'second signal during shutdown; exiting now'),
    },
    async ({ signal, err }) => {
      if (err) logger.fatal({ err }, 'uncaught error; shutting down');
      else logger.info({ signal }, `shutting down (${signal ?? 'event loop empty'})`);
      const ok = await closeAll();
      logger.info(`${service.name.replaceAll('-', ' ')} stopped`);
      // close-with-grace exits 1 when this throws, 0 otherwise (1 anyway after an uncaught error).
      if (!ok) throw new Error('a shutdown step failed');
    },
  );

  try {
    // Before anything opens, so Prisma's and ioredis' spans are reported; closed last, after what it traced.
    const traces = await startTracing(service.name);
    if (traces) {
      steps.push({
        name: 'tracing',
        close: () => traces.shutdown().catch((error: unknown) => logger.warn({ err: error }, 'the last spans could not be exported')),
      });
      // The origin only: a URL may carry credentials.
      const endpoint = URL.parse(process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_ENDPOINT || '')?.origin;
      logger.info({ endpoint }, 'tracing on: spans exported over OTLP');
    }
    const dependencies = service.dependencies?.(env);
    if (dependencies) await requireReachable(dependencies);
    await service.start({ env, logger, onClose: (name, close) => steps.push({ name, close }) });
  } catch (error) {
    if (error instanceof StartupError) process.stderr.write(`${service.name} cannot start: ${error.message}\n`);
    else logger.fatal({ err: error }, 'start failed');
    await closeAll();
    process.exit(1);
  }
}
