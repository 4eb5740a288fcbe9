/**
 * One quick-mode switch for every bench: `--quick` on its own command line, or `BENCH_QUICK=1`
 * (what `npm run bench -- --quick` sets for each bench it runs). Quick runs are shorter and their
 * figures rougher; each knob's environment variable still overrides both.
 */
export const QUICK = process.argv.includes("--quick") || process.env.BENCH_QUICK === "1";

/** A numeric knob: its environment variable when set, else the quick or the full value. */
export function knob(name: string, full: number, quick: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return QUICK ? quick : full;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`${name}=${raw}: expected a positive number`);
  return value;
}
