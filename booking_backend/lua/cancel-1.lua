-- cancel-1.lua: cancel a booking; its units go to the waiting list first, then to everyone.
--
-- KEYS[1]  P.."booking:"..code
-- ARGV[1]  P   ARGV[2] now   ARGV[3] earliest first-dose start for a reassignment
-- ARGV[4]  min_gap   ARGV[5] max_gap   ARGV[6] district of the booking's centre
-- ARGV[7]  fresh booking code for the waiting-list entry that may receive a pair
-- Derived keys: free, cap, cfree:<centre>, identities, counts, ccounts, wl:*, outbox,
--               outbox:created, msg:*.
-- Returns {"ok", assigned code...} | {"not_active"}.
-- Clock: ARGV now (the app clock): appointments already past are not returned.
--!include _lib.lua

local P, now, earliest = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local min_gap, max_gap, district = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local b = redis.call("HMGET", KEYS[1], "status", "first", "second", "identity", "centre", "code")
if b[1] ~= "active" then return {"not_active"} end
redis.call("HSET", KEYS[1], "status", "cancelled", "cancelled_at", now)
if redis.call("HGET", P .. "identities", b[4]) == b[6] then
  redis.call("HDEL", P .. "identities", b[4])
end
count_units(P, b[5], "booked", -2)
redis.call("HINCRBY", P .. "counts", "bookings", -1)
for _, sid in ipairs({b[2], b[3]}) do
  local _, start = slot_parts(sid)
  if start > now then give(P, sid, 1) end
end
-- In the same atomic step, so no direct booker can take the pair before the waiting list.
local assigned = assign_waitlist(P, b[5], district, 1, now, earliest, min_gap, max_gap, {ARGV[7]})
return {"ok", unpack(assigned)}
