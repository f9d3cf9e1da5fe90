import { OutageLog, createPrismaClient, endpointOf, isDatabaseUnavailableError, type PrismaClient } from '@ledger/shared';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

declare module 'fastify' {
  interface FastifyInstance {
    prisma: PrismaClient;
  }
}

/** PostgreSQL through Prisma; disconnected when the app closes. */
export default fp(
  async function prismaPlugin(app: FastifyInstance, options: { databaseUrl: string }) {
    const prisma = createPrismaClient(options.databaseUrl, { applicationName: 'webhook-receiver' });
    app.decorate('prisma', prisma);
    // Requests fail one by one while PostgreSQL is down; the log says so once, and once when it is back.
    const outage = new OutageLog(app.log, 'PostgreSQL', endpointOf(options.databaseUrl, 5432), () => prisma.$queryRaw`SELECT 1`);
    app.addHook('onError', async (_request, _reply, error) => {
      outage.report(error, isDatabaseUnavailableError);
    });
    app.addHook('onClose', async () => {
      outage.close();
      await prisma.$disconnect();
    });
  },
  { name: 'prisma' },
);
