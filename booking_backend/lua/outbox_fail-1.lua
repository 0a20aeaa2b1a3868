-- outbox_fail-1.lua: a delivery failed; retry later with backoff or give up.
--
-- KEYS[1]  P.."outbox"
-- ARGV[1]  P   ARGV[2] now   ARGV[3] message id   ARGV[4] max attempts   ARGV[5] backoff s
-- Derived keys: msg:<id>, outbox:created, the verification named in the message.
-- Returns {"retry", due} | {"gave_up"}.
-- Clock: ARGV now (the app clock).

local P, now, mid = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local max_attempts, backoff = tonumber(ARGV[4]), tonumber(ARGV[5])
local mk = P .. "msg:" .. mid
if redis.call("EXISTS", mk) == 0 then
  redis.call("ZREM", KEYS[1], mid)
  redis.call("ZREM", P .. "outbox:created", mid)
  return {"gave_up"}
end
local attempts = redis.call("HINCRBY", mk, "attempts", 1)
if attempts >= max_attempts then
  local vk = redis.call("HGET", mk, "verif")
  redis.call("ZREM", KEYS[1], mid)
  redis.call("ZREM", P .. "outbox:created", mid)
  redis.call("DEL", mk)
  if vk and redis.call("HGET", vk, "mid") == mid then
    -- The page tells the person honestly that no code could be sent.
    redis.call("HSET", vk, "status", "failed")
  end
  return {"gave_up"}
end
local due = now + backoff * math.pow(2, attempts - 1)
redis.call("ZADD", KEYS[1], due, mid)
return {"retry", tostring(due)}
