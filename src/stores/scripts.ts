/**
 * Lua scripts of the Redis backend. Each multi-step operation is one script, so no reader ever
 * sees a record without its expiry. A record is a hash: d (data), v (version), c (createdAt ms),
 * u (updatedAt ms), and z:<writer> fields (see `fence` below). KEYS[2], where a script takes it,
 * is the record's tombstone `{prefix}{<id>}:gone`: the z: fields of a deleted record.
 */

/**
 * Refuses a write that arrives after a later write of the same store instance landed.
 * ARGV[w] writer id, ARGV[w+1] the write's sequence number, ARGV[w+2] the writer's floor: every
 * write of that writer numbered below the floor may have failed for its caller and still be
 * queued or retried by the client. A write carrying a floor records it as z:<writer>; a write
 * numbered below the recorded floor returns -2 and changes nothing. Writers that never saw a
 * failure send floor 0 and leave no field. While the record is absent, its tombstone holds the
 * fields; a write that creates the record takes them over. The arguments are optional (without
 * them a script writes unfenced).
 */
function fence(w: number, write: boolean): string {
  const keep = write
    ? `
  if absent and KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('HSET', KEYS[1], unpack(redis.call('HGETALL', KEYS[2])))
    redis.call('DEL', KEYS[2])
  end
  if tonumber(ARGV[${w + 2}]) > z then redis.call('HSET', KEYS[1], zf, ARGV[${w + 2}]) end`
    : "";
  return `
if ARGV[${w}] then
  local zf = 'z:' .. ARGV[${w}]
  local cur = redis.call('HMGET', KEYS[1], zf, 'v')
  local absent = not cur[2]
  local z = cur[1]
  if absent and KEYS[2] then z = redis.call('HGET', KEYS[2], zf) end
  z = tonumber(z or '0')
  if tonumber(ARGV[${w + 1}]) < z then return -2 end${keep}
end`;
}

/**
 * KEYS[1] record[, KEYS[2] tombstone]; ARGV data, ttlMs, nowMs[, writer, seq, floor].
 * Returns the new version, or -2 (stale).
 */
export const SET_SCRIPT = `${fence(4, true)}
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'u', ARGV[3])
redis.call('HSETNX', KEYS[1], 'c', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return v
`;

/**
 * Compare-and-set. KEYS[1] record[, KEYS[2] tombstone]; ARGV expected version, expected createdAt
 * ('' when the record was absent), data, ttlMs, nowMs[, writer, seq, floor]. Returns the new
 * version, -1 when the record changed, or -2 (stale). createdAt is compared too, so a record
 * deleted and recreated to the same version is not taken for the one that was read.
 */
export const CAS_SCRIPT = `
local cur = redis.call('HMGET', KEYS[1], 'v', 'c')
local v = cur[1] or ''
local c = cur[2] or ''
if v ~= ARGV[1] or c ~= ARGV[2] then return -1 end
${fence(6, true)}
local nv = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'd', ARGV[3], 'u', ARGV[5])
redis.call('HSETNX', KEYS[1], 'c', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return nv
`;

/**
 * KEYS[1] record, KEYS[2] tombstone; ARGV writer, seq, floor, tombstoneMs. Deletes the record; its
 * z: fields (and the writer's floor) move to the tombstone for tombstoneMs, so a failed write
 * still in flight cannot bring the record back. Returns 1 if the record existed, 0, or -2 (stale).
 */
export const DELETE_SCRIPT = `${fence(1, false)}
local t = {}
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, 2) == 'z:' then
    t[#t + 1] = f
    t[#t + 1] = redis.call('HGET', KEYS[1], f)
  end
end
if tonumber(ARGV[3]) > 0 then
  t[#t + 1] = 'z:' .. ARGV[1]
  t[#t + 1] = ARGV[3]
end
local n = redis.call('DEL', KEYS[1])
if #t > 0 then
  for i = 1, #t, 2 do
    if tonumber(t[i + 1]) > tonumber(redis.call('HGET', KEYS[2], t[i]) or '0') then
      redis.call('HSET', KEYS[2], t[i], t[i + 1])
    end
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return n
`;

/** KEYS[1] record; ARGV ttlMs, writer, seq, floor. Returns 1 if the record exists, 0, or -2 (stale). */
export const TOUCH_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
${fence(2, true)}
return redis.call('PEXPIRE', KEYS[1], ARGV[1])
`;
