-- outbox_done-5.lua: a sender delivered a message; a code's validity starts now.
--
-- KEYS[1]  outbox           ZSET message id by due time
-- KEYS[2]  outbox:created   ZSET pending message id by queuing time
-- KEYS[3]  msg:<mid>        the message (HASH)
-- KEYS[4]  codes            ZSET verification key by the end of its code's validity
--                           (code_check-3.lua, code_request-7.lua and codes_expire-2.lua
--                           take it out again)
-- KEYS[5]  verif:<vid>      the verification the message names in its field `verif`, as
--                           the caller read the message (KEYS[3] when it names none)
-- ARGV[1]  now
-- ARGV[2]  mid
-- ARGV[3]  code validity s
-- Returns started = 1 when the delivery started a code's validity, else 0.
-- Clock: ARGV now (the app clock), taken right after the sender returned.

local now, mid, validity = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local vk = redis.call("HGET", KEYS[3], "verif")
-- A message's verification never changes: a different one is a caller's bug, not a race.
-- (A message withdrawn by a resend after the caller's read is simply gone: vk is nil.)
if vk and vk ~= KEYS[5] then error("outbox_done-5: verif is not " .. KEYS[5]) end
redis.call("ZREM", KEYS[1], mid)
redis.call("ZREM", KEYS[2], mid)
redis.call("DEL", KEYS[3])
if vk then
  local v = redis.call("HMGET", KEYS[5], "mid", "delivered", "status")
  -- Only the current code counts: an older one replaced by a resend stays unusable.
  if v[1] == mid and (not v[2] or v[2] == "") then
    redis.call("HSET", KEYS[5], "delivered", now)
    -- A code entered before the gateway's answer came back (code_check-3.lua) is used up
    -- already: nothing left to expire.
    if v[3] == "verified" or v[3] == "locked" then return {"started", 0} end
    redis.call("ZADD", KEYS[4], now + validity, KEYS[5])
    return {"started", 1}
  end
end
return {"started", 0}
