-- draw_place-11.lua: the number a pre-queue ticket drew at opening.
--
-- KEYS     the room keys, see _room.lua
-- ARGV[1]  ticket id
-- ARGV[2]  the opening time written in the ticket (unix seconds)
-- ARGV[3]  now in unix seconds from an injected clock, or "" for Redis TIME
-- Returns  {"drawn", number, draw_base} once the draw for that opening has happened,
--          {"prequeue", 0, 0} while it has not,
--          {"stale", 0, 0} when the ticket is from another opening or not in the draw.

local now = room_now(ARGV[3])
freeze_draw_if_due(now)
local st = redis.call('HMGET', KEYS[2], 'draw_opens_at', 'draw_base')
if tonumber(st[1]) == tonumber(ARGV[2]) then
  local rank = redis.call('ZRANK', KEYS[11], ARGV[1])
  if rank then
    return {'drawn', tonumber(st[2]) + rank + 1, tonumber(st[2])}
  end
  return {'stale', 0, 0}
end
if tonumber(redis.call('HGET', KEYS[1], 'opens_at')) == tonumber(ARGV[2])
    and redis.call('ZSCORE', KEYS[10], ARGV[1]) then
  return {'prequeue', 0, 0}
end
return {'stale', 0, 0}
