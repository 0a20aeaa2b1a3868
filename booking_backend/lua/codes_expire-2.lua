-- codes_expire-2.lua: count delivered codes whose validity ran out before anyone used them.
--
-- KEYS[1]  codes            ZSET verification key by the end of its code's validity
--                           (added by outbox_done-5.lua on delivery)
-- KEYS[2]  counts           HASH; codes_expired is counted here
-- ARGV[1]  now
-- ARGV[2]  at most this many codes per call
-- Returns expired = the number of codes counted as expired.
-- Clock: ARGV now (the app clock). A code leaves the index when it is used (verified),
-- locked, replaced by a resend, or found expired by a check: each way exactly once, so
-- whatever is still in it at the end of its validity expired unused. Its verification may
-- be gone already (its TTL ran out): it was not used either.

local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local ids = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", now, "LIMIT", 0, limit)
for _, vk in ipairs(ids) do redis.call("ZREM", KEYS[1], vk) end
if #ids > 0 then redis.call("HINCRBY", KEYS[2], "codes_expired", #ids) end
return {"expired", #ids}
