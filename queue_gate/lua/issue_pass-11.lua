-- issue_pass-11.lua: turn an admitted ticket into its one admission pass.
--
-- One ticket yields one pass: the pass's expiry is fixed when it is first issued and
-- remembered, so asking again (a lost response, a second tab) returns the same expiry,
-- and a ticket whose pass has expired or was ended cannot start a second session.
-- A number the frontier passed while its visitor was away is not admitted; when the
-- visitor comes back it joins the returners, who are admitted first at the next tick.
--
-- KEYS[1]   qg:{room}:config     hash: the room's configuration (fields: see _room.lua)
-- KEYS[2]   qg:{room}:state      hash: the line's counters, credit, last tick, last draw
-- KEYS[3]   qg:{room}:passes     zset: ticket id -> pass expiry (unix seconds)
-- KEYS[4]   qg:{room}:seen:0     bitmap: numbers seen in one time bucket (three take turns)
-- KEYS[5]   qg:{room}:seen:1     bitmap: the same, the next bucket
-- KEYS[6]   qg:{room}:seen:2     bitmap: the same, the bucket after
-- KEYS[7]   qg:{room}:skipped    bitmap: numbers passed over while away
-- KEYS[8]   qg:{room}:returners  list: passed-over numbers that came back, admitted first
-- KEYS[9]   qg:{room}:requeued   bitmap: numbers that are (or were) in the returners list
-- KEYS[10]  qg:{room}:prequeue   zset: ticket id -> random draw key, before opening
-- KEYS[11]  qg:{room}:drawn      zset: the last frozen pre-queue (rank = place in the draw)
-- ARGV[1]   ticket id
-- ARGV[2]   ticket number
-- ARGV[3]   the room epoch written in the ticket
-- ARGV[4]   now in unix seconds from an injected clock, or "" for Redis TIME
-- Returns   named fields: outcome, and the field that goes with it:
--             "issued", expires_at     a new pass, expiring then (unix seconds);
--             "again", expires_at      the pass issued before (a lost response, a 2nd tab);
--             "waiting", frontier      the ticket's turn has not come;
--             "requeued", returners_ahead  passed over while away, now among the returners;
--             "full"                   the room's cap on active sessions is reached (retry);
--             "spent", expires_at      its pass has expired or was ended;
--             "stale"                  the ticket is from an earlier epoch of the room;
--             "missing"                the room does not exist (Redis lost it: the caller
--                                      ticks, which re-creates it, and asks again).
-- Clock     ARGV[4]: Redis TIME in production, the same clock the tick uses for the
--           session cap; an injected clock in tests.
--!include _clock.lua
--!include _room.lua

local now = room_now(ARGV[4])
local cfg = redis.call('HMGET', KEYS[1], 'epoch', 'session_minutes')
if not cfg[1] then
  return {'outcome', 'missing'}
end
if cfg[1] ~= ARGV[3] then
  return {'outcome', 'stale'}
end
local number = tonumber(ARGV[2])
local frontier = tonumber(redis.call('HGET', KEYS[2], 'frontier')) or 0
if number > frontier then
  return {'outcome', 'waiting', 'frontier', frontier}
end

if redis.call('GETBIT', KEYS[7], number) == 1 then
  if redis.call('SETBIT', KEYS[9], number, 1) == 0 then
    redis.call('RPUSH', KEYS[8], number)
  end
  return {'outcome', 'requeued', 'returners_ahead', redis.call('LLEN', KEYS[8])}
end

local existing = redis.call('ZSCORE', KEYS[3], ARGV[1])
if existing then
  local expires = tonumber(existing)
  if expires > now then
    return {'outcome', 'again', 'expires_at', math.floor(expires)}
  end
  return {'outcome', 'spent', 'expires_at', math.floor(expires)}
end

-- The session cap holds here, where sessions start: the tick only slows admissions down to
-- the free sessions, and visitors it admitted in the same moment compete for the last ones.
local max_active = tonumber(redis.call('HGET', KEYS[1], 'max_active')) or 0
if max_active > 0 and redis.call('ZCOUNT', KEYS[3], string.format('(%.6f', now), '+inf')
    >= max_active then
  return {'outcome', 'full'}
end

local expires = math.floor(now + (tonumber(cfg[2]) or 15) * 60)
redis.call('ZADD', KEYS[3], expires, ARGV[1])
redis.call('HINCRBY', KEYS[2], 'passes_issued', 1)
return {'outcome', 'issued', 'expires_at', expires}
