-- code_request-7.lua: create or renew a verification code and queue it for delivery.
--
-- KEYS[1]  verif:<vid>      the verification (HASH)
-- KEYS[2]  outbox           ZSET message id by due time
-- KEYS[3]  outbox:created   ZSET pending message id by queuing time
-- KEYS[4]  codes            ZSET verification key of a delivered code by validity end
-- KEYS[5]  counts           HASH; codes_expired is counted here
-- KEYS[6]  msg:<mid>        the new message (HASH)
-- KEYS[7]  msg:<old mid>    the message of the current code, as the caller expects it
--                           (KEYS[6] when it expects none)
-- ARGV[1]  now
-- ARGV[2]  code hash        HMAC; the code itself is only in the message
-- ARGV[3]  mid              the new message's id
-- ARGV[4]  resend interval s
-- ARGV[5]  max sends
-- ARGV[6]  ttl s            of the verification and the message
-- ARGV[7]  subject          what the code unlocks, e.g. the hold id
-- ARGV[8]  old mid          the current message id the caller expects ("" for none)
-- ARGV[9..] message field, value, ... (kind, channel, address, lang, code)
-- Returns outcome:
--   ok        sends = how many codes were sent for this verification
--   wait      seconds = until a new code may be sent
--   too_many | verified | locked
--   previous  message = the current message id, not what the caller expected; nothing was
--             written, it declares that message and calls again
-- Clock: ARGV now (the app clock). The code's validity does NOT start here: it starts when
-- outbox_done-5.lua records the delivery (see code_check-3.lua).

local now, code_hash, mid = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local resend, max_sends, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local subject = ARGV[7]
local v = redis.call("HMGET", KEYS[1], "sends", "last_request", "status", "mid", "subject")
if v[3] == "verified" and v[5] == subject then return {"outcome", "verified"} end
if v[3] == "locked" then return {"outcome", "locked"} end
local sends = tonumber(v[1] or "0")
if sends >= max_sends then return {"outcome", "too_many"} end
if v[2] and now - tonumber(v[2]) < resend then
  return {"outcome", "wait", "seconds", math.ceil(resend - (now - tonumber(v[2])))}
end
local old = v[4] or ""
-- Race: another request renewed the code after the caller looked: it declares that
-- message and calls again.
if old ~= ARGV[8] then return {"outcome", "previous", "message", old} end
-- A new code replaces the old one. A message still waiting in the outbox is withdrawn;
-- one already being sent is ignored on delivery because its id is no longer current.
if old ~= "" then
  if redis.call("ZREM", KEYS[2], old) == 1 then redis.call("DEL", KEYS[7]) end
  redis.call("ZREM", KEYS[3], old)
end
-- The old code leaves the expiry index; if its validity had run out, nobody used it.
local ends = redis.call("ZSCORE", KEYS[4], KEYS[1])
if ends then
  redis.call("ZREM", KEYS[4], KEYS[1])
  if tonumber(ends) <= now then redis.call("HINCRBY", KEYS[5], "codes_expired", 1) end
end
redis.call("HSET", KEYS[1], "code_hash", code_hash, "requested", now, "delivered", "",
  "sends", sends + 1, "last_request", now, "status", "pending", "mid", mid, "subject", subject)
redis.call("HSETNX", KEYS[1], "attempts", 0)
redis.call("EXPIRE", KEYS[1], ttl)
local fields = {unpack(ARGV, 9)}
table.insert(fields, "verif"); table.insert(fields, KEYS[1])
table.insert(fields, "attempts"); table.insert(fields, 0)
table.insert(fields, "created"); table.insert(fields, now)
redis.call("HSET", KEYS[6], unpack(fields))
redis.call("EXPIRE", KEYS[6], ttl)
redis.call("ZADD", KEYS[2], now, mid)
redis.call("ZADD", KEYS[3], now, mid)
return {"outcome", "ok", "sends", sends + 1}
