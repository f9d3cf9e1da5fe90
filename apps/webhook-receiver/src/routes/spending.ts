import {
  accountBalance,
  captureHold,
  DEFAULT_HOLD_SECONDS,
  debitAccount,
  findHold,
  MAX_HOLD_SECONDS,
  placeHold,
  releaseHold,
  SPENDING_REFERENCE,
  type AccountFigures,
  type Hold,
  type SpendingAnswer,
  type SpendingRefusal,
} from '@ledger/ledger';
import { ACCOUNT_ID, MAX_AMOUNT, normalizeCurrency } from '@ledger/shared';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { authenticateCallers, callerOf, callerSecurity, rateLimited, serviceSecurity, unauthorized } from '../api-callers.js';
import { HttpError } from '../errors.js';
import { bodyRefused, errorResponse, internalError, unavailable } from '../http-schemas.js';
import type { OrdersAuthConfig } from '../orders-auth.js';

export interface SpendingRouteOptions {
  auth: OrdersAuthConfig;
}

const amount = z
  .number({ error: 'must be a number' })
  .int('must be an integer number of minor units')
  .positive('must be positive')
  .max(MAX_AMOUNT, `must be at most ${MAX_AMOUNT}`);
const currency = z.string().transform((value, ctx) => {
  const code = normalizeCurrency(value);
  if (!code) ctx.addIssue({ code: 'custom', message: 'must be a three-letter ISO 4217 code' });
  return code ?? value;
});
const reference = z
  .string({ error: 'is required' })
  .regex(SPENDING_REFERENCE, 'must be 1-200 characters of A-Z a-z 0-9 - _ . : /')
  .describe('Your id for this operation, unique per account: the same reference again never spends twice');

export const debitBody = z
  .object({
    amount,
    currency,
    reference,
    description: z
      .string()
      .max(500, 'must be at most 500 characters')
      .refine((text) => !text.includes('\u0000'), 'must not contain NUL characters')
      .optional(),
  })
  .strict();
export const holdBody = z
  .object({
    amount,
    currency,
    reference,
    expiresInSeconds: z
      .number({ error: 'must be a number of seconds' })
      .int('must be an integer number of seconds')
      .min(1, 'must be at least 1')
      .max(MAX_HOLD_SECONDS, `must be at most ${MAX_HOLD_SECONDS} (7 days)`)
      .optional()
      .describe(`Seconds until the hold expires (default ${DEFAULT_HOLD_SECONDS})`),
  })
  .strict();
export const captureBody = z
  .object({ amount: amount.optional().describe('At most the hold; all of it when absent') })
  .strict()
  // No body at all (Fastify gives null) captures all of it too.
  .nullish();

const figures = {
  balance: z.number().int().describe('Minor units: the sum of the ledger; negative is a debt (money Stripe took back after it was spent)'),
  available: z.number().int().describe('balance − active holds'),
};
const debitSchema = z
  .object({
    id: z.string().describe('`deb_…`'),
    accountId: z.string(),
    amount: z.number().int().describe('Minor units taken'),
    currency: z.string(),
    reference: z.string(),
    description: z.string().nullable(),
    status: z.literal('posted'),
    createdAt: z.date(),
    ...figures,
  })
  .meta({ id: 'Debit', description: 'The debit, with the account after it' });
const holdSchema = z
  .object({
    id: z.string().describe('Unguessable hold id (`hold_…`)'),
    accountId: z.string(),
    amount: z.number().int().describe('Minor units reserved'),
    currency: z.string(),
    reference: z.string(),
    status: z.enum(['active', 'captured', 'released', 'expired']).describe('`expired` from `expiresAt` on, before the sweeper records it'),
    capturedAmount: z.number().int().describe('What the capture took (0 until captured)'),
    expiresAt: z.date(),
    createdAt: z.date(),
    updatedAt: z.date(),
    ...figures,
  })
  .meta({ id: 'Hold', description: 'The hold, with its account now' });
const balanceSchema = z
  .object({ accountId: z.string(), currency: z.string(), ...figures, held: z.number().int().describe('Active holds') })
  .meta({ id: 'Balance', description: 'The account' });

const accountParams = z.object({ id: z.string().regex(ACCOUNT_ID, 'must be an account id').describe('The account id') });
const holdParams = z.object({
  id: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,100}$/, 'must be a hold id')
    .describe('The hold id (`hold_…`)'),
});

const forbidden = errorResponse("A user's token: end users read their own balance, never spend");
const spendingErrors = {
  401: unauthorized,
  403: forbidden,
  ...bodyRefused,
  429: rateLimited,
  ...unavailable,
  ...internalError,
};
const spendOperation = (operationId: string, summary: string) => ({ tags: ['spending'], operationId, summary, security: serviceSecurity });

/** What each refusal of the ledger answers. */
const REFUSED: Record<SpendingRefusal, { status: number; message: (account?: AccountFigures, hold?: Hold) => string }> = {
  unknown_account: { status: 404, message: () => 'No account with this id.' },
  currency_mismatch: { status: 400, message: (account) => `This account holds ${account?.currency ?? 'another currency'}.` },
  insufficient_funds: {
    status: 422,
    message: (account) =>
      account && account.balance < 0
        ? `The account is in debt (balance ${account.balance}): nothing can be spent until it is repaid.`
        : `Only ${account?.available ?? 0} is available (balance ${account?.balance ?? 0}, held ${account?.held ?? 0}); nothing was written.`,
  },
  reference_conflict: {
    status: 409,
    message: () => 'This reference was already used on this account for another operation or with another amount or currency.',
  },
  unknown_hold: { status: 404, message: () => 'No hold with this id.' },
  hold_not_active: {
    status: 409,
    message: (_account, hold) =>
      hold
        ? `The hold is ${hold.status}${hold.status === 'captured' ? ` (${hold.capturedAmount} captured)` : ''}: it no longer allows this.`
        : 'The hold is no longer active.',
  },
  exceeds_hold: { status: 400, message: () => 'The capture is larger than the hold.' },
};

/** End users read their own balance; only the merchant's backend spends. */
function requireService(request: FastifyRequest): void {
  if (callerOf(request).kind !== 'service') {
    throw new HttpError(403, 'forbidden', "End users' tokens read their own balance; spending takes a service key (ORDERS_API_KEYS).");
  }
}

/**
 * Spending by the merchant's backend — `POST /accounts/:id/debits`, `POST /accounts/:id/holds`,
 * `POST /holds/:id/capture`, `POST /holds/:id/release`, `GET /holds/:id` — and
 * `GET /accounts/:id/balance`, which an end user may read for their own account. Each operation
 * is one call of the ledger (one PostgreSQL round trip, under the account's row lock): no queue in
 * between, the caller needs the answer now.
 */
export default async function spendingRoutes(fastify: FastifyInstance, options: SpendingRouteOptions) {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  authenticateCallers(app, options.auth);

  /** The answer of one ledger call: the value (201 when done now, 200 when done before) or the refusal. */
  function send<T extends object>(
    reply: FastifyReply,
    operation: string,
    answer: SpendingAnswer<T>,
    doneNow: 201 | 200,
  ): T & { balance: number; available: number } {
    if (!answer.ok) {
      app.metrics.spendingOperations.inc({ operation, outcome: answer.refusal });
      const refused = REFUSED[answer.refusal];
      throw new HttpError(refused.status, answer.refusal, refused.message(answer.account, answer.hold));
    }
    app.metrics.spendingOperations.inc({ operation, outcome: answer.created ? 'created' : 'replayed' });
    reply.code(answer.created ? doneNow : 200);
    return { ...answer.value, balance: answer.account.balance, available: answer.account.available };
  }

  app.post(
    '/accounts/:id/debits',
    {
      schema: {
        ...spendOperation('debitAccount', 'Debit the account once per reference, never beyond what is available'),
        params: accountParams,
        body: debitBody,
        response: {
          201: debitSchema.meta({ description: 'Debited' }),
          200: debitSchema.meta({ description: 'This reference was debited before with this amount and currency: nothing moved' }),
          400: errorResponse('Invalid body (`invalid_request`) or another currency than the account holds (`currency_mismatch`)'),
          404: errorResponse('No account with this id'),
          409: errorResponse('The reference was used with another amount or currency, or by a hold (`reference_conflict`)'),
          422: errorResponse('More than is available, or the account is in debt (`insufficient_funds`): nothing was written'),
          ...spendingErrors,
        },
      },
    },
    async (request, reply) => {
      requireService(request);
      await app.rateLimits.spending(request, request.params.id);
      return send(reply, 'debit', await debitAccount(app.prisma, { accountId: request.params.id, ...request.body }), 201);
    },
  );

  app.post(
    '/accounts/:id/holds',
    {
      schema: {
        ...spendOperation('placeHold', 'Reserve an amount until it is captured, released or expires'),
        params: accountParams,
        body: holdBody,
        response: {
          201: holdSchema.meta({ description: 'Held' }),
          200: holdSchema.meta({ description: 'This reference placed this hold before (as it is now): nothing moved' }),
          400: errorResponse('Invalid body (`invalid_request`) or another currency than the account holds (`currency_mismatch`)'),
          404: errorResponse('No account with this id'),
          409: errorResponse('The reference was used with another amount or currency, or by a debit (`reference_conflict`)'),
          422: errorResponse('More than is available, or the account is in debt (`insufficient_funds`): nothing was written'),
          ...spendingErrors,
        },
      },
    },
    async (request, reply) => {
      requireService(request);
      await app.rateLimits.spending(request, request.params.id);
      return send(reply, 'hold', await placeHold(app.prisma, { accountId: request.params.id, ...request.body }), 201);
    },
  );

  // Captures and releases count per hold, not per account: the account is known only once the
  // ledger has answered (one round trip per operation), and each hold was counted when it was placed.
  const holdRefusals = {
    404: errorResponse('No hold with this id'),
    409: errorResponse('The hold no longer allows this (`hold_not_active`): captured with another amount, released or expired'),
    ...spendingErrors,
  };

  app.post(
    '/holds/:id/capture',
    {
      schema: {
        ...spendOperation(
          'captureHold',
          'Take all or part of an active hold (one hold_capture entry); the rest is available again at once',
        ),
        params: holdParams,
        body: captureBody,
        response: {
          200: holdSchema.meta({ description: 'Captured (now, or before with this amount: then nothing moved)' }),
          400: errorResponse('Invalid body (`invalid_request`) or an amount larger than the hold (`exceeds_hold`)'),
          ...holdRefusals,
        },
      },
    },
    async (request, reply) => {
      requireService(request);
      await app.rateLimits.spending(request, request.params.id);
      return send(reply, 'capture', await captureHold(app.prisma, request.params.id, request.body?.amount), 200);
    },
  );

  app.post(
    '/holds/:id/release',
    {
      schema: {
        ...spendOperation('releaseHold', 'Release an active hold: its amount is available again'),
        params: holdParams,
        response: {
          200: holdSchema.meta({ description: 'Released (now, or before: then nothing moved)' }),
          400: errorResponse('Malformed JSON body'),
          ...holdRefusals,
        },
      },
    },
    async (request, reply) => {
      requireService(request);
      await app.rateLimits.spending(request, request.params.id);
      return send(reply, 'release', await releaseHold(app.prisma, request.params.id), 200);
    },
  );

  app.get(
    '/holds/:id',
    {
      schema: {
        ...spendOperation('getHold', 'The hold as it is now'),
        params: holdParams,
        response: { 200: holdSchema, 404: errorResponse('No hold with this id'), ...spendingErrors },
      },
    },
    async (request) => {
      requireService(request);
      const found = await findHold(app.prisma, request.params.id);
      if (!found) throw new HttpError(404, 'unknown_hold', 'No hold with this id.');
      return { ...found.hold, balance: found.account.balance, available: found.account.available };
    },
  );

  app.get(
    '/accounts/:id/balance',
    {
      config: { rateLimited: true },
      schema: {
        tags: ['spending'],
        operationId: 'getBalance',
        summary: 'Balance, held and available (a service key, or an end user for their own account)',
        security: callerSecurity,
        params: accountParams,
        response: {
          200: balanceSchema,
          400: errorResponse('Malformed account id'),
          404: errorResponse("No account with this id, or another user's account"),
          401: unauthorized,
          429: rateLimited,
          ...unavailable,
          ...internalError,
        },
      },
    },
    async (request) => {
      const caller = callerOf(request);
      const account =
        caller.kind === 'user' && caller.accountId !== request.params.id ? undefined : await accountBalance(app.prisma, request.params.id);
      if (!account) throw new HttpError(404, 'unknown_account', 'No account with this id.');
      return account;
    },
  );
}
