-- hold_details-1.lua: attach the person (name, contact, identity hash) to a live hold.
--
-- KEYS[1]  P.."hold:"..hid
-- ARGV[1]  P   ARGV[2] now   ARGV[3] owner   ARGV[4] identity (HMAC of the normalised person)
-- ARGV[5..] field, value, ... (name, channel, address, lang)
-- Derived keys: identities.
-- Returns {"ok"} | {"not_found"} | {"expired"} | {"confirmed", code} | {"already_booked"}.
-- Clock: ARGV now (the app clock).

local P, now, owner, identity = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local h = redis.call("HMGET", KEYS[1], "owner", "status", "expires", "booking")
if not h[1] or h[1] ~= owner then return {"not_found"} end
if h[4] then return {"confirmed", h[4]} end
if h[2] ~= "held" or tonumber(h[3]) <= now then return {"expired"} end
-- Early, friendly answer; confirm-2.lua checks again atomically when it books.
if redis.call("HEXISTS", P .. "identities", identity) == 1 then return {"already_booked"} end
redis.call("HSET", KEYS[1], "identity", identity, unpack(ARGV, 5))
return {"ok"}
