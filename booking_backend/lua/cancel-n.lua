-- cancel-n.lua: cancel a booking; its units go to the waiting list first, then to everyone.
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
-- KEYS[10] booking:<code>   the booking to cancel
-- KEYS[11] cfree:<centre>   the booking's centre
-- KEYS[12] wl:c:<centre>    the centre's waiting list
-- KEYS[13] wl:d:<district>  the district's waiting list
-- KEYS[14] booking:<new code>  for the entry that may receive the pair
-- KEYS[15] msg:wl-<new code>   the message telling that person
-- KEYS[16..n] wl:e:<eid>    one per entry id in ARGV, in the same order
-- ARGV[1]  now
-- ARGV[2]  earliest first-dose start for a reassignment
-- ARGV[3]  min_gap
-- ARGV[4]  max_gap
-- ARGV[5]  centre           of the booking (KEYS[11])
-- ARGV[6]  district         of the booking's centre
-- ARGV[7]  window           how many entries at the head of each list count (1 + a margin
--                           for entries skipped because their person booked directly)
-- ARGV[8]  1                fresh booking codes that follow
-- ARGV[9]  the new code
-- ARGV[10] nc               entries expected in the centre's list
-- ARGV[11..n] the nc entry ids expected in the centre's list, in order, then nd (entries
--          expected in the district's list), then those nd ids, in order
-- Returns outcome:
--   ok          assigned = the booking code given to a waiting entry ("" for none)
--   not_active  the booking was cancelled already (or never existed)
--   retry       centre_ids, district_ids = the entry ids at the head of each list, up to
--               window, separated by spaces: not what the caller expected, nothing was
--               written; it declares them and calls again
-- Clock: ARGV now (the app clock): appointments already past are not returned.
--!include _lib.lua

local now, earliest = tonumber(ARGV[1]), tonumber(ARGV[2])
local min_gap, max_gap, centre, district = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], ARGV[6]
local b = redis.call("HMGET", KEYS[10], "status", "first", "second", "identity", "centre", "code")
if b[1] ~= "active" then return {"outcome", "not_active"} end
-- A booking's centre never changes: a different one is a caller's bug, not a race.
if b[5] ~= centre then error("cancel-n: booking centre is not " .. centre) end
local wl = waitlist_args(7, 12)
-- Race (or a first call): the lists do not start as the caller expects: tell it their heads.
local news = waitlist_news(wl)
if news then return news end

redis.call("HSET", KEYS[10], "status", "cancelled", "cancelled_at", now)
if redis.call("HGET", KEYS[IDENTITIES], b[4]) == b[6] then
  redis.call("HDEL", KEYS[IDENTITIES], b[4])
end
count_units(centre, "booked", -2)
redis.call("HINCRBY", KEYS[COUNTS], "bookings", -1)
for _, sid in ipairs({b[2], b[3]}) do
  local _, start = slot_parts(sid)
  if start > now then give(11, sid, 1) end
end
-- In the same atomic step, so no direct booker can take the pair before the waiting list.
local assigned = assign_waitlist(wl, 11, centre, district, 1, now, earliest, min_gap, max_gap)
return {"outcome", "ok", "assigned", assigned[1] or ""}
