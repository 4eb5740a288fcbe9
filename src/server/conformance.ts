/**
 * `MCP_PROFILE=conformance`: the tools, resources and prompts that the server scenarios of
 * `@modelcontextprotocol/conformance` call, with the contents they check.
 */
import { type McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { ServerNotification, ServerRequest } from "@modelcontextprotocol/sdk/types.js";
import {
  type CallToolResult,
  ElicitResultSchema,
  ListToolsRequestSchema,
  type ListToolsResult,
} from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** A 1x1 PNG. */
const PNG =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/** A WAV header with two bytes of samples. */
const WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

const JSON_SCHEMA_2020_12 = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  type: "object" as const,
  $defs: {
    address: {
      type: "object",
      properties: { street: { type: "string" }, city: { type: "string" } },
    },
  },
  properties: { name: { type: "string" }, address: { $ref: "#/$defs/address" } },
  additionalProperties: false,
};

/**
 * How long a tool waits for the client's answer to sampling/elicitation. The conformance client
 * answers at once; behind a load balancer the answer may reach another instance and never
 * arrive here, and the scenario should fail in seconds, not after the SDK's 60 s.
 */
const CLIENT_REQUEST_TIMEOUT_MS = 5000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function say(value: string): CallToolResult {
  return { content: [{ type: "text", text: value }] };
}

/** Server capabilities the conformance profile needs on top of what registration declares. */
export const CONFORMANCE_CAPABILITIES = {
  logging: {},
  completions: {},
  resources: { subscribe: true, listChanged: true },
  tools: { listChanged: true },
  prompts: { listChanged: true },
};

/** Registers the conformance scenarios' tools, resources and prompts on one session's server. */
export function registerConformance(server: McpServer): void {
  const tool = (name: string, description: string, result: CallToolResult) =>
    server.registerTool(name, { description, inputSchema: {} }, async () => result);

  tool("test_simple_text", "Returns simple text content", {
    content: [{ type: "text", text: "This is a simple text response for testing." }],
  });
  tool("test_image_content", "Returns image content", {
    content: [{ type: "image", data: PNG, mimeType: "image/png" }],
  });
  tool("test_audio_content", "Returns audio content", {
    content: [{ type: "audio", data: WAV, mimeType: "audio/wav" }],
  });
  tool("test_embedded_resource", "Returns an embedded resource", {
    content: [
      {
        type: "resource",
        resource: {
          uri: "test://embedded-resource",
          mimeType: "text/plain",
          text: "This is an embedded resource content.",
        },
      },
    ],
  });
  tool("test_multiple_content_types", "Returns text, image and resource content", {
    content: [
      { type: "text", text: "Multiple content types test:" },
      { type: "image", data: PNG, mimeType: "image/png" },
      {
        type: "resource",
        resource: {
          uri: "test://mixed-content-resource",
          mimeType: "application/json",
          text: JSON.stringify({ test: "data", value: 123 }),
        },
      },
    ],
  });

  server.registerTool(
    "test_tool_with_logging",
    { description: "Sends log messages while it runs", inputSchema: {} },
    async (_args, extra) => {
      for (const data of [
        "Tool execution started",
        "Tool processing data",
        "Tool execution completed",
      ]) {
        await extra.sendNotification({
          method: "notifications/message",
          params: { level: "info", data },
        });
        await sleep(50);
      }
      return say("Tool with logging executed successfully");
    },
  );

  server.registerTool(
    "test_tool_with_progress",
    { description: "Sends progress notifications while it runs", inputSchema: {} },
    async (_args, extra) => {
      const progressToken = extra._meta?.progressToken ?? 0;
      for (const progress of [0, 50, 100]) {
        await extra.sendNotification({
          method: "notifications/progress",
          params: { progressToken, progress, total: 100, message: `Completed ${progress}%` },
        });
        if (progress < 100) await sleep(50);
      }
      return say(String(progressToken));
    },
  );

  server.registerTool(
    "test_error_handling",
    { description: "Always fails", inputSchema: {} },
    async () => {
      throw new Error("This tool intentionally returns an error for testing");
    },
  );

  server.registerTool(
    "test_reconnection",
    {
      description:
        "Closes its SSE stream mid-call; the client reconnects with Last-Event-ID and gets the result (SEP-1699)",
      inputSchema: {},
    },
    async (_args, extra) => {
      extra.closeSSEStream?.();
      await sleep(100);
      return say("Reconnection test completed successfully.");
    },
  );

  server.registerTool(
    "test_sampling",
    {
      description: "Asks the client for an LLM completion (sampling/createMessage)",
      inputSchema: { prompt: z.string().describe("The prompt to send to the LLM") },
    },
    async ({ prompt }, extra) => {
      const result = await extra.sendRequest(
        {
          method: "sampling/createMessage",
          params: {
            messages: [{ role: "user", content: { type: "text", text: prompt } }],
            maxTokens: 100,
          },
        },
        z
          .object({ content: z.object({ text: z.string().optional() }).passthrough() })
          .passthrough(),
        { timeout: CLIENT_REQUEST_TIMEOUT_MS },
      );
      return say(`LLM response: ${result.content.text ?? ""}`);
    },
  );

  const elicit = (extra: Extra, message: string, requestedSchema: Record<string, unknown>) =>
    extra.sendRequest(
      { method: "elicitation/create", params: { mode: "form", message, requestedSchema } } as never,
      ElicitResultSchema,
      { timeout: CLIENT_REQUEST_TIMEOUT_MS },
    );

  server.registerTool(
    "test_elicitation",
    {
      description: "Asks the client for user input (elicitation/create)",
      inputSchema: { message: z.string().describe("The message to show the user") },
    },
    async ({ message }, extra) => {
      const result = await elicit(extra, message, {
        type: "object",
        properties: {
          username: { type: "string", description: "User's response" },
          email: { type: "string", description: "User's email address" },
        },
        required: ["username", "email"],
      });
      return say(
        `User response: action=${result.action}, content=${JSON.stringify(result.content ?? {})}`,
      );
    },
  );

  server.registerTool(
    "test_elicitation_sep1034_defaults",
    { description: "Elicitation with default values (SEP-1034)", inputSchema: {} },
    async (_args, extra) => {
      const result = await elicit(extra, "Please review the fields with defaults", {
        type: "object",
        properties: {
          name: { type: "string", description: "User name", default: "John Doe" },
          age: { type: "integer", description: "User age", default: 30 },
          score: { type: "number", description: "User score", default: 95.5 },
          status: {
            type: "string",
            description: "User status",
            enum: ["active", "inactive", "pending"],
            default: "active",
          },
          verified: { type: "boolean", description: "Verification status", default: true },
        },
        required: [],
      });
      return say(
        `Elicitation completed: action=${result.action}, content=${JSON.stringify(result.content ?? {})}`,
      );
    },
  );

  server.registerTool(
    "test_elicitation_sep1330_enums",
    { description: "Elicitation with the five enum forms (SEP-1330)", inputSchema: {} },
    async (_args, extra) => {
      const result = await elicit(extra, "Please select options from the enum fields", {
        type: "object",
        properties: {
          untitledSingle: { type: "string", enum: ["option1", "option2", "option3"] },
          titledSingle: {
            type: "string",
            oneOf: [
              { const: "value1", title: "First Option" },
              { const: "value2", title: "Second Option" },
              { const: "value3", title: "Third Option" },
            ],
          },
          legacyEnum: {
            type: "string",
            enum: ["opt1", "opt2", "opt3"],
            enumNames: ["Option One", "Option Two", "Option Three"],
          },
          untitledMulti: {
            type: "array",
            items: { type: "string", enum: ["option1", "option2", "option3"] },
          },
          titledMulti: {
            type: "array",
            items: {
              anyOf: [
                { const: "value1", title: "First Choice" },
                { const: "value2", title: "Second Choice" },
                { const: "value3", title: "Third Choice" },
              ],
            },
          },
        },
        required: [],
      });
      return say(
        `Elicitation completed: action=${result.action}, content=${JSON.stringify(result.content ?? {})}`,
      );
    },
  );

  server.registerTool(
    "json_schema_2020_12_tool",
    {
      description: "Tool whose input schema uses JSON Schema 2020-12 ($schema, $defs)",
      inputSchema: {
        name: z.string().optional(),
        address: z
          .object({ street: z.string().optional(), city: z.string().optional() })
          .optional(),
      },
    },
    async (args) => say(`JSON Schema 2020-12 tool called with: ${JSON.stringify(args)}`),
  );

  server.registerResource(
    "static-text",
    "test://static-text",
    { description: "A static text resource", mimeType: "text/plain" },
    async () => ({
      contents: [
        {
          uri: "test://static-text",
          mimeType: "text/plain",
          text: "This is the content of the static text resource.",
        },
      ],
    }),
  );
  server.registerResource(
    "static-binary",
    "test://static-binary",
    { description: "A static binary resource (PNG)", mimeType: "image/png" },
    async () => ({
      contents: [{ uri: "test://static-binary", mimeType: "image/png", blob: PNG }],
    }),
  );
  server.registerResource(
    "template",
    new ResourceTemplate("test://template/{id}/data", { list: undefined }),
    {
      description: "A resource template with parameter substitution",
      mimeType: "application/json",
    },
    async (uri, { id }) => ({
      contents: [
        {
          uri: uri.toString(),
          mimeType: "application/json",
          text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${String(id)}` }),
        },
      ],
    }),
  );
  server.registerResource(
    "watched-resource",
    "test://watched-resource",
    { description: "A resource clients may subscribe to", mimeType: "text/plain" },
    async () => ({
      contents: [
        {
          uri: "test://watched-resource",
          mimeType: "text/plain",
          text: "Watched resource content",
        },
      ],
    }),
  );
  // Subscriptions are accepted; this server never changes its resources, so none fires.
  server.server.setRequestHandler(
    z.object({ method: z.literal("resources/subscribe"), params: z.object({ uri: z.string() }) }),
    async () => ({}),
  );
  server.server.setRequestHandler(
    z.object({ method: z.literal("resources/unsubscribe"), params: z.object({ uri: z.string() }) }),
    async () => ({}),
  );

  server.registerPrompt(
    "test_simple_prompt",
    { description: "A prompt without arguments" },
    async () => ({
      messages: [
        { role: "user", content: { type: "text", text: "This is a simple prompt for testing." } },
      ],
    }),
  );
  server.registerPrompt(
    "test_prompt_with_arguments",
    {
      description: "A prompt with two required arguments",
      argsSchema: {
        arg1: z.string().describe("First test argument"),
        arg2: z.string().describe("Second test argument"),
      },
    },
    async ({ arg1, arg2 }) => ({
      messages: [
        {
          role: "user",
          content: { type: "text", text: `Prompt with arguments: arg1='${arg1}', arg2='${arg2}'` },
        },
      ],
    }),
  );
  server.registerPrompt(
    "test_prompt_with_embedded_resource",
    {
      description: "A prompt that embeds a resource",
      argsSchema: { resourceUri: z.string().describe("URI of the resource to embed") },
    },
    async ({ resourceUri }) => ({
      messages: [
        {
          role: "user",
          content: {
            type: "resource",
            resource: {
              uri: resourceUri,
              mimeType: "text/plain",
              text: "Embedded resource content for testing.",
            },
          },
        },
        {
          role: "user",
          content: { type: "text", text: "Please process the embedded resource above." },
        },
      ],
    }),
  );
  server.registerPrompt(
    "test_prompt_with_image",
    { description: "A prompt with image content" },
    async () => ({
      messages: [
        { role: "user", content: { type: "image", data: PNG, mimeType: "image/png" } },
        { role: "user", content: { type: "text", text: "Please analyze the image above." } },
      ],
    }),
  );

  server.server.setRequestHandler(
    z.object({ method: z.literal("completion/complete") }).passthrough(),
    async () => ({ completion: { values: [], total: 0, hasMore: false } }),
  );

  // The SDK derives input schemas from zod and drops `$schema`/`$defs`; the 2020-12 scenario
  // checks that they reach the client, so tools/list serves that one schema verbatim.
  const handlers = (server.server as unknown as { _requestHandlers: Map<string, Handler> })
    ._requestHandlers;
  const listTools = handlers.get("tools/list");
  if (listTools !== undefined) {
    server.server.setRequestHandler(ListToolsRequestSchema, async (request, extra) => {
      const result = (await listTools(request, extra)) as ListToolsResult;
      return {
        ...result,
        tools: result.tools.map((t) =>
          t.name === "json_schema_2020_12_tool" ? { ...t, inputSchema: JSON_SCHEMA_2020_12 } : t,
        ),
      };
    });
  }
}

type Handler = (request: unknown, extra: unknown) => Promise<unknown>;
