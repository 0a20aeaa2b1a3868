-- offers-n.lua: the earliest bookable pairs at several centres, in one round trip.
--
-- KEYS[i]  P.."cfree:"..centre i (ZSET: slot id by start epoch, slots with free units), any
--          number of centres (hence "-n"); all share the deployment's hash tag
-- ARGV[1]  earliest first-dose start   ARGV[2] latest first-dose start
-- ARGV[3]  min_gap   ARGV[4] max_gap (second dose, seconds after the first)
-- ARGV[5]  pairs wanted per centre   ARGV[6] first-dose slots to try per centre (a first
--          slot may have no free second slot in its window)
-- Returns a flat list, for each centre in KEYS order: n, then n pairs of start epochs
-- (first, second). Read-only: showing is not holding, hold-1.lua checks again.
-- Clock: none (the window comes in ARGV).
--
-- One script instead of a pipeline of one ZRANGEBYSCORE per candidate: the launch
-- benchmark found the client parsing ~100 replies per search at half the backend's CPU.

local earliest, latest = ARGV[1], ARGV[2]
local min_gap, max_gap = tonumber(ARGV[3]), tonumber(ARGV[4])
local wanted, tries = tonumber(ARGV[5]), tonumber(ARGV[6])
local out = {}
for _, key in ipairs(KEYS) do
  local at = #out + 1
  out[at] = 0
  local found = 0
  local firsts = redis.call("ZRANGEBYSCORE", key, earliest, latest, "WITHSCORES", "LIMIT", 0, tries)
  for i = 2, #firsts, 2 do
    local first = tonumber(firsts[i])
    local second = redis.call("ZRANGEBYSCORE", key, first + min_gap, first + max_gap,
                              "WITHSCORES", "LIMIT", 0, 1)
    if second[2] then
      out[#out + 1] = first
      out[#out + 1] = tonumber(second[2])
      found = found + 1
      if found >= wanted then break end
    end
  end
  out[at] = found
end
return out
