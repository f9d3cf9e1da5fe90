import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorResponse } from '../http-schemas.js';

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The credential a request carries: a bearer token, or a basic-auth password (for browsers). */
function presentedToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const [scheme, value] = header.split(' ', 2);
  if (!value) return undefined;
  if (scheme?.toLowerCase() === 'bearer') return value.trim();
  if (scheme?.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon >= 0 ? decoded.slice(colon + 1) : undefined;
  }
  return undefined;
}

/** The documented answer of {@link requireAdmin}. */
export const adminUnauthorized = errorResponse('No or wrong admin credentials, or admin routes disabled (no ADMIN_TOKEN)', {
  'WWW-Authenticate': { description: '`Basic realm="ledger admin"`', type: 'string' },
});

/** What the document says of every admin operation. */
export function adminOperation(operationId: string, summary: string) {
  return { tags: ['admin'], operationId, summary, security: [{ admin: [] }] };
}

/**
 * An onRequest hook guarding admin routes with ADMIN_TOKEN. Without a configured token nothing
 * authenticates: admin routes stay closed rather than open.
 */
export function requireAdmin(adminToken: string | undefined) {
  return async function adminGuard(request: FastifyRequest, reply: FastifyReply) {
    const token = presentedToken(request);
    if (adminToken && token !== undefined && sameSecret(token, adminToken)) return;
    // Answered here rather than thrown: Bull Board's routes have an error handler of their own.
    return reply
      .code(401)
      .header('www-authenticate', 'Basic realm="ledger admin", charset="UTF-8"')
      .send({
        error: 'unauthorized',
        message: adminToken ? 'Admin credentials are required.' : 'Admin routes are disabled: set ADMIN_TOKEN.',
        requestId: request.id,
      });
  };
}
