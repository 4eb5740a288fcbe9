import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisSessionStore } from "../src/index.js";
import { freePort, type RedisNode, startRedis } from "./support/redis.js";

/** A CA and a server certificate for 127.0.0.1, made with the openssl binary. */
function makeCertificates(dir: string): { ca: string; cert: string; key: string } {
  const run = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  run(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=test-ca",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
  );
  run(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=127.0.0.1",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
  );
  execFileSync("sh", ["-c", "printf 'subjectAltName=IP:127.0.0.1\\n' > ext.cnf"], { cwd: dir });
  run(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    "ext.cnf",
    "-out",
    "server.crt",
  );
  return { ca: join(dir, "ca.crt"), cert: join(dir, "server.crt"), key: join(dir, "server.key") };
}

describe("rediss:// (TLS)", () => {
  let dir: string;
  let node: RedisNode;
  let tlsPort: number;
  let ca: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "mss-tls-"));
    const files = makeCertificates(dir);
    ca = readFileSync(files.ca, "utf8");
    tlsPort = await freePort();
    node = await startRedis({
      args: [
        "--tls-port",
        String(tlsPort),
        "--tls-cert-file",
        files.cert,
        "--tls-key-file",
        files.key,
        "--tls-ca-cert-file",
        files.ca,
        "--tls-auth-clients",
        "no",
      ],
    });
  });
  afterAll(async () => {
    await node?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("stores over TLS with the CA given through the redis option", async () => {
    const store = await createRedisSessionStore({
      redisUrl: `rediss://127.0.0.1:${tlsPort}`,
      redis: { tls: { ca } },
      instrumentation: false,
    });
    await store.setSession("tls", { secure: true });
    expect(await store.getSession("tls")).toEqual({ secure: true });
    await store.disconnect();
  });

  it("refuses a server whose certificate it cannot verify", async () => {
    await expect(
      createRedisSessionStore({
        redisUrl: `rediss://127.0.0.1:${tlsPort}`,
        connectTimeout: 1000,
        instrumentation: false,
      }),
    ).rejects.toMatchObject({ code: "ERR_BACKEND_UNAVAILABLE" });
  });
});
