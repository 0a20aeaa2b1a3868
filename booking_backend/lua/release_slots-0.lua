-- release_slots-0.lua: add slot capacity at one centre (vaccine arrived, or initial load)
-- and hand a share of the new pairs to the waiting list in the same atomic step.
--
-- KEYS     none (all keys derive from the prefix; one centre per call)
-- ARGV[1]  P   ARGV[2] now   ARGV[3] centre   ARGV[4] district
-- ARGV[5]  quota: how many pairs go to the waiting list at most
-- ARGV[6]  earliest first-dose start   ARGV[7] min_gap   ARGV[8] max_gap
-- ARGV[9]  n = number of fresh booking codes that follow, ARGV[10 .. 9+n]
-- then triples: slot id, start epoch s, units to add
-- Derived keys: cap, free, cfree:<centre>, counts, ccounts, wl:*, identities, booking:*, outbox, msg:*.
-- Returns {units added, assigned code...}.
-- Clock: ARGV now (the app clock).
--!include _lib.lua

local P, now, cid, district = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local quota, earliest = tonumber(ARGV[5]), tonumber(ARGV[6])
local min_gap, max_gap, n = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local codes = {}
for i = 1, n do codes[i] = ARGV[9 + i] end
local added = 0
for i = 10 + n, #ARGV, 3 do
  local sid, units = ARGV[i], tonumber(ARGV[i + 2])
  local scid = slot_parts(sid)
  if scid == cid and units > 0 then
    redis.call("HINCRBY", P .. "cap", sid, units)
    redis.call("HINCRBY", P .. "counts", "capacity", units)
    redis.call("HINCRBY", P .. "ccounts", cid .. ":capacity", units)
    give(P, sid, units)
    added = added + units
  end
end
local assigned = assign_waitlist(P, cid, district, quota, now, earliest, min_gap, max_gap, codes)
return {tostring(added), unpack(assigned)}
