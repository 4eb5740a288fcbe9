/**
 * Lua scripts of the Redis backend. Each multi-step operation is one script, so no reader ever
 * sees a record without its expiry. A record is a hash: d (data), v (version), c (createdAt ms),
 * u (updatedAt ms), and z:<writer> (see FENCE below).
 */

/**
 * Refuses a write that arrives after a later write of the same store instance landed.
 * ARGV[w] writer id, ARGV[w+1] the write's sequence number, ARGV[w+2] the writer's floor: every
 * write of that writer numbered below the floor may have failed for its caller and still be
 * queued or retried by the client. A write carrying a floor records it on the record as
 * z:<writer>; a write numbered below the recorded floor returns -2 and changes nothing. Writers
 * that never saw a failure send floor 0 and leave no field. The arguments are optional.
 */
function fence(w: number, record = true): string {
  const store = record
    ? `
  if tonumber(ARGV[${w + 2}]) > z then redis.call('HSET', KEYS[1], zf, ARGV[${w + 2}]) end`
    : "";
  return `
if ARGV[${w}] then
  local zf = 'z:' .. ARGV[${w}]
  local z = tonumber(redis.call('HGET', KEYS[1], zf) or '0')
  if tonumber(ARGV[${w + 1}]) < z then return -2 end${store}
end`;
}

/** KEYS[1] record; ARGV data, ttlMs, nowMs[, writer, seq, floor]. Returns the new version, or -2 (stale). */
export const SET_SCRIPT = `${fence(4)}
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'u', ARGV[3])
redis.call('HSETNX', KEYS[1], 'c', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return v
`;

/**
 * Compare-and-set. KEYS[1] record; ARGV expected version, expected createdAt ('' when the record
 * was absent), data, ttlMs, nowMs[, writer, seq, floor]. Returns the new version, -1 when the
 * record changed, or -2 (stale). createdAt is compared too, so a record deleted and recreated to
 * the same version is not taken for the one that was read.
 */
export const CAS_SCRIPT = `
local cur = redis.call('HMGET', KEYS[1], 'v', 'c')
local v = cur[1] or ''
local c = cur[2] or ''
if v ~= ARGV[1] or c ~= ARGV[2] then return -1 end
${fence(6)}
local nv = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'd', ARGV[3], 'u', ARGV[5])
redis.call('HSETNX', KEYS[1], 'c', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return nv
`;

/** KEYS[1] record; ARGV writer, seq, floor. Returns the number of keys deleted, or -2 (stale). */
export const DELETE_SCRIPT = `${fence(1, false)}
return redis.call('DEL', KEYS[1])
`;

/** KEYS[1] record; ARGV ttlMs, writer, seq, floor. Returns 1 if the record exists, 0, or -2 (stale). */
export const TOUCH_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
${fence(2)}
return redis.call('PEXPIRE', KEYS[1], ARGV[1])
`;
