-- join-2.lua: give an arriving visitor the next number in line.
--
-- KEYS[1]  qg:{room}:config   hash (see tick-3.lua)
-- KEYS[2]  qg:{room}:state    hash (see tick-3.lua)
-- Returns  {"missing"} when the room does not exist yet (the caller ticks once and retries),
--          {"closed", 0, frontier, epoch} when the room takes no new entries,
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
local number = redis.call('HINCRBY', KEYS[2], 'seq', 1)
if cfg[1] == 'passthrough' then
  frontier = number
  redis.call('HSET', KEYS[2], 'frontier', frontier)
end
return {cfg[1], number, frontier, cfg[2]}
