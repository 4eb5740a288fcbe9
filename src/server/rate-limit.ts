/**
 * A per-client token bucket: `limit` requests per `windowMs`, refilled continuously. Each new
 * MCP session costs memory on every instance that serves it, so the reference server limits how
 * fast one client address may open them.
 */

/** Clients remembered at most; the least recently seen are forgotten first. */
const MAX_CLIENTS = 10_000;

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;

  /** `limit` 0 turns the limiter off. */
  constructor(
    private readonly limit: number,
    windowMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.perMs = limit / windowMs;
  }

  /** 0 when `client` may go on (a token is spent), else the seconds until it may retry. */
  take(client: string): number {
    if (this.limit === 0) return 0;
    const now = this.now();
    const bucket = this.buckets.get(client);
    let tokens = this.limit;
    if (bucket !== undefined) {
      this.buckets.delete(client);
      tokens = Math.min(this.limit, bucket.tokens + (now - bucket.at) * this.perMs);
    } else if (this.buckets.size >= MAX_CLIENTS) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
    if (tokens < 1) {
      this.buckets.set(client, { tokens, at: now });
      return Math.max(1, Math.ceil((1 - tokens) / this.perMs / 1000));
    }
    this.buckets.set(client, { tokens: tokens - 1, at: now });
    return 0;
  }
}
