# Kasmina gRPC service. Multi-stage: build with dev dependencies, run with production ones only.
# better-sqlite3 (the state store) compiles from source: the install stages carry a toolchain,
# the runtime image only the compiled node_modules.
FROM node:20-bookworm-slim AS toolchain
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*

FROM toolchain AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY generated ./generated
RUN npm run build

FROM toolchain AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# The GPU backend (optional dependency) downloads libtensorflow at install time; the image uses
# the CPU backends, so optional dependencies are left out.
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund && npm cache clean --force

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    KASMINA_HOST=0.0.0.0 \
    KASMINA_PORT=50051 \
    KASMINA_STATE_PATH=/app/kasmina-data/kasmina.db
WORKDIR /app
COPY package.json package-lock.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# Runs and the nonce ledger live here (DESIGN §2.2): mount a volume to keep them across containers.
RUN mkdir -p /app/kasmina-data && chown node:node /app/kasmina-data
VOLUME /app/kasmina-data
# Reflection serves the buf-built descriptor set.
COPY generated/kasmina.binpb ./generated/kasmina.binpb
USER node
EXPOSE 50051
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["node", "dist/src/healthcheck.js"]
CMD ["node", "dist/src/main.js"]
