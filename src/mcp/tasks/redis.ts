import { type LuaScript, luaScript, type RedisAccess, redisCall, runScript } from "../support.js";
import type { Backend, Fields, Outcome } from "./types.js";

const CREATE = luaScript(
  "mssTaskCreate",
  1,
  `
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`,
);

// Shared prologue: the owner check makes a foreign task indistinguishable from a missing one.
const GUARD = `
local owner = redis.call('HGET', KEYS[1], 'principal')
if not owner or owner ~= ARGV[1] then return 'missing' end
local status = redis.call('HGET', KEYS[1], 'status')
`;

const CLEAR_INPUT = `
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  local p = string.sub(f, 1, 3)
  if p == 'ir:' or p == 'rs:' then redis.call('HDEL', KEYS[1], f) end
end
`;

// ARGV: owner, status, at, field pairs...
const TRANSITION = luaScript(
  "mssTaskTransition",
  1,
  `${GUARD}
if status == 'completed' or status == 'failed' or status == 'cancelled' then return 'terminal:' .. status end
if ARGV[2] ~= 'input_required' then ${CLEAR_INPUT} end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'lastUpdatedAt', ARGV[3], unpack(ARGV, 4))
return 'ok'
`,
);

// ARGV: owner, at, key/answer pairs...
const ANSWER = luaScript(
  "mssTaskAnswer",
  1,
  `${GUARD}
if status ~= 'input_required' then return 'status:' .. status end
local answered = 0
for i = 3, #ARGV, 2 do
  if redis.call('HDEL', KEYS[1], 'ir:' .. ARGV[i]) == 1 then
    redis.call('HSET', KEYS[1], 'rs:' .. ARGV[i], ARGV[i + 1])
    answered = answered + 1
  end
end
if answered == 0 then return 'ok' end
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, 3) == 'ir:' then
    redis.call('HSET', KEYS[1], 'lastUpdatedAt', ARGV[2])
    return 'ok'
  end
end
redis.call('HSET', KEYS[1], 'status', 'working', 'lastUpdatedAt', ARGV[2])
return 'resumed'
`,
);

// ARGV: owner. Returns a flat key/answer list, 'pending' or 'ended'.
const TAKE_ANSWERS = luaScript(
  "mssTaskTakeAnswers",
  1,
  `${GUARD}
if status == 'input_required' then return 'pending' end
if status == 'completed' or status == 'failed' or status == 'cancelled' then return 'ended' end
local out = {}
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, 3) == 'rs:' then
    table.insert(out, string.sub(f, 4))
    table.insert(out, redis.call('HGET', KEYS[1], f))
    redis.call('HDEL', KEYS[1], f)
  end
end
return out
`,
);

function pairs(fields: Fields): string[] {
  return Object.entries(fields).flat();
}

export function redisBackend(access: RedisAccess, prefix: string): Backend {
  const key = (taskId: string) => `${prefix}task:{${taskId}}`;
  const run = (what: string, script: LuaScript, taskId: string, args: string[]) =>
    redisCall(access, what, () => runScript(access.client, script, [key(taskId)], args));
  return {
    async create(taskId, fields, ttlMs) {
      await run("create task", CREATE, taskId, [String(ttlMs), ...pairs(fields)]);
    },
    async read(taskId) {
      const fields = await redisCall(access, "read task", () => access.client.hgetall(key(taskId)));
      return Object.keys(fields).length === 0 ? null : fields;
    },
    async transition(taskId, owner, status, at, fields) {
      return (await run("task transition", TRANSITION, taskId, [
        owner,
        status,
        at,
        ...pairs(fields),
      ])) as Outcome;
    },
    async answer(taskId, owner, at, answers) {
      return (await run("tasks/update", ANSWER, taskId, [owner, at, ...pairs(answers)])) as Outcome;
    },
    async takeAnswers(taskId, owner) {
      const reply = await run("take task answers", TAKE_ANSWERS, taskId, [owner]);
      if (reply === "missing") return null;
      if (reply === "pending" || reply === "ended") return reply;
      const list = reply as string[];
      const answers: Record<string, unknown> = {};
      for (let i = 0; i < list.length; i += 2)
        answers[list[i] as string] = JSON.parse(list[i + 1] as string);
      return answers;
    },
    close() {},
  };
}
