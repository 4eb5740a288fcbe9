/** One line for a port the server cannot listen on, instead of Node's stack trace. */

/** What failed, which address, what to do. */
export function explainListenError(err: unknown, host: string, port: number): string {
  const code = (err as { code?: unknown } | null)?.code;
  const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  switch (code) {
    case "EADDRINUSE":
      return `cannot listen on ${where}: the port is already in use (EADDRINUSE); stop the other process or set PORT to a free port`;
    case "EACCES":
      return `cannot listen on ${where}: permission denied (EACCES); use a port above 1023 or set PORT`;
    case "EADDRNOTAVAIL":
      return `cannot listen on ${where}: no such local address (EADDRNOTAVAIL); set HOST to an address of this machine (or 0.0.0.0)`;
    default:
      return `cannot listen on ${where}: ${err instanceof Error ? err.message : String(err)}`;
  }
}
