import { escapeGlob } from "../codec.js";

/**
 * The Redis key layout: `{prefix}{<id>}` for the record and `{prefix}{<id>}:<suffix>` for the
 * session's other keys, so Redis Cluster keeps all of them in one slot. `}` and `%` in an id are
 * written `%7D` and `%25`: a `}` would end the hash tag early and split a session across slots.
 */
export class KeyLayout {
  private readonly start: string;
  /** SCAN MATCH pattern of record keys (never a lock, fence or event key: those end in a suffix). */
  readonly recordPattern: string;

  constructor(readonly prefix: string) {
    this.start = `${prefix}{`;
    this.recordPattern = `${escapeGlob(prefix)}{*}`;
  }

  key(id: string, suffix?: string): string {
    const tag = id.includes("}") || id.includes("%") ? id.replace(/[%}]/g, escapeChar) : id;
    return suffix === undefined ? `${this.start}${tag}}` : `${this.start}${tag}}:${suffix}`;
  }

  /** The id of a record key, or undefined when the key is not one of this prefix's records. */
  idOf(key: string): string | undefined {
    if (!key.startsWith(this.start) || !key.endsWith("}")) return undefined;
    const tag = key.slice(this.start.length, -1);
    if (tag.includes("}")) return undefined;
    return tag.includes("%") ? tag.replace(/%7D|%25/g, (m) => (m === "%7D" ? "}" : "%")) : tag;
  }
}

function escapeChar(c: string): string {
  return c === "}" ? "%7D" : "%25";
}
