/**
 * Test harness: a real nginx (Debian's /usr/sbin/nginx) as a child process, round robin over the
 * given upstream ports without stickiness, with a generated config in a temporary prefix.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort } from "./redis.js";

const READY_TIMEOUT_MS = 10_000;

export interface NginxHandle {
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  stop(): Promise<void>;
}

function nginxBinary(): string {
  for (const candidate of ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  throw new Error("nginx not found: the load-balancer tests need it (apt-get install nginx)");
}

/** The generated nginx.conf: round robin, SSE passed through unbuffered, Host kept with its port. */
export function nginxConfig(prefix: string, port: number, upstreams: number[]): string {
  const user = process.getuid?.() === 0 ? "user root;\n" : "";
  return `${user}worker_processes 1;
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  upstream mcp_servers {
${upstreams.map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=2s;`).join("\n")}
    keepalive 32;
  }
  server {
    listen 127.0.0.1:${port};
    location = /nginx-health { return 200 "ok\\n"; }
    location / {
      proxy_pass http://mcp_servers;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_cache off;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
      proxy_connect_timeout 2s;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_next_upstream_tries 2;
      client_max_body_size 8m;
    }
  }
}
`;
}

/** Starts nginx in front of `upstreams` (ports on 127.0.0.1); resolves when it answers. */
export async function startNginx(upstreams: number[]): Promise<NginxHandle> {
  const bin = nginxBinary();
  const prefix = mkdtempSync(path.join(os.tmpdir(), "mcp-nginx-"));
  for (const dir of ["body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"]) {
    mkdirSync(path.join(prefix, dir));
  }
  const port = await freePort();
  writeFileSync(path.join(prefix, "nginx.conf"), nginxConfig(prefix, port, upstreams));
  const child: ChildProcess = spawn(
    bin,
    ["-p", prefix, "-c", "nginx.conf", "-e", `${prefix}/error.log`],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let log = "";
  child.stdout?.on("data", (c: Buffer) => {
    log += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    log += c.toString();
  });
  let gone = false;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => {
      gone = true;
      resolve();
    });
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (!gone) {
      child.kill("SIGTERM");
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        exited,
        new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            child.kill("SIGKILL");
            resolve();
          }, 3000);
        }),
      ]);
      clearTimeout(timer);
      await exited;
    }
    rmSync(prefix, { recursive: true, force: true });
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (gone) {
      await stop();
      throw new Error(`nginx exited at start:\n${log}`);
    }
    try {
      const response = await fetch(`${url}/nginx-health`, { signal: AbortSignal.timeout(1000) });
      await response.body?.cancel();
      if (response.ok) break;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`nginx did not answer within ${READY_TIMEOUT_MS} ms:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { port, url, stop };
}
