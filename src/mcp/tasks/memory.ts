import { type Backend, type Fields, TERMINAL } from "./types.js";

export function memoryBackend(): Backend {
  const tasks = new Map<string, { fields: Fields; expiresAt: number }>();
  let nextSweep = 0;
  const live = (taskId: string, owner?: string): Fields | null => {
    const at = Date.now();
    if (at >= nextSweep) {
      // At most one sweep a second: no timer to leak, bounded work.
      nextSweep = at + 1000;
      for (const [id, entry] of tasks) if (entry.expiresAt <= at) tasks.delete(id);
    }
    const entry = tasks.get(taskId);
    if (entry === undefined || entry.expiresAt <= at) return null;
    if (owner !== undefined && entry.fields.principal !== owner) return null;
    return entry.fields;
  };
  const dropInput = (fields: Fields, prefixes: string[]) => {
    for (const f of Object.keys(fields)) if (prefixes.includes(f.slice(0, 3))) delete fields[f];
  };
  return {
    async create(taskId, fields, ttlMs) {
      tasks.set(taskId, { fields: { ...fields }, expiresAt: Date.now() + ttlMs });
    },
    async read(taskId) {
      const fields = live(taskId);
      return fields === null ? null : { ...fields };
    },
    async transition(taskId, owner, status, at, extra) {
      const fields = live(taskId, owner);
      if (fields === null) return "missing";
      if (TERMINAL.has(fields.status as string)) return `terminal:${fields.status}`;
      if (status !== "input_required") dropInput(fields, ["ir:", "rs:"]);
      Object.assign(fields, extra, { status, lastUpdatedAt: at });
      return "ok";
    },
    async answer(taskId, owner, at, answers) {
      const fields = live(taskId, owner);
      if (fields === null) return "missing";
      if (fields.status !== "input_required") return `status:${fields.status}`;
      let answered = 0;
      for (const [k, v] of Object.entries(answers)) {
        if (fields[`ir:${k}`] === undefined) continue;
        delete fields[`ir:${k}`];
        fields[`rs:${k}`] = v;
        answered++;
      }
      if (answered === 0) return "ok";
      fields.lastUpdatedAt = at;
      if (Object.keys(fields).some((f) => f.startsWith("ir:"))) return "ok";
      fields.status = "working";
      return "resumed";
    },
    async takeAnswers(taskId, owner) {
      const fields = live(taskId, owner);
      if (fields === null) return null;
      if (fields.status === "input_required") return "pending";
      if (TERMINAL.has(fields.status as string)) return "ended";
      const answers: Record<string, unknown> = {};
      for (const [f, v] of Object.entries(fields))
        if (f.startsWith("rs:")) answers[f.slice(3)] = JSON.parse(v);
      dropInput(fields, ["rs:"]);
      return answers;
    },
    close() {
      tasks.clear();
    },
  };
}
