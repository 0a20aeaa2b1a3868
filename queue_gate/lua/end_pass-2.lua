-- end_pass-2.lua: end an admission pass before it expires (the visitor is done, or revoked).
--
-- The pass stays remembered as spent, so its ticket cannot start a new session.
--
-- KEYS[1]  qg:{room}:state    hash: passes_ended is counted here
-- KEYS[2]  qg:{room}:passes   zset: ticket id -> pass expiry (unix seconds)
-- ARGV[1]  ticket id
-- ARGV[2]  now in unix seconds from an injected clock, or "" for Redis TIME
-- Returns  named fields: ended, 1 when an active pass was ended, 0 when there was none or
--          it had already ended.
-- Clock    ARGV[2]: Redis TIME in production, the clock passes are issued by; an
--          injected clock in tests.
--!include _clock.lua

local now = room_now(ARGV[2])
local existing = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not existing or tonumber(existing) <= now then
  return {'ended', 0}
end
redis.call('ZADD', KEYS[2], 'XX', math.floor(now), ARGV[1])
redis.call('HINCRBY', KEYS[1], 'passes_ended', 1)
return {'ended', 1}
