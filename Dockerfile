# Kasmina gRPC service. Multi-stage: build with dev dependencies, run with production ones only.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY generated ./generated
RUN npm run build

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    KASMINA_HOST=0.0.0.0 \
    KASMINA_PORT=50051
WORKDIR /app
COPY package.json package-lock.json ./
# The GPU backend (optional dependency) downloads libtensorflow at install time; the image uses
# the CPU backends, so optional dependencies are left out.
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# Reflection serves the buf-built descriptor set.
COPY generated/kasmina.binpb ./generated/kasmina.binpb
USER node
EXPOSE 50051
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["node", "dist/src/healthcheck.js"]
CMD ["node", "dist/src/main.js"]
