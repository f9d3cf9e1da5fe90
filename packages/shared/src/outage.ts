import type { Logger } from './logger.js';

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

/**
 * True for errors that mean "the server is not reachable right now" rather than "this request is
 * wrong": socket errors, and ioredis' closed-connection and offline-queue refusals.
 */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: string }).code;
  if (code && CONNECTION_CODES.has(code)) return true;
  if (error instanceof AggregateError && error.errors.some(isConnectionError)) return true;
  return /Connection is closed|Stream isn't writeable|connect ETIMEDOUT|Reached the max retries per request limit|Connection terminated/.test(
    error.message,
  );
}

/**
 * Logs an outage of PostgreSQL or Redis once when it starts and once when it ends, instead of a
 * stack trace per reconnect attempt or per failed job. Without a recovery signal of its own (ioredis'
 * `ready`), `probe` is tried every `probeEveryMs` during the outage to notice the end.
 */
export class OutageLog {
  private since: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly logger: Pick<Logger, 'info' | 'error'>,
    private readonly service: string,
    private readonly endpoint: string,
    private readonly probe?: () => Promise<unknown>,
    private readonly probeEveryMs = 2_000,
  ) {}

  get down(): boolean {
    return this.since !== undefined;
  }

  /**
   * Notes a failure. Returns true when `error` is a connection error (now part of the outage, logged
   * at most once), false for any other error, which the caller logs as usual.
   */
  report(error: unknown, isOutage: (error: unknown) => boolean = isConnectionError): boolean {
    if (!isOutage(error)) return false;
    if (this.since === undefined) {
      this.since = Date.now();
      // Prisma's messages open with a code frame; the cause is on the last line.
      const reason =
        error instanceof Error
          ? (error.message
              .split('\n')
              .filter((line) => line.trim())
              .at(-1)
              ?.trim() ?? error.name)
          : String(error);
      this.logger.error(
        { service: this.service, endpoint: this.endpoint },
        `${this.service} unreachable at ${this.endpoint} (${reason}); retrying`,
      );
      if (this.probe) this.scheduleProbe();
    }
    return true;
  }

  /** Notes that the service answers again; logs the end of an outage once. */
  recovered(): void {
    if (this.since === undefined) return;
    const seconds = Math.round((Date.now() - this.since) / 100) / 10;
    this.since = undefined;
    clearTimeout(this.timer);
    this.logger.info(
      { service: this.service, endpoint: this.endpoint, outageSeconds: seconds },
      `${this.service} reachable again at ${this.endpoint} after ${seconds} s`,
    );
  }

  /** Stops probing (on shutdown). */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private scheduleProbe(): void {
    const probe = this.probe;
    if (this.closed || !probe) return;
    this.timer = setTimeout(() => {
      probe().then(
        () => this.recovered(),
        () => this.down && this.scheduleProbe(),
      );
    }, this.probeEveryMs);
    this.timer.unref();
  }
}
