-- code_check-1.lua: check a verification code, counting wrong attempts.
--
-- KEYS[1]  P.."verif:"..vid
-- ARGV[1]  now   ARGV[2] code hash   ARGV[3] validity s   ARGV[4] max attempts
-- ARGV[5]  subject (the code must have been requested for this, e.g. this hold)
-- ARGV[6]  P (derived keys: codes, the ZSET of delivered codes by end of validity; counts)
-- Returns {"ok"} | {"wrong", remaining} | {"locked"} | {"expired"} | {"not_delivered"}
--       | {"failed"} (delivery gave up) | {"missing"}.
-- Clock: ARGV now (the app clock). Validity runs from `delivered`, written by
-- outbox_done-1.lua when the sender succeeded, never from `requested`. Before that the
-- right code is accepted all the same (whoever has it got the message: the gateway passed
-- it on before its answer reached us); a wrong one is "not_delivered" (the code is most
-- likely still on its way) and counts as an attempt, so guessing stays bounded.

local now, code_hash, validity, max_attempts = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local v = redis.call("HMGET", KEYS[1], "code_hash", "delivered", "attempts", "status", "subject")
if not v[1] or v[5] ~= ARGV[5] then return {"missing"} end
-- A repeated submit of the right code (double click, retry) stays correct.
if v[4] == "verified" then
  if v[1] == code_hash then return {"ok"} end
  return {"wrong", "0"}
end
if v[4] == "locked" then return {"locked"} end
if v[4] == "failed" then return {"failed"} end
local delivered = v[2] and v[2] ~= ""
local codes = ARGV[6] .. "codes"
if delivered and now >= tonumber(v[2]) + validity then
  -- Counted by whoever takes it out of the index first (this check or the sweeper).
  if redis.call("ZREM", codes, KEYS[1]) == 1 then
    redis.call("HINCRBY", ARGV[6] .. "counts", "codes_expired", 1)
  end
  return {"expired"}
end
local attempts = redis.call("HINCRBY", KEYS[1], "attempts", 1)
if v[1] == code_hash then
  redis.call("HSET", KEYS[1], "status", "verified", "verified_at", now)
  redis.call("ZREM", codes, KEYS[1])
  return {"ok"}
end
if attempts >= max_attempts then
  redis.call("HSET", KEYS[1], "status", "locked")
  redis.call("ZREM", codes, KEYS[1])
  return {"locked"}
end
if not delivered then return {"not_delivered"} end
return {"wrong", tostring(max_attempts - attempts)}
