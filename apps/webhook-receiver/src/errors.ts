/**
 * An error whose status code and machine code reach the client as `{error, message}`. Anything
 * else is a 500 with a generic message (details go to the log, never to the client).
 */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    /** Headers the answer carries (`WWW-Authenticate` on a 401, `Retry-After` on a 429). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}
