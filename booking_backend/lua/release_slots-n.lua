-- release_slots-n.lua: add slot capacity at one centre (vaccine arrived, or initial load)
-- and hand a share of the new pairs to the waiting list in the same atomic step.
--
-- A waiting entry the script may serve must be declared, so the caller says which entries
-- it expects at the head of the centre's and the district's waiting list (none, at first);
-- if the lists start otherwise, nothing is written and the script answers with their heads
-- (outcome retry), which the caller declares when it calls again.
--
-- KEYS[1]  free             the deployment's inventory and booking keys, as _lib.lua
--                           lists them
-- KEYS[2]  cap
-- KEYS[3]  counts
-- KEYS[4]  ccounts
-- KEYS[5]  holds            (not used here)
-- KEYS[6]  identities
-- KEYS[7]  wl:identities
-- KEYS[8]  outbox
-- KEYS[9]  outbox:created
-- KEYS[10] cfree:<centre>
-- KEYS[11] wl:c:<centre>    the centre's waiting list
-- KEYS[12] wl:d:<district>  the district's waiting list
-- KEYS[13..n] for each fresh booking code j = 1 .. n (see ARGV), two keys:
--   KEYS[11+2j]  booking:<code j>
--   KEYS[12+2j]  msg:wl-<code j>   the message telling that person
-- and then wl:e:<eid>, one per entry id in ARGV, in the same order
-- ARGV[1]  now
-- ARGV[2]  centre
-- ARGV[3]  district         of the centre
-- ARGV[4]  quota            how many pairs go to the waiting list at most
-- ARGV[5]  earliest first-dose start
-- ARGV[6]  min_gap
-- ARGV[7]  max_gap
-- ARGV[8]  t                pairs of slot and units that follow
-- ARGV[9..n] in turn:
--   t pairs: slot id, units to add
--   window: how many entries at the head of each list count (quota + a margin for
--     entries skipped because their person booked directly; 0 when quota is 0)
--   n, then n fresh booking codes
--   nc, then the nc entry ids expected in the centre's list, in order
--   nd, then the nd entry ids expected in the district's list, in order
-- Returns outcome:
--   ok      added = units added, assigned = the booking codes given to waiting entries,
--           separated by spaces
--   retry   centre_ids, district_ids = the entry ids at the head of each list, up to window,
--           separated by spaces: not what the caller expected, nothing was written; it
--           declares them and calls again
-- Clock: ARGV now (the app clock).
--!include _lib.lua

local now, centre, district = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local quota, earliest = tonumber(ARGV[4]), tonumber(ARGV[5])
local min_gap, max_gap, t = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local wl = waitlist_args(9 + 2 * t, 11)
-- Race (or a first call): the lists do not start as the caller expects: tell it their heads.
local news = waitlist_news(wl)
if news then return news end
local added = 0
for i = 9, 8 + 2 * t, 2 do
  local sid, units = ARGV[i], tonumber(ARGV[i + 1])
  if slot_parts(sid) == centre and units > 0 then
    redis.call("HINCRBY", KEYS[CAP], sid, units)
    redis.call("HINCRBY", KEYS[COUNTS], "capacity", units)
    redis.call("HINCRBY", KEYS[CCOUNTS], centre .. ":capacity", units)
    give(10, sid, units)
    added = added + units
  end
end
local assigned = assign_waitlist(wl, 10, centre, district, quota, now, earliest, min_gap, max_gap)
return {"outcome", "ok", "added", added, "assigned", table.concat(assigned, " ")}
