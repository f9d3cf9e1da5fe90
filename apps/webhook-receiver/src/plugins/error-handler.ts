import { isDatabaseUnavailableError } from '@ledger/shared';
import type { FastifyError, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { HttpError } from '../errors.js';

/** Fastify's own 4xx error codes, named for clients. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_VALIDATION: 'invalid_request',
};

/**
 * One error handler: 4xx keep their message, 5xx are generic; every error answer is
 * `{error, message}` and names the request id so operators can find the log line.
 */
export default fp(
  async function errorHandler(app: FastifyInstance) {
    app.setErrorHandler((error: FastifyError | HttpError, request, reply) => {
      // PostgreSQL down is not a bug of ours: 503 says "retry later" (the prisma plugin logs the outage once).
      if (isDatabaseUnavailableError(error)) {
        request.log.debug({ err: error }, 'database unavailable');
        return reply.code(503).send({
          error: 'database_unavailable',
          message: 'The database is unreachable right now; the request was not applied. Retry later.',
          requestId: request.id,
        });
      }
      const statusCode = error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
      if (error instanceof HttpError) reply.headers(error.headers);
      if (statusCode >= 500) {
        request.log.error({ err: error }, 'request failed');
        const code = error instanceof HttpError ? error.code : 'internal_error';
        const message = error instanceof HttpError ? error.message : 'Something went wrong on our side; the request was not applied.';
        return reply.code(statusCode).send({ error: code, message, requestId: request.id });
      }
      request.log.info({ err: { message: error.message, code: error.code } }, 'request rejected');
      const code = error instanceof HttpError ? error.code : (FASTIFY_CODES[error.code] ?? 'bad_request');
      return reply.code(statusCode).send({ error: code, message: error.message, requestId: request.id });
    });

    app.setNotFoundHandler((request, reply) => {
      reply
        .code(404)
        .send({ error: 'not_found', message: `No route ${request.method} ${request.url.split('?')[0]}`, requestId: request.id });
    });
  },
  { name: 'error-handler' },
);
