-- confirm-18.lua: turn a verified live hold into a booking; a retry returns the same booking.
--
-- KEYS[1]  free             the deployment's inventory and booking keys, as _lib.lua
--                           lists them
-- KEYS[2]  cap
-- KEYS[3]  counts
-- KEYS[4]  ccounts
-- KEYS[5]  holds
-- KEYS[6]  identities
-- KEYS[7]  wl:identities
-- KEYS[8]  outbox
-- KEYS[9]  outbox:created
-- KEYS[10] hold:<hid>
-- KEYS[11] verif:<vid>      the hold's verification
-- KEYS[12] booking:<code>   the new booking (HASH)
-- KEYS[13] msg:bk-<code>    the message that sends the booking code to the person
-- KEYS[14] owner:<owner>    STRING: the owner's live hold id
-- KEYS[15] inv              HASH invitation HMAC -> wave
-- KEYS[16] cfree:<centre>   the hold's centre, if the caller knows it (else KEYS[10])
-- KEYS[17] wl:e:<eid>       the person's waiting entry the caller expects (else KEYS[10])
-- KEYS[18] wl:c:<centre> or wl:d:<district>: that entry's list (else KEYS[10])
-- ARGV[1]  now
-- ARGV[2]  hid
-- ARGV[3]  owner
-- ARGV[4]  code             the new booking code
-- ARGV[5]  source           web | api
-- ARGV[6]  centre           of KEYS[16] ("" when the caller does not know it yet)
-- ARGV[7]  eid              of KEYS[17] ("" when the caller expects no waiting entry)
-- Returns outcome:
--   ok        booking = the code, new = 1 (booked now) | 0 (booked before: a retry)
--   not_found | expired | unverified | no_details | already_booked | invitation_invalid
--   centre    centre = the hold's centre: an expired hold must give its units back, and the
--             caller did not declare its centre; nothing was written, it calls again
--   waiting   entry = the person's waiting entry id ("" for none), not what the caller
--             expected; nothing was written, it declares the entry and calls again
-- Clock: ARGV now (the app clock). The units were taken when the hold was made, so a
-- confirmation only relabels them: nothing can be oversold here, and once this returns ok
-- the booking stands.
--!include _lib.lua

local now, hid, owner, code, source = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local h = hash_at(10)
if not h.hid or h.owner ~= owner then return {"outcome", "not_found"} end
-- Double click / network retry / repeated Idempotency-Key: the first confirmation won.
if h.booking then return {"outcome", "ok", "booking", h.booking, "new", 0} end
if h.status ~= "held" or tonumber(h.expires) <= now then
  if h.status == "held" then
    if h.centre ~= ARGV[6] then return {"outcome", "centre", "centre", h.centre} end
    release_hold(10, 14, 16, hid, "expired")
  end
  return {"outcome", "expired"}
end
local v = redis.call("HMGET", KEYS[11], "status", "subject")
if v[1] ~= "verified" or v[2] ~= hid then return {"outcome", "unverified"} end
if not h.identity or h.identity == "" then return {"outcome", "no_details"} end
-- Checked inside the booking step: two holds of one person confirming at once book once.
if redis.call("HEXISTS", KEYS[IDENTITIES], h.identity) == 1 then
  return {"outcome", "already_booked"}
end
if (h.invitation or "") ~= "" and redis.call("HEXISTS", KEYS[15], h.invitation) == 0 then
  return {"outcome", "invitation_invalid"}
end
local waiting = redis.call("HGET", KEYS[WL_IDENTITIES], h.identity) or ""
-- Race: the person joined or left the waiting list after the caller looked: it declares
-- the entry it finds now and calls again.
if waiting ~= ARGV[7] then return {"outcome", "waiting", "entry", waiting} end

redis.call("HSET", KEYS[12],
  "code", code, "first", h.first, "second", h.second, "centre", h.centre,
  "district", h.district or "", "birth", h.birth or "", "name", h.name or "",
  "channel", h.channel or "", "address", h.address or "", "lang", h.lang or "de",
  "identity", h.identity, "invitation", h.invitation or "", "status", "active",
  "created", now, "source", source)
redis.call("HSET", KEYS[IDENTITIES], h.identity, code)
redis.call("HSET", KEYS[10], "status", "confirmed", "booking", code)
redis.call("ZREM", KEYS[HOLDS], hid)
if redis.call("GET", KEYS[14]) == hid then redis.call("DEL", KEYS[14]) end
count_units(h.centre, "held", -2)
count_units(h.centre, "booked", 2)
redis.call("HINCRBY", KEYS[COUNTS], "bookings", 1)
-- Whoever booked directly no longer waits: their waiting-list place is freed.
if waiting ~= "" then drop_waiting(17, 18, waiting, h.identity, "booked") end
-- The booking code also goes to the person's phone or mailbox, in the same step.
enqueue(13, "bk-" .. code, now, {"kind", "booked", "channel", h.channel or "",
  "address", h.address or "", "lang", h.lang or "de", "booking", code,
  "attempts", 0, "created", now})
return {"outcome", "ok", "booking", code, "new", 1}
