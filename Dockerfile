# syntax=docker/dockerfile:1
# One Dockerfile, one target per process: receiver (the default), worker, stripe-emulator, migrate
# (docker-compose.yml builds each). Node 24 LTS. The runtime stages hold production dependencies
# and compiled JavaScript only (no tsx, no TypeScript), run as the unprivileged `node` user, and
# start `node` itself, so that `docker stop` delivers SIGTERM to the process that drains.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY apps/webhook-receiver/package.json apps/webhook-receiver/
COPY apps/order-worker/package.json apps/order-worker/
COPY packages/shared/package.json packages/shared/
COPY packages/ledger/package.json packages/ledger/
COPY packages/stripe-emulator/package.json packages/stripe-emulator/
# postinstall generates the Prisma client from the schema, offline.
COPY prisma prisma
COPY prisma.config.ts ./
COPY tools tools
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY packages packages
COPY apps apps
RUN npm run build

FROM node:24-bookworm-slim AS runtime
WORKDIR /app
# "compiled": @ledger/shared and @ledger/ledger resolve to their compiled JavaScript (packages/*/package.json).
ENV NODE_ENV=production NODE_OPTIONS=--conditions=compiled
COPY package.json package-lock.json ./
COPY apps/webhook-receiver/package.json apps/webhook-receiver/
COPY apps/order-worker/package.json apps/order-worker/
COPY packages/shared/package.json packages/shared/
COPY packages/ledger/package.json packages/ledger/
COPY packages/stripe-emulator/package.json packages/stripe-emulator/
# Production dependencies only. No install scripts: the Prisma client was generated and compiled in
# the build stage; the prisma CLI stays (a production dependency) for `npm run migrate`.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/packages/shared/dist packages/shared/dist
COPY --from=build /app/packages/ledger/dist packages/ledger/dist
COPY --from=build /app/apps/webhook-receiver/dist apps/webhook-receiver/dist
COPY --from=build /app/apps/order-worker/dist apps/order-worker/dist
COPY --from=build /app/packages/stripe-emulator/dist packages/stripe-emulator/dist
COPY prisma prisma
COPY prisma.config.ts ./
COPY tools tools
USER node

# Applies the migrations and exits (also: `npm run migrate` in any runtime container).
FROM runtime AS migrate
CMD ["node", "tools/migrate/migrate.mjs"]

FROM runtime AS stripe-emulator
ENV STRIPE_EMULATOR_HOST=0.0.0.0 STRIPE_EMULATOR_PORT=12111
EXPOSE 12111
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+process.env.STRIPE_EMULATOR_PORT+'/_emulator/config').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "packages/stripe-emulator/dist/main.js"]

# Operator commands run in a worker container: `npm run audit`, `npm run reconcile`, `npm run replay -- …`.
FROM runtime AS worker
ENV WORKER_HEALTH_PORT=3001 WORKER_METRICS_PORT=3001 WORKER_HTTP_HOST=0.0.0.0
EXPOSE 3001
# Ready: PostgreSQL and Redis answer and the workers run.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+process.env.WORKER_HEALTH_PORT+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "apps/order-worker/dist/main.js"]

FROM runtime AS receiver
ENV HOST=0.0.0.0 PORT=3000
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+process.env.PORT+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "apps/webhook-receiver/dist/server.js"]
