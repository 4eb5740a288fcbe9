import type { ServerContext } from "@modelcontextprotocol/server";
import type { RequestStates } from "../request-states.js";

/** Options of {@link requestStateCodec}. */
export interface RequestStateCodecOptions {
  /**
   * The value a state is bound to, computed at mint and again at verify: a state minted for one
   * principal (or method) is refused under another. @default none (states are not bound)
   * @example bind: (ctx) => `${ctx.mcpReq.method}\0${ctx.http?.authInfo?.clientId ?? ""}`
   */
  bind?: (ctx: ServerContext) => string;
}

/** The SDK's `RequestStateCodec` shape, backed by {@link RequestStates}. */
export interface SharedRequestStateCodec<T = unknown> {
  /** Seals `payload` for `inputRequired({ requestState })`; `ctx` is needed when `bind` is set. */
  mint(payload: T, ctx?: ServerContext): Promise<string>;
  /** `ServerOptions.requestState.verify`: verifies and consumes, at most once on any instance. */
  verify(state: string, ctx: ServerContext): Promise<T>;
}

/**
 * Adapts shared request states to SDK v2's multi round-trip hooks, in place of
 * `createRequestStateCodec`: the same `mint`/`verify` pair, plus at-most-once consumption across
 * instances, state by reference and key rotation. A refused state makes the SDK answer `-32602`
 * ("Invalid or expired requestState").
 *
 * @example
 * const codec = requestStateCodec<{ step: number }>(services.requestStates);
 * const server = new McpServer(info, { requestState: { verify: codec.verify } });
 * // in a tool: return inputRequired({ inputRequests, requestState: await codec.mint({ step: 1 }, ctx) });
 * // next round: const state = ctx.mcpReq.requestState<{ step: number }>();
 */
export function requestStateCodec<T = unknown>(
  states: RequestStates,
  options: RequestStateCodecOptions = {},
): SharedRequestStateCodec<T> {
  const { bind } = options;
  const bound = (ctx: ServerContext | undefined): string | undefined => {
    if (bind === undefined) return undefined;
    if (ctx === undefined)
      throw new TypeError("requestStateCodec: mint needs ctx when bind is set");
    return bind(ctx);
  };
  return {
    mint: (payload, ctx) => states.mint(payload, { bind: bound(ctx) }),
    verify: (state, ctx) => states.consume<T>(state, { bind: bound(ctx) }),
  };
}
