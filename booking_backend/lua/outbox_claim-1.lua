-- outbox_claim-1.lua: claim due messages for delivery by one worker.
--
-- KEYS[1]  outbox           ZSET message id by due time
-- ARGV[1]  now
-- ARGV[2]  lease s
-- ARGV[3]  at most this many
-- Returns claimed = the claimed message ids, separated by spaces (ids hold no spaces).
-- Clock: ARGV now (the app clock). A claim moves the message's due time to now + lease:
-- two workers never claim one message at the same time, and a message whose worker died
-- is claimed again after the lease (so delivery is at least once).

local now, lease, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", now, "LIMIT", 0, limit)
for _, mid in ipairs(ids) do redis.call("ZADD", KEYS[1], now + lease, mid) end
return {"claimed", table.concat(ids, " ")}
