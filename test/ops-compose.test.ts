/**
 * docker-compose.yml without Docker: parsed and cross-checked against the files it mounts and the
 * configs that name its services; deploy/nginx.conf through a real nginx (`nginx -t`, then a live
 * round robin with streaming and failover between two local servers).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { promtool, ROOT, requireBinary, run } from "./support/prometheus.js";
import { freePort } from "./support/redis.js";

interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string } | string;
  command?: string[] | string;
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  healthcheck?: { test: string[] | string };
  depends_on?: Record<string, { condition: string }> | string[];
  profiles?: string[];
  init?: boolean;
}

const compose = parse(readFileSync(path.join(ROOT, "docker-compose.yml"), "utf8"), {
  merge: true,
}) as {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
};
const services = compose.services;
const names = Object.keys(services);
const nginxConf = readFileSync(path.join(ROOT, "deploy/nginx.conf"), "utf8");
const prometheusConfig = parse(
  readFileSync(path.join(ROOT, "prometheus/prometheus.yml"), "utf8"),
) as {
  scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>;
};

/** Services that legitimately have no healthcheck, and why. */
const NO_HEALTHCHECK: Record<string, string> = {
  k6: "one-shot load generator (docker compose run)",
  jaeger: "image without a shell or HTTP client; dependents wait for service_started",
};

const APPS = names.filter((n) => /^app-\d+$/.test(n));
const REDIS = names.filter((n) => /^redis-\d+$/.test(n));

function bindMounts(
  service: Service,
): Array<{ host: string; container: string; readOnly: boolean }> {
  return (service.volumes ?? [])
    .filter((v) => v.startsWith("./"))
    .map((v) => {
      const [host = "", container = "", mode] = v.split(":");
      return { host, container, readOnly: mode === "ro" };
    });
}

function upstreamServers(conf: string): string[] {
  const block = /upstream\s+mcp_servers\s*\{([^}]*)\}/.exec(conf)?.[1] ?? "";
  return [...block.matchAll(/^\s*server\s+([^\s;]+)/gm)].map((m) => m[1] ?? "");
}

describe("docker-compose.yml", () => {
  it("has 3 Redis nodes, 2 apps, nginx, Prometheus, Grafana, k6 and a trace backend", () => {
    expect(REDIS).toHaveLength(3);
    expect(APPS).toHaveLength(2);
    for (const name of ["nginx", "prometheus", "grafana", "k6"]) expect(names).toContain(name);
    expect(names.some((n) => n === "jaeger" || n.includes("otel"))).toBe(true);
  });

  it("pins every image tag (no latest) or builds from a Dockerfile that exists", () => {
    for (const [name, s] of Object.entries(services)) {
      if (s.build !== undefined) {
        const build = typeof s.build === "string" ? { context: s.build } : s.build;
        const dockerfile = path.join(ROOT, build.context, build.dockerfile ?? "Dockerfile");
        expect(existsSync(dockerfile), `${name}: ${dockerfile}`).toBe(true);
        continue;
      }
      expect(s.image, name).toMatch(/^[a-z0-9./_-]+:[A-Za-z0-9._-]+$/);
      const tag = s.image?.split(":").pop() ?? "";
      expect(tag, name).not.toMatch(/^(latest|main|master|nightly|edge)$/);
      expect(tag, `${name} tag has a version number`).toMatch(/\d+\.\d+/);
    }
  });

  it("gives every long-running service a healthcheck", () => {
    for (const [name, s] of Object.entries(services)) {
      if (name in NO_HEALTHCHECK) continue;
      expect(s.healthcheck?.test, name).toBeDefined();
      const test = Array.isArray(s.healthcheck?.test) ? s.healthcheck?.test : [];
      expect(["CMD", "CMD-SHELL"], name).toContain(test?.[0]);
    }
  });

  it("orders start-up with depends_on conditions (service_healthy needs a healthcheck)", () => {
    for (const [name, s] of Object.entries(services)) {
      if (s.depends_on === undefined) continue;
      expect(Array.isArray(s.depends_on), `${name}: short depends_on has no condition`).toBe(false);
      for (const [dep, { condition }] of Object.entries(
        s.depends_on as Record<string, { condition: string }>,
      )) {
        expect(names, `${name} -> ${dep}`).toContain(dep);
        expect(["service_healthy", "service_started", "service_completed_successfully"]).toContain(
          condition,
        );
        if (condition === "service_healthy")
          expect(services[dep]?.healthcheck, `${dep} healthcheck`).toBeDefined();
        else expect(NO_HEALTHCHECK, `${name} -> ${dep}: wait for healthy`).toHaveProperty(dep);
      }
    }
    for (const app of APPS) {
      expect(Object.keys(services[app]?.depends_on ?? {})).toEqual(expect.arrayContaining(REDIS));
    }
    expect(Object.keys(services.nginx?.depends_on ?? {}).sort()).toEqual([...APPS].sort());
    expect(services.grafana?.depends_on).toHaveProperty("prometheus");
    expect(services.k6?.depends_on).toHaveProperty("nginx");
  });

  it("mounts files and directories that exist, read-only", () => {
    for (const [name, s] of Object.entries(services)) {
      for (const mount of bindMounts(s)) {
        expect(existsSync(path.join(ROOT, mount.host)), `${name}: ${mount.host}`).toBe(true);
        expect(mount.readOnly, `${name}: ${mount.host} read-only`).toBe(true);
      }
      for (const v of s.volumes ?? []) {
        if (v.startsWith("./") || v.startsWith("/")) continue;
        const volume = v.split(":")[0] ?? "";
        expect(compose.volumes ?? {}, `${name}: named volume ${volume}`).toHaveProperty(volume);
      }
    }
  });

  it("publishes each host port once", () => {
    const hostPorts = Object.values(services).flatMap((s) =>
      (s.ports ?? []).map((p) => String(p).split(":")[0]),
    );
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
  });

  it("runs the apps on HOST=0.0.0.0 with Redis data and Redlock nodes from the stack", () => {
    for (const app of APPS) {
      const env = services[app]?.environment ?? {};
      expect(env.HOST).toBe("0.0.0.0");
      const dataHost = new URL(env.REDIS_URL ?? "").hostname;
      expect(REDIS).toContain(dataHost);
      const lockHosts = (env.LOCK_NODES ?? "").split(",").map((u) => new URL(u).hostname);
      expect(lockHosts.sort()).toEqual([...REDIS].sort());
      expect(new URL(env.OTEL_EXPORTER_OTLP_ENDPOINT ?? "").hostname).toBe("jaeger");
      // Protocol 2026-07-28 states minted on one app verify on the other: one key for both.
      expect(env.REQUEST_STATE_KEY).toBe(
        services[APPS[0] as string]?.environment?.REQUEST_STATE_KEY,
      );
      expect(env.REQUEST_STATE_KEY?.length).toBeGreaterThanOrEqual(32);
    }
  });

  it("points Prometheus, nginx, Grafana and k6 at the services that exist", () => {
    const appTargets = APPS.map((a) => `${a}:${services[a]?.environment?.PORT ?? "3000"}`).sort();
    const job = prometheusConfig.scrape_configs.find((c) => c.job_name === "mcp-server");
    expect(job?.static_configs.flatMap((c) => c.targets).sort()).toEqual(appTargets);
    expect(upstreamServers(nginxConf).sort()).toEqual(appTargets);

    const prometheus = services.prometheus as Service;
    const command = Array.isArray(prometheus.command) ? prometheus.command : [];
    expect(command).toContain("--web.enable-remote-write-receiver");
    const configFile = command.find((c) => c.startsWith("--config.file="))?.split("=")[1] ?? "";
    const configMount = bindMounts(prometheus).find((m) => configFile.startsWith(m.container));
    expect(configMount?.host).toBe("./prometheus");
    expect(
      existsSync(
        path.join(ROOT, "prometheus", path.relative(configMount?.container ?? "", configFile)),
      ),
    ).toBe(true);

    const nginxMount = bindMounts(services.nginx as Service).find(
      (m) => m.host === "./deploy/nginx.conf",
    );
    expect(nginxMount?.container).toBe("/etc/nginx/conf.d/default.conf");
    const listen = /listen\s+(\d+)/.exec(nginxConf)?.[1];

    const grafanaMounts = bindMounts(services.grafana as Service);
    expect(grafanaMounts).toContainEqual({
      host: "./grafana/provisioning",
      container: "/etc/grafana/provisioning",
      readOnly: true,
    });
    expect(grafanaMounts).toContainEqual({
      host: "./grafana/dashboards",
      container: "/var/lib/grafana/dashboards",
      readOnly: true,
    });
    const home = services.grafana?.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH ?? "";
    expect(existsSync(path.join(ROOT, "grafana/dashboards", path.basename(home)))).toBe(true);

    const k6 = services.k6 as Service;
    expect(k6.profiles).toEqual(["load"]);
    expect(bindMounts(k6)).toContainEqual({ host: "./load", container: "/load", readOnly: true });
    expect(k6.image).toMatch(/^grafana\/k6:/);
    expect(k6.environment?.K6_OUT).toBe("experimental-prometheus-rw");
    expect(k6.environment?.K6_PROMETHEUS_RW_SERVER_URL).toBe("http://prometheus:9090/api/v1/write");
    expect(k6.environment?.BASE_URL).toBe(`http://nginx:${listen}`);
  });

  it("builds the reference server in two stages: production dependencies, node receives SIGTERM", () => {
    const dockerfile = readFileSync(path.join(ROOT, "Dockerfile"), "utf8");
    const stages = dockerfile.split(/^FROM /m).slice(1);
    expect(stages).toHaveLength(2);
    const [build = "", runtime = ""] = stages;
    expect(build).toMatch(/^node:20\.\d+\.\d+\S* AS build/);
    expect(build).toMatch(/^RUN npm ci\b/m);
    expect(build).toMatch(/^RUN npm run build$/m);
    expect(build).toMatch(/npm install --omit=dev/);
    expect(runtime).toMatch(/^node:20\.\d+\.\d+/);
    // Only the build output and the production node_modules reach the image.
    const copies = runtime.split("\n").filter((line) => line.startsWith("COPY"));
    expect(copies.every((line) => line.startsWith("COPY --from=build"))).toBe(true);
    expect(runtime).toMatch(/HOST=0\.0\.0\.0/);
    expect(runtime).toMatch(/^USER node$/m);
    // exec form, node itself: no npm or shell between the signal and the server.
    expect(runtime).toMatch(/^CMD \["node", "dist\/server\/main\.js"\]$/m);
    const ignore = readFileSync(path.join(ROOT, ".dockerignore"), "utf8").split("\n");
    expect(ignore).toEqual(expect.arrayContaining(["node_modules", "dist"]));
    for (const app of APPS) expect(services[app]?.init, app).toBe(true);
  });

  it("lists only packages the server loads as its production dependencies", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "server-package-"));
    try {
      const run = spawnSync(process.execPath, ["deploy/server-package.mjs", dir], { cwd: ROOT });
      expect(run.status, String(run.stderr)).toBe(0);
      const pkg = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as {
        type: string;
        dependencies: Record<string, string>;
      };
      expect(pkg.type).toBe("module");
      const library = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
        dependencies: Record<string, string>;
      };
      expect(Object.keys(pkg.dependencies).sort()).toEqual(
        [
          ...Object.keys(library.dependencies),
          "@modelcontextprotocol/sdk",
          "@modelcontextprotocol/server",
          "@opentelemetry/api",
          "@opentelemetry/instrumentation-ioredis",
          "@opentelemetry/sdk-node",
          "zod",
        ].sort(),
      );
      for (const [name, version] of Object.entries(pkg.dependencies)) {
        expect(version, name).not.toBe("");
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("ships a Prometheus config promtool accepts", async () => {
    const result = await promtool(["check", "config", "prometheus/prometheus.yml"]);
    expect(result.code).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------

/** deploy/nginx.conf with its upstreams (and optionally its listen port) rewritten. */
function localNginxConf(dir: string, upstreams: string[], listenPort?: number): string {
  let conf = nginxConf;
  const original = upstreamServers(conf);
  original.forEach((server, i) => {
    conf = conf.replace(`server ${server} `, `server ${upstreams[i] ?? "127.0.0.1:9"} `);
  });
  if (listenPort !== undefined)
    conf = conf.replace(/listen\s+\d+;/, `listen 127.0.0.1:${listenPort};`);
  const site = path.join(dir, "site.conf");
  writeFileSync(site, conf);
  for (const sub of ["body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"])
    mkdirSync(path.join(dir, sub), { recursive: true });
  const main = path.join(dir, "nginx.conf");
  writeFileSync(
    main,
    [
      `pid ${path.join(dir, "nginx.pid")};`,
      `error_log ${path.join(dir, "logs/error.log")} warn;`,
      "worker_processes 1;",
      "events { worker_connections 64; }",
      "http {",
      "  access_log off;",
      `  client_body_temp_path ${path.join(dir, "body")};`,
      `  proxy_temp_path ${path.join(dir, "proxy")};`,
      `  fastcgi_temp_path ${path.join(dir, "fastcgi")};`,
      `  uwsgi_temp_path ${path.join(dir, "uwsgi")};`,
      `  scgi_temp_path ${path.join(dir, "scgi")};`,
      `  include ${site};`,
      "}",
      "",
    ].join("\n"),
  );
  return main;
}

describe("deploy/nginx.conf", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ops-nginx-"));
  const nginxBin = requireBinary("nginx");
  let nginx: ChildProcess | undefined;
  let base = "";
  const backends: http.Server[] = [];
  let releaseSecondEvent: (() => void) | undefined;

  function backend(name: string): http.Server {
    return http.createServer((req, res) => {
      if (req.url === "/stream") {
        res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
        res.write(`event: message\ndata: first from ${name}\n\n`);
        // The second event is sent only after the client has received the first: a buffering
        // proxy would hold the first back and the test would time out.
        new Promise<void>((resolve) => {
          releaseSecondEvent = resolve;
        }).then(() => res.end("event: message\ndata: second\n\n"));
        return;
      }
      if (req.url === "/host") {
        res.writeHead(200, { "Content-Type": "text/plain" }).end(req.headers.host ?? "");
        return;
      }
      res.writeHead(200, { "Content-Type": "text/plain" }).end(name);
    });
  }

  beforeAll(async () => {
    for (const name of ["A", "B"]) {
      const server = backend(name);
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      backends.push(server);
    }
    const port = await freePort();
    const conf = localNginxConf(
      dir,
      backends.map((s) => `127.0.0.1:${(s.address() as AddressInfo).port}`),
      port,
    );
    nginx = spawn(
      nginxBin,
      ["-c", conf, "-p", dir, "-e", path.join(dir, "logs/error.log"), "-g", "daemon off;"],
      {
        stdio: "ignore",
      },
    );
    base = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        if ((await fetch(`${base}/nginx-health`)).ok) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline || nginx.exitCode !== null) {
        throw new Error(
          `nginx did not start: ${existsSync(path.join(dir, "logs/error.log")) ? readFileSync(path.join(dir, "logs/error.log"), "utf8") : ""}`,
        );
      }
      await delay(50);
    }
  }, 20_000);

  afterAll(async () => {
    if (nginx && nginx.exitCode === null) {
      const exited = new Promise<void>((resolve) => nginx?.once("exit", () => resolve()));
      nginx.kill("SIGTERM");
      const killer = setTimeout(() => nginx?.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(killer);
    }
    releaseSecondEvent?.();
    for (const s of backends) {
      s.closeAllConnections();
      if (s.listening) await new Promise<void>((resolve) => s.close(() => resolve()));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("passes nginx -t with the upstreams on 127.0.0.1", async () => {
    const testDir = path.join(dir, "t");
    mkdirSync(testDir);
    const conf = localNginxConf(testDir, ["127.0.0.1:3001", "127.0.0.1:3002"], await freePort());
    const result = await run(nginxBin, [
      "-t",
      "-c",
      conf,
      "-p",
      testDir,
      "-e",
      path.join(testDir, "logs/error.log"),
    ]);
    expect(result.stderr).toMatch(/test is successful/);
    expect(result.code).toBe(0);
    // and a broken copy fails (the check is real)
    writeFileSync(path.join(testDir, "site.conf"), "server { listen 1; proxy_buffering maybe; }");
    const broken = await run(nginxBin, [
      "-t",
      "-c",
      conf,
      "-p",
      testDir,
      "-e",
      path.join(testDir, "logs/error.log"),
    ]);
    expect(broken.code).not.toBe(0);
  });

  it("passes the client's Host header on with its port", async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const req = http.request(`${base}/host`, { headers: { host: "mcp.example.test:8443" } });
      req.on("response", (res) => {
        let body = "";
        res.on("data", (c: Buffer) => {
          body += c.toString();
        });
        res.on("end", () => resolve(body));
      });
      req.on("error", reject);
      req.end();
    });
    expect(answer).toBe("mcp.example.test:8443");
  });

  it("round-robins requests between the instances", async () => {
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push(await (await fetch(`${base}/whoami`)).text());
    expect(seen.filter((s) => s === "A")).toHaveLength(3);
    expect(seen.filter((s) => s === "B")).toHaveLength(3);
    // strictly alternating: no stickiness
    for (let i = 1; i < seen.length; i++) expect(seen[i]).not.toBe(seen[i - 1]);
  });

  it("passes Server-Sent Events on as they are written", async () => {
    // nginx 1.22 happens to flush this stream even when buffering; the config must not rely on it.
    expect(nginxConf).toMatch(/^\s*proxy_buffering off;/m);
    expect(nginxConf).toMatch(/^\s*proxy_read_timeout 1h;/m);
    const res = await fetch(`${base}/stream`);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    const first = await Promise.race([
      reader.read(),
      delay(5_000).then(() => {
        throw new Error("first SSE event held back by the proxy");
      }),
    ]);
    expect(decoder.decode(first.value)).toMatch(/^event: message\ndata: first from [AB]\n\n/);
    releaseSecondEvent?.();
    let rest = "";
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      rest += decoder.decode(chunk.value);
    }
    expect(rest).toContain("data: second");
  });

  it("sends requests to the other instance when one is down", async () => {
    const b = backends[1] as http.Server;
    b.closeAllConnections();
    await new Promise<void>((resolve) => b.close(() => resolve()));
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${base}/whoami`, { method: "POST", body: "{}" });
      expect(res.status).toBe(200);
      seen.push(await res.text());
    }
    expect(seen).toEqual(["A", "A", "A", "A"]);
    expect(statSync(path.join(dir, "logs/error.log")).isFile()).toBe(true);
  });
});
