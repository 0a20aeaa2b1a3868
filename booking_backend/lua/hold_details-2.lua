-- hold_details-2.lua: attach the person (name, contact, identity hash) to a live hold.
--
-- KEYS[1]  hold:<hid>
-- KEYS[2]  identities       HASH identity HMAC -> booking code
-- ARGV[1]  now
-- ARGV[2]  owner            must match the hold's owner
-- ARGV[3]  identity         HMAC of the normalised person
-- ARGV[4..] field, value, ... (name, channel, address, lang)
-- Returns outcome = ok | not_found | expired | already_booked
--   | confirmed (booking = the hold's booking code).
-- Clock: ARGV now (the app clock).

local now, owner, identity = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local h = redis.call("HMGET", KEYS[1], "owner", "status", "expires", "booking")
if not h[1] or h[1] ~= owner then return {"outcome", "not_found"} end
if h[4] then return {"outcome", "confirmed", "booking", h[4]} end
if h[2] ~= "held" or tonumber(h[3]) <= now then return {"outcome", "expired"} end
-- Early, friendly answer; confirm-18.lua checks again atomically when it books.
if redis.call("HEXISTS", KEYS[2], identity) == 1 then return {"outcome", "already_booked"} end
redis.call("HSET", KEYS[1], "identity", identity, unpack(ARGV, 4))
return {"outcome", "ok"}
