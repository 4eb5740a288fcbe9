// An MCP server for protocol 2026-07-28 that runs as many instances as you like behind a load
// balancer: carts live in server-minted handles, change events cross instances on the bus.
import { createServer } from "node:http";
import { getRequestListener } from "@hono/node-server";
import { createMcpHandler, McpServer, type ServerContext } from "@modelcontextprotocol/server";
import { z } from "zod";
import { isSessionStoreError } from "../src/index.js";
import { registerRedisBackedServices } from "../src/mcp/v2/index.js";

const services = await registerRedisBackedServices({
  redisUrl: process.env.REDIS_URL ?? "redis://localhost:6379",
  prefix: "demo:",
});

// The caller a handle is bound to: here the OAuth client, else one shared anonymous principal.
const principalOf = (ctx: ServerContext) => ({
  principal: ctx.http?.authInfo?.clientId ?? "anonymous",
});

const text = (value: string) => ({ content: [{ type: "text" as const, text: value }] });

const handler = createMcpHandler(
  () => {
    const server = new McpServer(
      { name: "cart-demo", version: "1.0.0" },
      { capabilities: { tools: { listChanged: true } } },
    );
    server.registerTool(
      "cart_add",
      {
        description: "Adds an item to a cart; without a cart handle, starts a new cart.",
        inputSchema: z.object({ item: z.string(), cart: z.string().optional() }),
      },
      async ({ item, cart }, ctx) => {
        try {
          if (cart === undefined) {
            const handle = await services.handles.create([item], { ...principalOf(ctx), ttl: 900 });
            return text(`cart ${handle}: ${item}`);
          }
          const items = await services.handles.update<string[]>(
            cart,
            (list) => [...list, item],
            principalOf(ctx),
          );
          await services.handles.touch(cart, principalOf(ctx));
          return text(`cart ${cart}: ${items.join(", ")}`);
        } catch (err) {
          // An expired or unknown cart is a tool error the model can act on, not a crash.
          if (isSessionStoreError(err) && err.code === "ERR_HANDLE_EXPIRED")
            return { ...text("This cart expired: start a new one."), isError: true };
          if (isSessionStoreError(err) && err.code === "ERR_HANDLE_NOT_FOUND")
            return { ...text("No such cart."), isError: true };
          throw err;
        }
      },
    );
    server.registerTool(
      "catalog_changed",
      { description: "Tells every listening client, on every instance, that the tools changed." },
      async () => {
        handler.notify.toolsChanged();
        return text("notified");
      },
    );
    return server;
  },
  // The shared bus: a subscriptions/listen stream held by another instance gets the event too.
  { bus: services.eventBus, legacy: "reject" },
);

const http = createServer(getRequestListener((request) => handler.fetch(request)));
http.listen(Number(process.env.PORT ?? 8000), "127.0.0.1", () => {
  const address = http.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  console.log(`listening on http://127.0.0.1:${port}/mcp`);
});

const stop = () => {
  http.close();
  http.closeAllConnections();
  void handler.close().finally(() => services.close());
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
