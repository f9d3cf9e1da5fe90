import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyInstance } from 'fastify';
import { HttpError } from '../errors.js';
import { requireAdmin } from '../plugins/admin-auth.js';

export interface AdminRouteOptions {
  adminToken: string | undefined;
  /** Bull Board's retry / clean / delete / pause actions; without it every queue is read-only. */
  bullBoardWrite: boolean;
}

/** Read-only money views and Bull Board, all behind ADMIN_TOKEN (never an orders credential). */
export default async function adminRoutes(app: FastifyInstance, options: AdminRouteOptions) {
  app.addHook('onRequest', requireAdmin(options.adminToken));

  app.get<{ Params: { id: string } }>('/accounts/:id', async (request) => {
    const account = await app.prisma.account.findUnique({ where: { id: request.params.id } });
    if (!account) throw new HttpError(404, 'account_not_found', 'No account with this id.');
    return { id: account.id, currency: account.currency, balance: Number(account.balance), updatedAt: account.updatedAt.toISOString() };
  });

  app.get<{ Params: { id: string } }>('/accounts/:id/ledger', async (request) => {
    const account = await app.prisma.account.findUnique({ where: { id: request.params.id }, select: { id: true } });
    if (!account) throw new HttpError(404, 'account_not_found', 'No account with this id.');
    const entries = await app.prisma.ledgerEntry.findMany({ where: { accountId: account.id }, orderBy: { id: 'asc' } });
    return entries.map((entry) => ({
      id: entry.id.toString(),
      type: entry.entryType,
      amount: entry.amount,
      currency: entry.currency,
      reference: entry.reference,
      orderId: entry.orderId,
      stripeEventId: entry.stripeEventId,
      createdAt: entry.createdAt.toISOString(),
    }));
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
