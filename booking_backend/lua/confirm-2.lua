-- confirm-2.lua: turn a verified live hold into a booking; a retry returns the same booking.
--
-- KEYS[1]  P.."hold:"..hid      KEYS[2] P.."verif:"..vid (the hold's verification)
-- ARGV[1]  P   ARGV[2] now   ARGV[3] hid   ARGV[4] owner   ARGV[5] new booking code
-- ARGV[6]  source (web | api)
-- Derived keys: booking:<code>, identities, inv, holds, owner:<owner>, counts, ccounts, wl:*,
--               outbox, outbox:created, msg:bk-<code> (the booking code is sent to the person too).
-- Returns {"ok", code, "new" | "existing"} | {"not_found"} | {"expired"} | {"unverified"}
--       | {"no_details"} | {"already_booked"} | {"invitation_invalid"}.
-- Clock: ARGV now (the app clock). The units were taken when the hold was made, so a
-- confirmation only relabels them: nothing can be oversold here, and once this returns ok
-- the booking stands.
--!include _lib.lua

local P, now, hid, owner, code, source = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local h = hash(KEYS[1])
if not h.hid or h.owner ~= owner then return {"not_found"} end
-- Double click / network retry / repeated Idempotency-Key: the first confirmation won.
if h.booking then return {"ok", h.booking, "existing"} end
if h.status ~= "held" or tonumber(h.expires) <= now then
  if h.status == "held" then release_hold(P, hid, "expired") end
  return {"expired"}
end
local v = redis.call("HMGET", KEYS[2], "status", "subject")
if v[1] ~= "verified" or v[2] ~= hid then return {"unverified"} end
if not h.identity or h.identity == "" then return {"no_details"} end
-- Checked inside the booking step: two holds of one person confirming at once book once.
if redis.call("HEXISTS", P .. "identities", h.identity) == 1 then return {"already_booked"} end
if (h.invitation or "") ~= "" and redis.call("HEXISTS", P .. "inv", h.invitation) == 0 then
  return {"invitation_invalid"}
end

redis.call("HSET", P .. "booking:" .. code,
  "code", code, "first", h.first, "second", h.second, "centre", h.centre,
  "district", h.district or "", "birth", h.birth or "", "name", h.name or "",
  "channel", h.channel or "", "address", h.address or "", "lang", h.lang or "de",
  "identity", h.identity, "invitation", h.invitation or "", "status", "active",
  "created", now, "source", source)
redis.call("HSET", P .. "identities", h.identity, code)
redis.call("HSET", KEYS[1], "status", "confirmed", "booking", code)
redis.call("ZREM", P .. "holds", hid)
local ok = P .. "owner:" .. owner
if redis.call("GET", ok) == hid then redis.call("DEL", ok) end
count_units(P, h.centre, "held", -2)
count_units(P, h.centre, "booked", 2)
redis.call("HINCRBY", P .. "counts", "bookings", 1)
-- Whoever booked directly no longer waits: their waiting-list place is freed.
drop_waiting(P, h.identity, "booked")
-- The booking code also goes to the person's phone or mailbox, in the same step.
enqueue(P, "bk-" .. code, now, {"kind", "booked", "channel", h.channel or "",
  "address", h.address or "", "lang", h.lang or "de", "booking", code,
  "attempts", 0, "created", now})
return {"ok", code, "new"}
