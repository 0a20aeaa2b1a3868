-- outbox_done-1.lua: a sender delivered a message; a code's validity starts now.
--
-- KEYS[1]  P.."outbox"
-- ARGV[1]  P   ARGV[2] now   ARGV[3] message id   ARGV[4] code validity s
-- Derived keys: msg:<id>, outbox:created, the verification named in the message, codes
--               (ZSET verification key by the end of its code's validity; code_check-1.lua,
--               code_request-2.lua and codes_expire-1.lua take it out again).
-- Returns 1 when the delivery started a code's validity, else 0.
-- Clock: ARGV now (the app clock), taken right after the sender returned.

local P, now, mid, validity = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local vk = redis.call("HGET", P .. "msg:" .. mid, "verif")
redis.call("ZREM", KEYS[1], mid)
redis.call("ZREM", P .. "outbox:created", mid)
redis.call("DEL", P .. "msg:" .. mid)
if vk then
  local v = redis.call("HMGET", vk, "mid", "delivered", "status")
  -- Only the current code counts: an older one replaced by a resend stays unusable.
  if v[1] == mid and (not v[2] or v[2] == "") then
    redis.call("HSET", vk, "delivered", now)
    -- A code entered before the gateway's answer came back (code_check-1.lua) is used up
    -- already: nothing left to expire.
    if v[3] == "verified" or v[3] == "locked" then return 0 end
    redis.call("ZADD", P .. "codes", now + validity, vk)
    return 1
  end
end
return 0
