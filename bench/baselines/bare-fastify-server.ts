/**
 * Baseline of the ingest benchmark: the least a Fastify webhook endpoint can do on this machine —
 * read the raw body and answer 200 — with no verification, queue or logging. The receiver's
 * throughput is reported as a fraction of this one's, measured with the same load in the same run.
 *
 *   PORT=… node --import tsx bench/baselines/bare-fastify-server.ts
 */
import Fastify from 'fastify';

const app = Fastify({ logger: false });
// The same route-level contract as the receiver: the raw bytes, as a Buffer, nothing parsed.
app.removeAllContentTypeParsers();
app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: 512 * 1024 }, (_request, body, done) => done(null, body));
// The parser above has read the whole body by the time the handler runs; same answer as the receiver.
app.post('/webhooks/stripe', async (_request, reply) => reply.code(200).send({ received: true }));

const shutdown = () => void app.close().then(() => process.exit(0));
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);

const address = await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' });
process.stdout.write(`bare fastify listening on ${address}\n`);
