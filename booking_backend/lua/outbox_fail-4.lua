-- outbox_fail-4.lua: a delivery failed; retry later with backoff or give up.
--
-- KEYS[1]  outbox           ZSET message id by due time
-- KEYS[2]  outbox:created   ZSET pending message id by queuing time
-- KEYS[3]  msg:<mid>        the message (HASH)
-- KEYS[4]  verif:<vid>      the verification the message names in its field `verif`, as
--                           the caller read the message (KEYS[3] when it names none)
-- ARGV[1]  now
-- ARGV[2]  mid
-- ARGV[3]  max attempts
-- ARGV[4]  backoff s        doubled with each attempt
-- Returns outcome = retry (due = when) | gave_up.
-- Clock: ARGV now (the app clock).

local now, mid = tonumber(ARGV[1]), ARGV[2]
local max_attempts, backoff = tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call("EXISTS", KEYS[3]) == 0 then
  redis.call("ZREM", KEYS[1], mid)
  redis.call("ZREM", KEYS[2], mid)
  return {"outcome", "gave_up"}
end
local vk = redis.call("HGET", KEYS[3], "verif")
-- A message's verification never changes: a different one is a caller's bug, not a race.
if vk and vk ~= KEYS[4] then error("outbox_fail-4: verif is not " .. KEYS[4]) end
local attempts = redis.call("HINCRBY", KEYS[3], "attempts", 1)
if attempts >= max_attempts then
  redis.call("ZREM", KEYS[1], mid)
  redis.call("ZREM", KEYS[2], mid)
  redis.call("DEL", KEYS[3])
  if vk and redis.call("HGET", KEYS[4], "mid") == mid then
    -- The page tells the person honestly that no code could be sent.
    redis.call("HSET", KEYS[4], "status", "failed")
  end
  return {"outcome", "gave_up"}
end
local due = now + backoff * math.pow(2, attempts - 1)
redis.call("ZADD", KEYS[1], due, mid)
return {"outcome", "retry", "due", tostring(due)}
