import type { Cluster, Redis } from "ioredis";

/*
 * The Lua scripts of the Redlock manager, one atomic step each, registered with ioredis'
 * defineCommand (EVALSHA, falling back to EVAL on NOSCRIPT, e.g. after SCRIPT FLUSH).
 */

/*
 * Keys per resource (one hash tag): lock (value, PX lease), fence (counter), queue (ZSET of waiter
 * tickets scored by arrival time, epoch ms) and queue:hb (HASH ticket -> heartbeat deadline, server
 * ms). A waiter's ticket is refreshed on every attempt; a ticket whose deadline passed is stale
 * and dropped, so a crashed process cannot block the queue for long. Only the head of the queue
 * (or anyone when the queue is empty) may take a free lock. Scores are the client's arrival time,
 * so the queues of independent nodes agree on the order.
 */

/*
 * Fencing tokens: the next token is max(counter + 1, server clock in microseconds). The counter
 * keeps tokens increasing between nodes that remember it; the clock floor keeps them increasing
 * when the nodes that remembered it restarted empty. Microseconds since 1970 stay below 2^53
 * until the year 2255. '%.0f' writes the number whole (tostring would use an exponent).
 */

/**
 * KEYS lock fence queue hb; ARGV value ttlMs ticket score hbMs single. Returns {1, token} |
 * {0, pttl} | {-1, 0}. With single = '1' the token is stored at once; otherwise the caller takes
 * the largest token of the quorum and stores it with FENCE.
 */
export const ACQUIRE = `
local ticket = ARGV[3]
local micros
local function clock()
  if not micros then
    local t = redis.call('TIME')
    micros = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return math.floor(micros / 1000)
end
if ticket ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[4], ticket)
  redis.call('HSET', KEYS[4], ticket, clock() + tonumber(ARGV[5]))
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
  redis.call('PEXPIRE', KEYS[4], ARGV[5])
end
local pttl = redis.call('PTTL', KEYS[1])
if pttl ~= -2 then return {0, pttl} end
for i = 1, 100 do
  local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  if not head or head == ticket then break end
  if tonumber(redis.call('HGET', KEYS[4], head) or '0') >= clock() then return {-1, 0} end
  redis.call('ZREM', KEYS[3], head)
  redis.call('HDEL', KEYS[4], head)
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ticket ~= '' then
  redis.call('ZREM', KEYS[3], ticket)
  redis.call('HDEL', KEYS[4], ticket)
end
clock()
local token = math.max(tonumber(redis.call('GET', KEYS[2]) or '0') + 1, micros)
if ARGV[6] == '1' then redis.call('SET', KEYS[2], string.format('%.0f', token)) end
return {1, token}
`;

/** KEYS lock fence; ARGV value token. Raises the counter to token; 1 if we still hold the lock. */
export const FENCE = `
if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
`;

/** KEYS lock; ARGV value ttlMs. */
export const EXTEND = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

/** KEYS lock queue; ARGV value channel. Deletes only our value, then wakes the head of the queue. */
export const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
if head then redis.call('PUBLISH', ARGV[2], head) end
return 1
`;

/** KEYS lock queue hb; ARGV ticket channel. Leaves the queue; wakes the new head if the lock is free. */
export const DEQUEUE = `
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if head then redis.call('PUBLISH', ARGV[2], head) end
end
return 1
`;

export interface LockCommands {
  mssLockAcquire(...args: Array<string | number>): Promise<[number, number]>;
  mssLockFence(...args: Array<string | number>): Promise<number>;
  mssLockExtend(...args: Array<string | number>): Promise<number>;
  mssLockRelease(...args: Array<string | number>): Promise<number>;
  mssLockDequeue(...args: Array<string | number>): Promise<number>;
}

/** A client with the lock scripts defined on it. */
export type Scripted = (Redis | Cluster) & LockCommands;

/** Defines the lock scripts on `client` once (a client may serve several managers). */
export function defineScripts(client: Redis | Cluster): Scripted {
  const scripted = client as Scripted;
  // defineCommand sends EVALSHA and falls back to EVAL on NOSCRIPT (e.g. after SCRIPT FLUSH).
  if (typeof scripted.mssLockAcquire !== "function") {
    client.defineCommand("mssLockAcquire", { numberOfKeys: 4, lua: ACQUIRE });
    client.defineCommand("mssLockFence", { numberOfKeys: 2, lua: FENCE });
    client.defineCommand("mssLockExtend", { numberOfKeys: 1, lua: EXTEND });
    client.defineCommand("mssLockRelease", { numberOfKeys: 2, lua: RELEASE });
    client.defineCommand("mssLockDequeue", { numberOfKeys: 3, lua: DEQUEUE });
  }
  return scripted;
}
