# One image for the receiver and the worker (docker-compose picks the command).
FROM node:22-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY apps/webhook-receiver/package.json apps/webhook-receiver/
COPY apps/order-worker/package.json apps/order-worker/
COPY apps/stripe-emulator/package.json apps/stripe-emulator/
COPY packages/shared/package.json packages/shared/
# tsx runs the TypeScript sources; it is a dev dependency, hence --include=dev.
RUN npm install --include=dev --no-audit --no-fund
COPY . .
RUN npm run generate
USER node
CMD ["npm", "run", "receiver"]
