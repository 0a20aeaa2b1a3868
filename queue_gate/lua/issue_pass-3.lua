-- issue_pass-3.lua: turn an admitted ticket into its one admission pass.
--
-- One ticket yields one pass: the pass's expiry is fixed when it is first issued and
-- remembered, so asking again (a lost response, a second tab) returns the same expiry,
-- and a ticket whose pass has expired or was ended cannot start a second session.
--
-- KEYS[1]  qg:{room}:config   hash (see tick-3.lua)
-- KEYS[2]  qg:{room}:state    hash (see tick-3.lua)
-- KEYS[3]  qg:{room}:passes   zset: ticket id -> pass expiry (unix seconds)
-- ARGV[1]  ticket id
-- ARGV[2]  ticket number
-- ARGV[3]  the room epoch written in the ticket
-- ARGV[4]  now in unix seconds from an injected clock, or "" for Redis TIME
-- Returns  {"issued", expires_at} for a new pass, {"again", expires_at} for one issued
--          before, {"waiting", frontier} when the ticket's turn has not come,
--          {"spent", expires_at} when its pass has expired or was ended,
--          {"stale", 0} when the ticket is from an earlier epoch of the room.

local now
if ARGV[4] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[4])
end

local cfg = redis.call('HMGET', KEYS[1], 'epoch', 'session_minutes')
if cfg[1] ~= ARGV[3] then
  return {'stale', 0}
end
local frontier = tonumber(redis.call('HGET', KEYS[2], 'frontier')) or 0
if tonumber(ARGV[2]) > frontier then
  return {'waiting', frontier}
end

local existing = redis.call('ZSCORE', KEYS[3], ARGV[1])
if existing then
  local expires = tonumber(existing)
  if expires > now then
    return {'again', math.floor(expires)}
  end
  return {'spent', math.floor(expires)}
end

local expires = math.floor(now + (tonumber(cfg[2]) or 15) * 60)
redis.call('ZADD', KEYS[3], expires, ARGV[1])
redis.call('HINCRBY', KEYS[2], 'passes_issued', 1)
return {'issued', expires}
