-- join-12.lua: give an arriving visitor a place: the next number, or a pre-queue entry.
--
-- KEYS[1..11] the room keys, see _room.lua
-- KEYS[12] qg:{room}:addr:<address>  joins from one network address in the current window
-- ARGV[1]  now in unix seconds from an injected clock, or "" for Redis TIME
-- ARGV[2]  the new ticket's id (kept in the pre-queue before opening)
-- ARGV[3]  its random draw key in [0, 1) (orders the pre-queue at opening)
-- ARGV[4]  joins allowed per address and window (0: no limit, e.g. a trusted network)
-- ARGV[5]  the window, seconds
-- ARGV[6]  grace period, seconds (0: presence is not tracked)
-- Returns  {"missing"} when the room does not exist yet (the caller ticks once, retries);
--          {"limited", retry_after_s} when the address used up its joins;
--          {"closed", 0, frontier, epoch} when the room takes no new entries;
--          {"prequeue", 0, opens_at, epoch} for a pre-queue entry;
--          otherwise {mode, number, frontier, epoch}. In passthrough mode the frontier moves
--          to the new number at once: everyone before was already let through by the tick.

local cfg = redis.call('HMGET', KEYS[1], 'mode', 'epoch')
if not cfg[1] then
  return {'missing'}
end
local frontier = tonumber(redis.call('HGET', KEYS[2], 'frontier')) or 0
if cfg[1] == 'closed' then
  return {'closed', 0, frontier, cfg[2]}
end

local limit = tonumber(ARGV[4])
if limit > 0 then
  local used = redis.call('INCR', KEYS[12])
  if used == 1 then
    redis.call('EXPIRE', KEYS[12], ARGV[5])
  end
  if used > limit then
    return {'limited', redis.call('TTL', KEYS[12])}
  end
end

local now = room_now(ARGV[1])
local opens_at = freeze_draw_if_due(now)
if opens_at then
  redis.call('ZADD', KEYS[10], ARGV[3], ARGV[2])
  return {'prequeue', 0, tostring(opens_at), cfg[2]}
end

local number = redis.call('HINCRBY', KEYS[2], 'seq', 1)
local seen = seen_key(now, tonumber(ARGV[6]))
if seen then
  redis.call('SETBIT', seen, number, 1)
end
if cfg[1] == 'passthrough' then
  local admitted = tonumber(redis.call('HGET', KEYS[2], 'admitted')) or 0
  redis.call('HSET', KEYS[2], 'frontier', number, 'admitted', admitted + number - frontier)
  frontier = number
end
return {cfg[1], number, frontier, cfg[2]}
