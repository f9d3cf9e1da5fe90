import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { WorkerMetrics } from './metrics.js';
import { readiness, type ReadinessChecks } from './readiness.js';

/** Routes the worker serves over HTTP; each port serves the ones it was configured for. */
export type WorkerRoute = '/healthz' | '/readyz' | '/metrics';

export interface HealthServerOptions {
  host: string;
  /** Port → routes it serves (one port can serve all of them). */
  routes: Map<number, Set<WorkerRoute>>;
  metrics: WorkerMetrics;
  checks: ReadinessChecks;
}

function serve(options: HealthServerOptions, routes: Set<WorkerRoute>): Server {
  return createServer((request, response) => {
    const route = request.url?.split('?')[0] as WorkerRoute;
    const json = (code: number, body: unknown) =>
      response.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (request.method !== 'GET' || !routes.has(route)) {
      json(404, { error: 'not_found', message: `No route ${request.method} ${route}` });
    } else if (route === '/healthz') {
      json(200, { status: 'ok' });
    } else if (route === '/readyz') {
      void readiness(options.checks).then(({ ready, checks }) =>
        json(
          ready ? 200 : 503,
          ready
            ? { status: 'ready', checks }
            : { error: 'not_ready', message: 'A dependency is unreachable or the workers stopped.', checks },
        ),
      );
    } else {
      options.metrics.registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': options.metrics.registry.contentType }).end(text),
        () => json(500, { error: 'internal_error', message: 'Could not collect the metrics.' }),
      );
    }
  });
}

/**
 * The worker's HTTP listeners: liveness and readiness for Docker or Kubernetes (`WORKER_HEALTH_PORT`)
 * and Prometheus metrics (`WORKER_METRICS_PORT`), on `WORKER_HTTP_HOST`. Resolves once every port
 * listens; rejects with the listen error (it names the port) after closing the others.
 */
export async function startHealthServer(options: HealthServerOptions): Promise<{ close(): Promise<void> }> {
  const servers: Server[] = [];
  const close = async () => {
    await Promise.allSettled(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  };
  try {
    for (const [port, routes] of options.routes) {
      const server = serve(options, routes);
      servers.push(server);
      server.listen(port, options.host);
      await once(server, 'listening');
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { close };
}
