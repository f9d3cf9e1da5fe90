import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { HttpError } from '../errors.js';
import { errorResponse, internalError, unavailable } from '../http-schemas.js';
import { adminOperation, adminUnauthorized, requireAdmin } from '../plugins/admin-auth.js';

export interface AdminRouteOptions {
  adminToken: string | undefined;
  /** Bull Board's retry / clean / delete / pause actions; without it every queue is read-only. */
  bullBoardWrite: boolean;
}

const accountParams = z.object({ id: z.string().describe('The account id') });
const accountNotFound = errorResponse('No account with this id');

const accountSchema = z
  .object({
    id: z.string(),
    currency: z.string().describe('ISO 4217, lower case; fixed by the first credit'),
    balance: z.number().int().describe('Minor units; always the sum of the ledger'),
    updatedAt: z.date(),
  })
  .meta({ description: 'The account' });

const ledgerSchema = z
  .array(
    z.object({
      id: z.string().describe('Entries are numbered in the order they were written'),
      type: z
        .string()
        .describe('`topup`, `refund`, `refund_reversal`, `dispute`, `dispute_reversal`, `adjustment`, `debit`, `hold_capture`'),
      amount: z.number().int().describe('Signed minor units'),
      currency: z.string(),
      reference: z
        .string()
        .describe("PaymentIntent, refund, dispute, resolution or hold id, or the caller's debit reference: unique per account and type"),
      orderId: z.string().nullable(),
      stripeEventId: z.string().nullable(),
      createdAt: z.date(),
    }),
  )
  .meta({ description: 'Entries, oldest first' });

/** An admin read of one account (404 for an unknown one) answering `answer`. */
function accountRoute<Answer extends z.ZodType>(operationId: string, summary: string, answer: Answer) {
  return {
    schema: {
      ...adminOperation(operationId, summary),
      params: accountParams,
      response: { 200: answer, 401: adminUnauthorized, 404: accountNotFound, ...unavailable, ...internalError },
    },
  };
}

/** Read-only money views and Bull Board, all behind ADMIN_TOKEN (never an orders credential). */
export default async function adminRoutes(fastify: FastifyInstance, options: AdminRouteOptions) {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', requireAdmin(options.adminToken));

  app.get('/accounts/:id', accountRoute('getAccount', 'Balance', accountSchema), async (request) => {
    const account = await app.prisma.account.findUnique({ where: { id: request.params.id } });
    if (!account) throw new HttpError(404, 'account_not_found', 'No account with this id.');
    return { ...account, balance: Number(account.balance) };
  });

  app.get('/accounts/:id/ledger', accountRoute('getAccountLedger', 'Ledger entries, oldest first', ledgerSchema), async (request) => {
    const account = await app.prisma.account.findUnique({ where: { id: request.params.id }, select: { id: true } });
    if (!account) throw new HttpError(404, 'account_not_found', 'No account with this id.');
    const entries = await app.prisma.ledgerEntry.findMany({ where: { accountId: account.id }, orderBy: { id: 'asc' } });
    return entries.map((entry) => ({ ...entry, id: entry.id.toString(), type: entry.entryType }));
  });

  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath('/admin/queues');
  createBullBoard({
    // Read-only by default: a retried or deleted money job is an operator decision, not a click.
    queues: Object.values(app.queues).map((queue) => new BullMQAdapter(queue, { readOnlyMode: !options.bullBoardWrite })),
    serverAdapter,
  });
  await app.register(serverAdapter.registerPlugin(), { prefix: '/admin/queues' });
}
