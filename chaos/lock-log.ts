import type { SessionStore } from "../src/index.js";
import { type Grant, leaseEndOf, monotonicNow } from "./grants.js";
import type { Probe } from "./probe.js";

export const REFUSED = "grants refused while a quorum was up";

/** Takes and releases one lock after another, logging each grant for `checkGrants`. */
export class GrantLog {
  readonly grants: Grant[] = [];

  constructor(
    private readonly probe: Probe,
    private readonly resource: string,
  ) {}

  /** One grant that must succeed (a quorum is up): a refusal is a violation. */
  async grant(store: SessionStore, holder: string, ttl: number, waitTimeout: number) {
    try {
      const lock = await this.probe.call(
        `acquireLock (${holder})`,
        () => store.acquireLock(this.resource, { ttl, waitTimeout }),
        waitTimeout,
      );
      const start = monotonicNow();
      this.grants.push({
        holder,
        token: lock.fencingToken,
        start,
        end: monotonicNow(),
        leaseEnd: leaseEndOf(lock.expiresAt),
      });
      await this.probe
        .call(`release (${holder})`, () => lock.release())
        .catch(() => {
          // A release a node did not confirm ends by the lease expiring; not what is checked here.
        });
    } catch (err) {
      const code = (err as { code?: string }).code ?? String(err);
      this.probe.violation(REFUSED, `${holder}: ${code}`);
    }
  }
}
