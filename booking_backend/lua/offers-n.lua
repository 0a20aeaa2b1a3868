-- offers-n.lua: the earliest bookable pairs at several centres, in one round trip.
--
-- KEYS[1..n] cfree:<centre>  one per centre, any number of centres (hence "-n"): ZSET slot
--                            id by start epoch (slots with free units); all share the
--                            deployment's hash tag
-- ARGV[1]  earliest first-dose start
-- ARGV[2]  latest first-dose start
-- ARGV[3]  min_gap          second dose, seconds after the first, at least
-- ARGV[4]  max_gap          and at most
-- ARGV[5]  pairs wanted per centre
-- ARGV[6]  first-dose slots to try per centre (a first slot may have no free second slot in
--          its window)
-- Returns one field per centre, named by its key (the name in KEYS): the start epochs of its pairs,
-- first and second alternating, separated by spaces ("" for none). Read-only: showing is
-- not holding, hold-10.lua checks again.
-- Clock: none (the window comes in ARGV).
--
-- One script instead of a pipeline of one ZRANGEBYSCORE per candidate: the launch
-- benchmark found the client parsing ~100 replies per search at half the backend's CPU.

local earliest, latest = ARGV[1], ARGV[2]
local min_gap, max_gap = tonumber(ARGV[3]), tonumber(ARGV[4])
local wanted, tries = tonumber(ARGV[5]), tonumber(ARGV[6])
local out = {}
for i = 1, #KEYS do
  local starts = {}
  local firsts = redis.call("ZRANGEBYSCORE", KEYS[i], earliest, latest, "WITHSCORES",
                            "LIMIT", 0, tries)
  for j = 2, #firsts, 2 do
    local first = tonumber(firsts[j])
    local second = redis.call("ZRANGEBYSCORE", KEYS[i], first + min_gap, first + max_gap,
                              "WITHSCORES", "LIMIT", 0, 1)
    if second[2] then
      starts[#starts + 1] = firsts[j]
      starts[#starts + 1] = second[2]
      if #starts >= 2 * wanted then break end
    end
  end
  out[#out + 1] = KEYS[i]
  out[#out + 1] = table.concat(starts, " ")
end
return out
