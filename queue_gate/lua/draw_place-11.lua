-- draw_place-11.lua: the number a pre-queue ticket drew at opening.
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
-- ARGV[2]   the opening time written in the ticket (unix seconds)
-- ARGV[3]   now in unix seconds from an injected clock, or "" for Redis TIME
-- Returns   named fields: outcome, and for "drawn" the fields number and draw_base:
--             "drawn", number, draw_base   the draw for that opening has happened;
--             "prequeue"                   it has not yet;
--             "stale"                      the ticket is from another opening or not in
--                                          the draw.
-- Clock     ARGV[3]: Redis TIME in production (the first script after the opening, in
--           any process, freezes the draw); an injected clock in tests.
--!include _clock.lua
--!include _room.lua

local now = room_now(ARGV[3])
freeze_draw_if_due(now)
local st = redis.call('HMGET', KEYS[2], 'draw_opens_at', 'draw_base')
if tonumber(st[1]) == tonumber(ARGV[2]) then
  local rank = redis.call('ZRANK', KEYS[11], ARGV[1])
  if rank then
    return {'outcome', 'drawn', 'number', tonumber(st[2]) + rank + 1,
            'draw_base', tonumber(st[2])}
  end
  return {'outcome', 'stale'}
end
if tonumber(redis.call('HGET', KEYS[1], 'opens_at')) == tonumber(ARGV[2])
    and redis.call('ZSCORE', KEYS[10], ARGV[1]) then
  return {'outcome', 'prequeue'}
end
return {'outcome', 'stale'}
