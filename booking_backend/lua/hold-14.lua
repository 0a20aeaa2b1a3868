-- hold-14.lua: hold a first-dose and a second-dose slot together, atomically.
--
-- KEYS[1]  free             the deployment's shared keys, as _lib.lua lists them
-- KEYS[2]  cap
-- KEYS[3]  counts
-- KEYS[4]  ccounts
-- KEYS[5]  holds
-- KEYS[6]  identities       (not used here)
-- KEYS[7]  wl:identities    (not used here)
-- KEYS[8]  outbox           (not used here)
-- KEYS[9]  outbox:created   (not used here)
-- KEYS[10] hold:<hid>       the new hold (HASH)
-- KEYS[11] cfree:<centre>   the centre of the pair
-- KEYS[12] owner:<owner>    STRING: the owner's live hold id
-- KEYS[13] hold:<previous>  the hold the caller expects KEYS[12] to name (KEYS[10] for none)
-- KEYS[14] cfree:<previous centre>  that hold's centre (KEYS[11] for none)
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
-- ARGV[11] previous         the hold id the caller expects in KEYS[12] ("" for none)
-- ARGV[12..] field, value, ...  more hold fields (birth, district, lang, invitation)
-- Returns outcome:
--   ok        expires, expired_holds
--   gone      expired_holds (a slot has no free unit)
--   invalid   why = slot | centre | interval | time | hold
--   previous  previous = the hold id KEYS[12] names: nothing was written; the caller
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
  return #redis.call("ZRANGEBYSCORE", KEYS[5], "-inf", now, "LIMIT", 0, 1)
end

local c1, t1 = slot_parts(first)
local c2, t2 = slot_parts(second)
if not c1 or not c2 then return {"outcome", "invalid", "why", "slot"} end
if c1 ~= c2 then return {"outcome", "invalid", "why", "centre"} end
if t2 - t1 < min_gap or t2 - t1 > max_gap then return {"outcome", "invalid", "why", "interval"} end
if t1 < earliest or t1 > latest then return {"outcome", "invalid", "why", "time"} end
if redis.call("EXISTS", KEYS[10]) == 1 then return {"outcome", "invalid", "why", "hold"} end

-- One live hold per visitor: choosing another pair gives the previous one back, so one
-- admission cannot hoard many pairs. If the new pair is gone, the previous hold is restored.
local prev = redis.call("GET", KEYS[12])
-- Race: another request of this visitor made a hold after the caller looked: it declares
-- that hold and calls again (a hold's centre never changes, so KEYS[14] stays right).
if (prev or "") ~= ARGV[11] then return {"outcome", "previous", "previous", prev or ""} end
local prev_released = false
if prev then
  -- A previous hold whose time ran out counts as expired.
  local until_ = tonumber(redis.call("HGET", KEYS[13], "expires") or "0")
  prev_released = release_hold(13, 12, 14, prev, until_ <= now and "expired" or "replaced")
end

local f1 = tonumber(redis.call("HGET", KEYS[1], first) or "0")
local f2 = tonumber(redis.call("HGET", KEYS[1], second) or "0")
if f1 < 1 or f2 < 1 then
  local ph = redis.call("HMGET", KEYS[13], "first", "second", "expires")
  -- Only a previous hold whose time has not run out is restored.
  if prev_released and tonumber(ph[3]) > now then
    -- Restoring cannot fail: the units were given back a moment ago inside this script.
    take(14, ph[1], 1)
    take(14, ph[2], 1)
    redis.call("HSET", KEYS[13], "status", "held")
    redis.call("EXPIRE", KEYS[13], math.max(1, tonumber(ph[3]) - now + 3600))
    redis.call("ZADD", KEYS[5], ph[3], prev)
    count_units(slot_parts(ph[1]), "held", 2)
    redis.call("SET", KEYS[12], prev, "EX", math.max(1, tonumber(ph[3]) - now + 60))
  end
  return {"outcome", "gone", "expired_holds", expired_holds()}
end

take(11, first, 1)
take(11, second, 1)
count_units(c1, "held", 2)
redis.call("HSET", KEYS[10], "hid", hid, "first", first, "second", second, "centre", c1,
  "expires", expires, "owner", owner, "status", "held", "created", now)
if #ARGV > 11 then
  redis.call("HSET", KEYS[10], unpack(ARGV, 12))
end
-- Relative TTLs: Redis expires keys by its own clock, which need not be the app clock.
redis.call("EXPIRE", KEYS[10], math.max(1, expires - now + 3600))
redis.call("ZADD", KEYS[5], expires, hid)
redis.call("SET", KEYS[12], hid, "EX", math.max(1, expires - now + 60))
return {"outcome", "ok", "expires", expires, "expired_holds", expired_holds()}
