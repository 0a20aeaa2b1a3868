-- code_request-2.lua: create or renew a verification code and queue it for delivery.
--
-- KEYS[1]  P.."verif:"..vid   the verification (HASH)
-- KEYS[2]  P.."outbox"        ZSET message id by due time
-- ARGV[1]  P   ARGV[2] now   ARGV[3] code hash (HMAC; the code itself is only in the message)
-- ARGV[4]  message id   ARGV[5] resend interval s   ARGV[6] max sends   ARGV[7] ttl s
-- ARGV[8]  subject (what the code unlocks, e.g. the hold id)
-- ARGV[9..] message field, value, ... (kind, channel, address, lang, code)
-- Derived keys: msg:<old and new id>, outbox:created, codes, counts.
-- Returns {"ok", sends} | {"wait", seconds} | {"too_many"} | {"verified"} | {"locked"}.
-- Clock: ARGV now (the app clock). The code's validity does NOT start here: it starts when
-- outbox_done-1.lua records the delivery (see code_check-1.lua).

local P, now, code_hash, mid = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local resend, max_sends, ttl, subject = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local v = redis.call("HMGET", KEYS[1], "sends", "last_request", "status", "mid", "subject")
if v[3] == "verified" and v[5] == subject then return {"verified"} end
if v[3] == "locked" then return {"locked"} end
local sends = tonumber(v[1] or "0")
if sends >= max_sends then return {"too_many"} end
if v[2] and now - tonumber(v[2]) < resend then
  return {"wait", tostring(math.ceil(resend - (now - tonumber(v[2]))))}
end
-- A new code replaces the old one. A message still waiting in the outbox is withdrawn;
-- one already being sent is ignored on delivery because its id is no longer current.
if v[4] and redis.call("ZREM", KEYS[2], v[4]) == 1 then
  redis.call("DEL", P .. "msg:" .. v[4])
end
if v[4] then redis.call("ZREM", P .. "outbox:created", v[4]) end
-- The old code leaves the expiry index; if its validity had run out, nobody used it.
local ends = redis.call("ZSCORE", P .. "codes", KEYS[1])
if ends then
  redis.call("ZREM", P .. "codes", KEYS[1])
  if tonumber(ends) <= now then redis.call("HINCRBY", P .. "counts", "codes_expired", 1) end
end
redis.call("HSET", KEYS[1], "code_hash", code_hash, "requested", now, "delivered", "",
  "sends", sends + 1, "last_request", now, "status", "pending", "mid", mid, "subject", subject)
redis.call("HSETNX", KEYS[1], "attempts", 0)
redis.call("EXPIRE", KEYS[1], ttl)
local fields = {unpack(ARGV, 9)}
table.insert(fields, "verif"); table.insert(fields, KEYS[1])
table.insert(fields, "attempts"); table.insert(fields, 0)
table.insert(fields, "created"); table.insert(fields, now)
redis.call("HSET", P .. "msg:" .. mid, unpack(fields))
redis.call("EXPIRE", P .. "msg:" .. mid, ttl)
redis.call("ZADD", KEYS[2], now, mid)
redis.call("ZADD", P .. "outbox:created", now, mid)
return {"ok", tostring(sends + 1)}
