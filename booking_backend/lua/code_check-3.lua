-- code_check-3.lua: check a verification code, counting wrong attempts.
--
-- KEYS[1]  verif:<vid>
-- KEYS[2]  codes            ZSET verification key of a delivered code by validity end
-- KEYS[3]  counts           HASH; codes_expired is counted here
-- ARGV[1]  now
-- ARGV[2]  code hash
-- ARGV[3]  validity s
-- ARGV[4]  max attempts
-- ARGV[5]  subject          the code must have been requested for this, e.g. this hold
-- Returns outcome = ok | wrong (remaining = attempts left) | locked | expired
--   | not_delivered | failed (delivery gave up) | missing.
-- Clock: ARGV now (the app clock). Validity runs from `delivered`, written by
-- outbox_done-5.lua when the sender succeeded, never from `requested`. Before that the
-- right code is accepted all the same (whoever has it got the message: the gateway passed
-- it on before its answer reached us); a wrong one is "not_delivered" (the code is most
-- likely still on its way) and counts as an attempt, so guessing stays bounded.

local now, code_hash = tonumber(ARGV[1]), ARGV[2]
local validity, max_attempts = tonumber(ARGV[3]), tonumber(ARGV[4])
local v = redis.call("HMGET", KEYS[1], "code_hash", "delivered", "attempts", "status", "subject")
if not v[1] or v[5] ~= ARGV[5] then return {"outcome", "missing"} end
-- A repeated submit of the right code (double click, retry) stays correct.
if v[4] == "verified" then
  if v[1] == code_hash then return {"outcome", "ok"} end
  return {"outcome", "wrong", "remaining", 0}
end
if v[4] == "locked" then return {"outcome", "locked"} end
if v[4] == "failed" then return {"outcome", "failed"} end
local delivered = v[2] and v[2] ~= ""
if delivered and now >= tonumber(v[2]) + validity then
  -- Counted by whoever takes it out of the index first (this check or the sweeper).
  if redis.call("ZREM", KEYS[2], KEYS[1]) == 1 then
    redis.call("HINCRBY", KEYS[3], "codes_expired", 1)
  end
  return {"outcome", "expired"}
end
local attempts = redis.call("HINCRBY", KEYS[1], "attempts", 1)
if v[1] == code_hash then
  redis.call("HSET", KEYS[1], "status", "verified", "verified_at", now)
  redis.call("ZREM", KEYS[2], KEYS[1])
  return {"outcome", "ok"}
end
if attempts >= max_attempts then
  redis.call("HSET", KEYS[1], "status", "locked")
  redis.call("ZREM", KEYS[2], KEYS[1])
  return {"outcome", "locked"}
end
if not delivered then return {"outcome", "not_delivered"} end
return {"outcome", "wrong", "remaining", max_attempts - attempts}
