-- issue_pass-11.lua: turn an admitted ticket into its one admission pass.
--
-- One ticket yields one pass: the pass's expiry is fixed when it is first issued and
-- remembered, so asking again (a lost response, a second tab) returns the same expiry,
-- and a ticket whose pass has expired or was ended cannot start a second session.
-- A number the frontier passed while its visitor was away is not admitted; when the
-- visitor comes back it joins the returners, who are admitted first at the next tick.
--
-- KEYS     the room keys, see _room.lua
-- ARGV[1]  ticket id
-- ARGV[2]  ticket number
-- ARGV[3]  the room epoch written in the ticket
-- ARGV[4]  now in unix seconds from an injected clock, or "" for Redis TIME
-- Returns  {"issued", expires_at} for a new pass, {"again", expires_at} for one issued
--          before, {"waiting", frontier} when the ticket's turn has not come,
--          {"requeued", returners ahead} for a visitor who was passed over while away,
--          {"full", 0} when the room's cap on active sessions is reached (try again soon),
--          {"spent", expires_at} when its pass has expired or was ended,
--          {"stale", 0} when the ticket is from an earlier epoch of the room.

local now = room_now(ARGV[4])
local cfg = redis.call('HMGET', KEYS[1], 'epoch', 'session_minutes')
if cfg[1] ~= ARGV[3] then
  return {'stale', 0}
end
local number = tonumber(ARGV[2])
local frontier = tonumber(redis.call('HGET', KEYS[2], 'frontier')) or 0
if number > frontier then
  return {'waiting', frontier}
end

if redis.call('GETBIT', KEYS[7], number) == 1 then
  if redis.call('SETBIT', KEYS[9], number, 1) == 0 then
    redis.call('RPUSH', KEYS[8], number)
  end
  return {'requeued', redis.call('LLEN', KEYS[8])}
end

local existing = redis.call('ZSCORE', KEYS[3], ARGV[1])
if existing then
  local expires = tonumber(existing)
  if expires > now then
    return {'again', math.floor(expires)}
  end
  return {'spent', math.floor(expires)}
end

-- The session cap holds here, where sessions start: the tick only slows admissions down to
-- the free sessions, and visitors it admitted in the same moment compete for the last ones.
local max_active = tonumber(redis.call('HGET', KEYS[1], 'max_active')) or 0
if max_active > 0 and redis.call('ZCOUNT', KEYS[3], string.format('(%.6f', now), '+inf')
    >= max_active then
  return {'full', 0}
end

local expires = math.floor(now + (tonumber(cfg[2]) or 15) * 60)
redis.call('ZADD', KEYS[3], expires, ARGV[1])
redis.call('HINCRBY', KEYS[2], 'passes_issued', 1)
return {'issued', expires}
