import { createPrismaClient, type PrismaClient } from '@ledger/shared';
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
    app.addHook('onClose', async () => {
      await prisma.$disconnect();
    });
  },
  { name: 'prisma' },
);
