import type { Cluster, Redis } from "ioredis";

/*
 * The Lua scripts of the Redlock manager, one atomic step each, registered with ioredis'
 * defineCommand (EVALSHA, falling back to EVAL on NOSCRIPT, e.g. after SCRIPT FLUSH).
 */

/*
 * Keys per resource (one hash tag): lock (value, PX lease), fence (counter), queue (ZSET of waiter
 * tickets scored by arrival time, epoch ms), queue:hb (HASH ticket -> heartbeat deadline, server
 * ms) and queue:grant (HASH ticket -> "lease stamp refreshedAt": what a hand-over needs). A
 * waiter's ticket is refreshed on every attempt; a ticket whose deadline passed is stale and
 * dropped, so a crashed process cannot block the queue for long. Only the head of the queue (or
 * anyone when the queue is empty) may take a free lock. Scores are the client's arrival time, so
 * the queues of independent nodes agree on the order. A queued waiter's lock value is its ticket,
 * so a release can hand the lock to it without asking it for a value.
 */

/*
 * Fencing tokens: the next token is max(counter + 1, server clock in microseconds). The counter
 * keeps tokens increasing between nodes that remember it; the clock floor keeps them increasing
 * when the nodes that remembered it restarted empty. Microseconds since 1970 stay below 2^53
 * until the year 2255. '%.0f' writes the number whole (tostring would use an exponent).
 */

/**
 * KEYS lock fence queue hb grant; ARGV value ttlMs ticket score hbMs single stamp leaseMs.
 * Returns {1, token} | {0, pttl} | {-1, 0}. With single = '1' the token is stored at once;
 * otherwise the caller takes the largest token of the quorum and stores it with FENCE. A key that
 * already holds our value was handed to us by a release: it is ours, whatever the queue says.
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
if ticket == '' or redis.call('GET', KEYS[1]) ~= ARGV[1] then
  if ticket ~= '' then
    redis.call('ZADD', KEYS[3], ARGV[4], ticket)
    redis.call('HSET', KEYS[4], ticket, clock() + tonumber(ARGV[5]))
    redis.call('HSET', KEYS[5], ticket, ARGV[8] .. ' ' .. ARGV[7] .. ' ' .. clock())
    redis.call('PEXPIRE', KEYS[3], ARGV[5])
    redis.call('PEXPIRE', KEYS[4], ARGV[5])
    redis.call('PEXPIRE', KEYS[5], ARGV[5])
  end
  local pttl = redis.call('PTTL', KEYS[1])
  if pttl ~= -2 then return {0, pttl} end
  for i = 1, 100 do
    local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
    if not head or head == ticket then break end
    if tonumber(redis.call('HGET', KEYS[4], head) or '0') >= clock() then return {-1, 0} end
    redis.call('ZREM', KEYS[3], head)
    redis.call('HDEL', KEYS[4], head, 'p:' .. head)
    redis.call('HDEL', KEYS[5], head)
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ticket ~= '' then
  redis.call('ZREM', KEYS[3], ticket)
  redis.call('HDEL', KEYS[4], ticket, 'p:' .. ticket)
  redis.call('HDEL', KEYS[5], ticket)
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

/*
 * Hands a lock we own to the first live waiter of the queue (KEYS lock queue hb grant fence;
 * ARGV[2] channel; `floor` the releaser's fencing token, 0 if it has none): the key takes the
 * waiter's ticket as its value with the lease the waiter asked for, the token max(counter + 1,
 * floor + 1, clock) is stored as if the waiter had acquired it, and the channel says
 * "h <ticket> <stamp> <ms since the ticket's refresh> <token> <floor>", which is all the waiter
 * needs to count the grant without a round trip. Stale tickets are dropped on the way; a waiter without a
 * grant entry (an older client) is only woken, and the lock is freed for it.
 */
/*
 * A release may give the lock to the next waiter of its own process instead of the head of the
 * queue when that waiter is second in line: a process that is running takes the lock sooner than
 * one that must be woken. The head is passed over at most MAX_PASSES times (counted in hb under
 * "p:<ticket>"), so every waiter still gets its turn after a bounded number of grants.
 */
const MAX_PASSES = 1;

const HAND_ON = `
local t = redis.call('TIME')
local micros = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(micros / 1000)
local function live(ticket)
  return tonumber(redis.call('HGET', KEYS[3], ticket) or '0') >= now
end
local pick
for i = 1, 100 do
  local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if not head or live(head) then pick = head break end
  redis.call('ZREM', KEYS[2], head)
  redis.call('HDEL', KEYS[3], head, 'p:' .. head)
  redis.call('HDEL', KEYS[4], head)
end
if pick and cand ~= '' and redis.call('ZRANK', KEYS[2], cand) == 1 and live(cand) then
  local passes = 'p:' .. pick
  if tonumber(redis.call('HGET', KEYS[3], passes) or '0') < ${MAX_PASSES} then
    redis.call('HINCRBY', KEYS[3], passes, 1)
    pick = cand
  end
end
if not pick then
  redis.call('DEL', KEYS[1])
  return 1
end
local grant = redis.call('HGET', KEYS[4], pick)
local lease, stamp, at
if grant then lease, stamp, at = string.match(grant, '^(%d+) (%S+) (%d+)$') end
if not lease then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], pick)
  return 1
end
redis.call('SET', KEYS[1], pick, 'PX', lease)
redis.call('ZREM', KEYS[2], pick)
redis.call('HDEL', KEYS[3], pick, 'p:' .. pick)
redis.call('HDEL', KEYS[4], pick)
local counter = tonumber(redis.call('GET', KEYS[5]) or '0')
local token = string.format('%.0f', math.max(counter + 1, floor + 1, micros))
redis.call('SET', KEYS[5], token)
local elapsed = string.format('%.0f', now - tonumber(at))
redis.call('PUBLISH', ARGV[2], table.concat({'h', pick, stamp, elapsed, token, string.format('%.0f', floor)}, ' '))
return 1
`;

/**
 * KEYS lock queue hb grant fence; ARGV value channel token. Only if the key holds our value: hands the
 * lock to the head of the queue, or deletes it when nobody waits. A queued waiter's value is its
 * ticket: where the key is not ours, the ticket leaves the queue (a node that had not handed the
 * lock over yet when a quorum had).
 */
export const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
    redis.call('HDEL', KEYS[3], ARGV[1], 'p:' .. ARGV[1])
    redis.call('HDEL', KEYS[4], ARGV[1])
  end
  return 0
end
local floor = tonumber(ARGV[3]) or 0
local cand = ARGV[4] or ''
${HAND_ON}`;

/**
 * KEYS lock queue hb grant fence; ARGV ticket channel keep. Leaves the queue; wakes the new head
 * if the lock is free. A lock already handed to the ticket is kept with keep = '1' (the waiter
 * holds the lock and will release it), else handed on at once (the waiter gave up).
 */
export const DEQUEUE = `
if ARGV[3] ~= '1' and redis.call('GET', KEYS[1]) == ARGV[1] then
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1], 'p:' .. ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
local floor = 0
local cand = ''
${HAND_ON}end
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1], 'p:' .. ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
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
    client.defineCommand("mssLockAcquire", { numberOfKeys: 5, lua: ACQUIRE });
    client.defineCommand("mssLockFence", { numberOfKeys: 2, lua: FENCE });
    client.defineCommand("mssLockExtend", { numberOfKeys: 1, lua: EXTEND });
    client.defineCommand("mssLockRelease", { numberOfKeys: 5, lua: RELEASE });
    client.defineCommand("mssLockDequeue", { numberOfKeys: 5, lua: DEQUEUE });
  }
  return scripted;
}
