-- codes_expire-1.lua: count delivered codes whose validity ran out before anyone used them.
--
-- KEYS[1]  P.."codes"   ZSET verification key by the end of its code's validity
--                       (added by outbox_done-1.lua on delivery)
-- ARGV[1]  P   ARGV[2] now   ARGV[3] at most this many codes per call
-- Derived keys: counts.
-- Returns the number of codes counted as expired.
-- Clock: ARGV now (the app clock). A code leaves the index when it is used (verified),
-- locked, replaced by a resend, or found expired by a check: each way exactly once, so
-- whatever is still in it at the end of its validity expired unused. Its verification may
-- be gone already (its TTL ran out): it was not used either.

local P, now, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", now, "LIMIT", 0, limit)
for _, vk in ipairs(ids) do redis.call("ZREM", KEYS[1], vk) end
if #ids > 0 then redis.call("HINCRBY", P .. "counts", "codes_expired", #ids) end
return #ids
