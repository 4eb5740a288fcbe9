/**
 * `MCP_PROFILE=conformance`: the tools, resources and prompts that the server scenarios of
 * `@modelcontextprotocol/conformance` call in a 2025-era session, with the contents they check.
 * SDK v2's `McpServer`, served through `createLegacyHttpHandler`: sampling and elicitation are
 * server-to-client requests of the session, answered on whichever instance the client posts to.
 */
import {
  type CallToolResult,
  fromJsonSchema,
  type McpServer,
  ResourceTemplate,
  type ServerContext,
} from "@modelcontextprotocol/server";
import { z } from "zod";

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
    server.registerTool(name, { description, inputSchema: z.object({}) }, async () => result);

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
    { description: "Sends log messages while it runs", inputSchema: z.object({}) },
    async (_args, ctx) => {
      for (const data of [
        "Tool execution started",
        "Tool processing data",
        "Tool execution completed",
      ]) {
        await ctx.mcpReq.notify({
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
    { description: "Sends progress notifications while it runs", inputSchema: z.object({}) },
    async (_args, ctx) => {
      const progressToken = ctx.mcpReq._meta?.progressToken ?? 0;
      for (const progress of [0, 50, 100]) {
        await ctx.mcpReq.notify({
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
    { description: "Always fails", inputSchema: z.object({}) },
    async () => {
      throw new Error("This tool intentionally returns an error for testing");
    },
  );

  server.registerTool(
    "test_reconnection",
    {
      description:
        "Closes its SSE stream mid-call; the client reconnects with Last-Event-ID and gets the result (SEP-1699)",
      inputSchema: z.object({}),
    },
    async (_args, ctx) => {
      ctx.http?.closeSSE?.();
      await sleep(100);
      return say("Reconnection test completed successfully.");
    },
  );

  server.registerTool(
    "test_sampling",
    {
      description: "Asks the client for an LLM completion (sampling/createMessage)",
      inputSchema: z.object({ prompt: z.string().describe("The prompt to send to the LLM") }),
    },
    async ({ prompt }, ctx) => {
      const result = await ctx.mcpReq.requestSampling(
        { messages: [{ role: "user", content: { type: "text", text: prompt } }], maxTokens: 100 },
        { timeout: CLIENT_REQUEST_TIMEOUT_MS },
      );
      const content = Array.isArray(result.content) ? result.content[0] : result.content;
      const text = content?.type === "text" ? content.text : "";
      return say(`LLM response: ${text}`);
    },
  );

  const elicit = (ctx: ServerContext, message: string, requestedSchema: Record<string, unknown>) =>
    ctx.mcpReq.elicitInput({ mode: "form", message, requestedSchema } as never, {
      timeout: CLIENT_REQUEST_TIMEOUT_MS,
    });

  server.registerTool(
    "test_elicitation",
    {
      description: "Asks the client for user input (elicitation/create)",
      inputSchema: z.object({ message: z.string().describe("The message to show the user") }),
    },
    async ({ message }, ctx) => {
      const result = await elicit(ctx, message, {
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
    { description: "Elicitation with default values (SEP-1034)", inputSchema: z.object({}) },
    async (_args, ctx) => {
      const result = await elicit(ctx, "Please review the fields with defaults", {
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
    { description: "Elicitation with the five enum forms (SEP-1330)", inputSchema: z.object({}) },
    async (_args, ctx) => {
      const result = await elicit(ctx, "Please select options from the enum fields", {
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
      // Hand-written JSON Schema, so `$schema` and `$defs` reach the client as written.
      inputSchema: fromJsonSchema(JSON_SCHEMA_2020_12),
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
  server.server.setRequestHandler("resources/subscribe", async () => ({}));
  server.server.setRequestHandler("resources/unsubscribe", async () => ({}));

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
      argsSchema: z.object({
        arg1: z.string().describe("First test argument"),
        arg2: z.string().describe("Second test argument"),
      }),
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
      argsSchema: z.object({ resourceUri: z.string().describe("URI of the resource to embed") }),
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

  server.server.setRequestHandler("completion/complete", async () => ({
    completion: { values: [], total: 0, hasMore: false },
  }));
}
