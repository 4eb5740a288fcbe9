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
 * The write of SET and CAS, after the script read `v` (the record's version, false when the
 * record is absent) and `z` (this writer's floor recorded on it, false when none), with `zf` the
 * writer's field (nil when the write is unfenced). ARGV[d] data, ARGV[d+1] ttlMs, ARGV[d+2] nowMs,
 * ARGV[w+1] seq, ARGV[w+2] floor. A record that exists is rewritten with one HSET and one PEXPIRE
 * (the SET script went from 5 Redis calls to 3, and from 6.0 to 5.2 us per call in
 * `INFO commandstats`, 900-byte data, median of 6 alternating runs; docs/perf-store.md); only a
 * record being created reads its tombstone and sets createdAt.
 */
function write(d: number, w: number): string {
  return `
local tomb
if not v and KEYS[2] then
  tomb = redis.call('HGETALL', KEYS[2])
  if zf then
    for i = 1, #tomb, 2 do
      if tomb[i] == zf then z = tomb[i + 1] end
    end
  end
end
z = tonumber(z or '0')
if zf and tonumber(ARGV[${w + 1}]) < z then return -2 end
local nv = (tonumber(v) or 0) + 1
local raise = zf and tonumber(ARGV[${w + 2}]) > z
if v and not raise then
  redis.call('HSET', KEYS[1], 'd', ARGV[${d}], 'u', ARGV[${d + 2}], 'v', nv)
else
  local f = {'d', ARGV[${d}], 'u', ARGV[${d + 2}], 'v', nv}
  if not v then
    f[#f + 1] = 'c'
    f[#f + 1] = ARGV[${d + 2}]
    if tomb and #tomb > 0 then
      for i = 1, #tomb do f[#f + 1] = tomb[i] end
      redis.call('DEL', KEYS[2])
    end
  end
  if raise then
    f[#f + 1] = zf
    f[#f + 1] = ARGV[${w + 2}]
  end
  redis.call('HSET', KEYS[1], unpack(f))
end
redis.call('PEXPIRE', KEYS[1], ARGV[${d + 1}])
return nv`;
}

/**
 * KEYS[1] record[, KEYS[2] tombstone]; ARGV data, ttlMs, nowMs[, writer, seq, floor].
 * Returns the new version, or -2 (stale).
 */
export const SET_SCRIPT = `
local zf = ARGV[4] and ('z:' .. ARGV[4])
local cur = redis.call('HMGET', KEYS[1], 'v', zf or 'v')
local v = cur[1]
local z = zf and cur[2]
${write(1, 4)}
`;

/**
 * Compare-and-set. KEYS[1] record[, KEYS[2] tombstone]; ARGV expected version, expected createdAt
 * ('' when the record was absent), data, ttlMs, nowMs[, writer, seq, floor]. Returns the new
 * version, -1 when the record changed, or -2 (stale). createdAt is compared too, so a record
 * deleted and recreated to the same version is not taken for the one that was read.
 */
export const CAS_SCRIPT = `
local zf = ARGV[6] and ('z:' .. ARGV[6])
local cur = redis.call('HMGET', KEYS[1], 'v', 'c', zf or 'v')
local v = cur[1]
if (v or '') ~= ARGV[1] or (cur[2] or '') ~= ARGV[2] then return -1 end
local z = zf and cur[3]
${write(3, 6)}
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

/**
 * KEYS[1] record; ARGV ttlMs, writer, seq, floor. Returns 1 if the record exists, 0, or -2 (stale).
 * The fence of `fence(2, true)` without a tombstone (a touch never creates a record), and no
 * EXISTS: the fence's HMGET already tells an absent record (every record has `v`), and without a
 * writer PEXPIRE answers 0 for one. Two Redis calls per touch (it runs on every MCP request).
 */
export const TOUCH_SCRIPT = `
if ARGV[2] then
  local zf = 'z:' .. ARGV[2]
  local cur = redis.call('HMGET', KEYS[1], zf, 'v')
  if not cur[2] then return 0 end
  local z = tonumber(cur[1] or '0')
  if tonumber(ARGV[3]) < z then return -2 end
  if tonumber(ARGV[4]) > z then redis.call('HSET', KEYS[1], zf, ARGV[4]) end
end
return redis.call('PEXPIRE', KEYS[1], ARGV[1])
`;
