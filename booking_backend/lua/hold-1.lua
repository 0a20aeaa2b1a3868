-- hold-1.lua: hold a first-dose and a second-dose slot together, atomically.
--
-- KEYS[1]  P.."hold:"..hid        the new hold (HASH)
-- ARGV[1]  P                      key prefix `bk:{deployment}:`
-- ARGV[2]  now                    seconds, from the app's injected clock
-- ARGV[3]  hid                    fresh random hold id
-- ARGV[4]  first slot id          ARGV[5] second slot id
-- ARGV[6]  expires                now + hold time (seconds)
-- ARGV[7]  owner                  the admission ticket id or session the hold belongs to
-- ARGV[8]  min_gap  ARGV[9] max_gap   allowed seconds between first and second start
-- ARGV[10] earliest ARGV[11] latest   allowed start of the first slot
-- ARGV[12..] field, value, ...    more hold fields (birth, district, lang, invitation)
-- Derived keys: free, cap, cfree:<centre>, holds, hold:<previous>, owner:<owner>, counts,
--               ccounts.
-- Returns {"ok"} | {"gone"} (a slot has no free unit) | {"invalid", why}.
-- Clock: ARGV now (the app clock; all processes run NTP-synced wall time, and tests inject it).
--!include _lib.lua

local P, now, hid = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local first, second, expires, owner = ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7]
local min_gap, max_gap = tonumber(ARGV[8]), tonumber(ARGV[9])
local earliest, latest = tonumber(ARGV[10]), tonumber(ARGV[11])

-- Holds whose time ran out give their units back first, even if the sweeper lags.
expire_holds(P, now, 100)

local c1, t1 = slot_parts(first)
local c2, t2 = slot_parts(second)
if not c1 or not c2 then return {"invalid", "slot"} end
if c1 ~= c2 then return {"invalid", "centre"} end
if t2 - t1 < min_gap or t2 - t1 > max_gap then return {"invalid", "interval"} end
if t1 < earliest or t1 > latest then return {"invalid", "time"} end
if redis.call("EXISTS", KEYS[1]) == 1 then return {"invalid", "hold"} end

-- One live hold per visitor: choosing another pair gives the previous one back, so one
-- admission cannot hoard many pairs. If the new pair is gone, the previous hold is restored.
local ok = P .. "owner:" .. owner
local prev = redis.call("GET", ok)
local prev_released = false
if prev then
  -- A previous hold whose time ran out (beyond the 100 expired above) counts as expired.
  local until_ = tonumber(redis.call("HGET", P .. "hold:" .. prev, "expires") or "0")
  prev_released = release_hold(P, prev, until_ <= now and "expired" or "replaced")
end

local f1 = tonumber(redis.call("HGET", P .. "free", first) or "0")
local f2 = tonumber(redis.call("HGET", P .. "free", second) or "0")
if f1 < 1 or f2 < 1 then
  local pk = P .. "hold:" .. (prev or "")
  local ph = redis.call("HMGET", pk, "first", "second", "expires")
  -- Only a previous hold whose time has not run out is restored.
  if prev_released and tonumber(ph[3]) > now then
    -- Restoring cannot fail: the units were given back a moment ago inside this script.
    take(P, ph[1], 1)
    take(P, ph[2], 1)
    redis.call("HSET", pk, "status", "held")
    redis.call("EXPIRE", pk, math.max(1, tonumber(ph[3]) - now + 3600))
    redis.call("ZADD", P .. "holds", ph[3], prev)
    count_units(P, slot_parts(ph[1]), "held", 2)
    redis.call("SET", ok, prev, "EX", math.max(1, tonumber(ph[3]) - now + 60))
  end
  return {"gone"}
end

take(P, first, 1)
take(P, second, 1)
count_units(P, c1, "held", 2)
redis.call("HSET", KEYS[1], "hid", hid, "first", first, "second", second, "centre", c1,
  "expires", expires, "owner", owner, "status", "held", "created", now)
if #ARGV > 11 then
  redis.call("HSET", KEYS[1], unpack(ARGV, 12))
end
-- Relative TTLs: Redis expires keys by its own clock, which need not be the app clock.
redis.call("EXPIRE", KEYS[1], math.max(1, expires - now + 3600))
redis.call("ZADD", P .. "holds", expires, hid)
redis.call("SET", ok, hid, "EX", math.max(1, expires - now + 60))
return {"ok"}
