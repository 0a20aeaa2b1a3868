-- hold-10.lua: hold a first-dose and a second-dose slot together, atomically.
--
-- KEYS[1]  free             the deployment's inventory keys, as _lib.lua lists them
-- KEYS[2]  cap
-- KEYS[3]  counts
-- KEYS[4]  ccounts
-- KEYS[5]  holds
-- KEYS[6]  hold:<hid>       the new hold (HASH)
-- KEYS[7]  cfree:<centre>   the centre of the pair
-- KEYS[8]  owner:<owner>    STRING: the owner's live hold id
-- KEYS[9]  hold:<previous>  the hold the caller expects KEYS[8] to name (KEYS[6] for none)
-- KEYS[10] cfree:<previous centre>  that hold's centre (KEYS[7] for none)
-- ARGV[1]  now              seconds, from the app's injected clock
-- ARGV[2]  hid              fresh random hold id
-- ARGV[3]  first slot id
-- ARGV[4]  second slot id
-- ARGV[5]  expires          now + hold time (seconds)
-- ARGV[6]  owner            the admission ticket id or session the hold belongs to
-- ARGV[7]  min_gap          allowed seconds between first and second start, at least
-- ARGV[8]  max_gap          and at most
-- ARGV[9]  earliest         allowed start of the first slot, at the earliest
-- ARGV[10] latest           and at the latest
-- ARGV[11] previous         the hold id the caller expects in KEYS[8] ("" for none)
-- ARGV[12..] field, value, ...  more hold fields (birth, district, lang, invitation)
-- Returns outcome:
--   ok        expired_holds
--   gone      expired_holds (a slot has no free unit)
--   invalid   why = slot | centre | interval | time | hold
--   previous  previous = the hold id KEYS[8] names: nothing was written; the caller
--             declares that hold and calls again
-- expired_holds is 1 when holds whose time ran out are waiting in KEYS[5]: the caller sweeps
-- them (sweep-n.lua), and tries a gone pair once more, so capacity comes back even when the
-- sweeper lags.
-- Clock: ARGV now (the app clock; all processes run NTP-synced wall time, and tests inject it).
--!include _lib.lua

local now, hid = tonumber(ARGV[1]), ARGV[2]
local first, second, expires, owner = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local min_gap, max_gap = tonumber(ARGV[7]), tonumber(ARGV[8])
local earliest, latest = tonumber(ARGV[9]), tonumber(ARGV[10])

local function expired_holds()
  return #redis.call("ZRANGEBYSCORE", KEYS[HOLDS], "-inf", now, "LIMIT", 0, 1)
end

local c1, t1 = slot_parts(first)
local c2, t2 = slot_parts(second)
if not c1 or not c2 then return {"outcome", "invalid", "why", "slot"} end
if c1 ~= c2 then return {"outcome", "invalid", "why", "centre"} end
if t2 - t1 < min_gap or t2 - t1 > max_gap then return {"outcome", "invalid", "why", "interval"} end
if t1 < earliest or t1 > latest then return {"outcome", "invalid", "why", "time"} end
if redis.call("EXISTS", KEYS[6]) == 1 then return {"outcome", "invalid", "why", "hold"} end

-- One live hold per visitor: choosing another pair gives the previous one back, so one
-- admission cannot hoard many pairs. If the new pair is gone, the previous hold is restored.
local prev = redis.call("GET", KEYS[8])
-- Race: another request of this visitor made a hold after the caller looked: it declares
-- that hold and calls again (a hold's centre never changes, so KEYS[10] stays right).
if (prev or "") ~= ARGV[11] then return {"outcome", "previous", "previous", prev or ""} end
local prev_released = false
if prev then
  -- A previous hold whose time ran out counts as expired.
  local until_ = tonumber(redis.call("HGET", KEYS[9], "expires") or "0")
  prev_released = release_hold(9, 8, 10, prev, until_ <= now and "expired" or "replaced")
end

local f1 = tonumber(redis.call("HGET", KEYS[FREE], first) or "0")
local f2 = tonumber(redis.call("HGET", KEYS[FREE], second) or "0")
if f1 < 1 or f2 < 1 then
  local ph = redis.call("HMGET", KEYS[9], "first", "second", "expires")
  -- Only a previous hold whose time has not run out is restored.
  if prev_released and tonumber(ph[3]) > now then
    -- Restoring cannot fail: the units were given back a moment ago inside this script.
    take(10, ph[1], 1)
    take(10, ph[2], 1)
    redis.call("HSET", KEYS[9], "status", "held")
    redis.call("EXPIRE", KEYS[9], math.max(1, tonumber(ph[3]) - now + 3600))
    redis.call("ZADD", KEYS[HOLDS], ph[3], prev)
    count_units(slot_parts(ph[1]), "held", 2)
    redis.call("SET", KEYS[8], prev, "EX", math.max(1, tonumber(ph[3]) - now + 60))
  end
  return {"outcome", "gone", "expired_holds", expired_holds()}
end

take(7, first, 1)
take(7, second, 1)
count_units(c1, "held", 2)
redis.call("HSET", KEYS[6], "hid", hid, "first", first, "second", second, "centre", c1,
  "expires", expires, "owner", owner, "status", "held", "created", now)
if #ARGV > 11 then
  redis.call("HSET", KEYS[6], unpack(ARGV, 12))
end
-- Relative TTLs: Redis expires keys by its own clock, which need not be the app clock.
redis.call("EXPIRE", KEYS[6], math.max(1, expires - now + 3600))
redis.call("ZADD", KEYS[HOLDS], expires, hid)
redis.call("SET", KEYS[8], hid, "EX", math.max(1, expires - now + 60))
return {"outcome", "ok", "expired_holds", expired_holds()}
