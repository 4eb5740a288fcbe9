# The reference MCP server: Streamable HTTP on /mcp, /metrics, /healthz, /readyz (docs/server.md).
# Built by docker-compose.yml for the app-1 and app-2 services.

# --- build: every dependency, the TypeScript build, then the production dependencies apart ---
FROM node:20.19.0-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build
# The library's dependencies plus what the server loads (MCP SDK, zod, OpenTelemetry SDK), at
# the locked versions; no test runner, benchmark tool or linter.
RUN node deploy/server-package.mjs /prod \
 && cd /prod \
 && npm install --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# --- runtime: node, dist/ and production node_modules only ---
FROM node:20.19.0-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    HOST=0.0.0.0
COPY --from=build /prod/package.json ./package.json
COPY --from=build /prod/node_modules ./node_modules
COPY --from=build /app/dist ./dist

USER node
# The server's default port; docker-compose.yml sets PORT for its instances.
EXPOSE 8000

HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=5 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8000)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# node itself receives SIGTERM (no npm or shell in between) and drains before it exits;
# run with `--init` (compose: `init: true`) for an init process that reaps zombies.
STOPSIGNAL SIGTERM
CMD ["node", "dist/server/main.js"]
