/**
 * Lua scripts of the Redis backend. Each multi-step operation is one script, so no reader ever
 * sees a record without its expiry. A record is a hash: d (data), v (version), c (createdAt ms),
 * u (updatedAt ms).
 */

/** KEYS[1] record; ARGV data, ttlMs, nowMs. Returns the new version. */
export const SET_SCRIPT = `
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'u', ARGV[3])
redis.call('HSETNX', KEYS[1], 'c', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return v
`;

/**
 * Compare-and-set. KEYS[1] record; ARGV expected version, expected createdAt ('' when the record
 * was absent), data, ttlMs, nowMs. Returns the new version, or -1 when the record changed.
 * createdAt is compared too, so a record deleted and recreated to the same version is not taken
 * for the one that was read.
 */
export const CAS_SCRIPT = `
local cur = redis.call('HMGET', KEYS[1], 'v', 'c')
local v = cur[1] or ''
local c = cur[2] or ''
if v ~= ARGV[1] or c ~= ARGV[2] then return -1 end
local nv = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'd', ARGV[3], 'u', ARGV[5])
redis.call('HSETNX', KEYS[1], 'c', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return nv
`;
