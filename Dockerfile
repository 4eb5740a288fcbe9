# The reference MCP server (`npm start`): Streamable HTTP on /mcp, /metrics, /healthz, /readyz.
# Built by docker-compose.yml for the app-1 and app-2 services.
FROM node:20.19.0-bookworm-slim

WORKDIR /app

# Dependencies first, so source edits do not invalidate the npm ci layer. Dev dependencies are
# kept: the reference server uses the MCP SDK, an optional peer dependency of the library.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

COPY . .
RUN npm run build

ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000

USER node
EXPOSE 3000

HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=5 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# npm forwards SIGTERM to the server, which shuts down gracefully.
CMD ["npm", "start"]
