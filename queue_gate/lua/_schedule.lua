-- _schedule.lua: helpers of the room's schedule, shared by set_schedule-3.lua and
-- apply_schedule-3.lua, which take the same keys:
--   KEYS[1]  qg:{room}:config     hash: the room's configuration; the schedule keeps two
--                                  fields there, which every tick reads with the rest:
--                                  schedule_next (the earliest entry's time, absent when
--                                  none is pending) and schedule_version (counts changes of
--                                  the pending list, so gates know when to read it again)
--   KEYS[2]  qg:{room}:audit      list: the room's audit (written by the scripts, not here)
--   KEYS[3]  qg:{room}:schedule   zset: entry (JSON: id, at, set, by) -> at (unix seconds)

-- The earliest pending time into the config hash (removed when nothing is pending).
local function schedule_next_from_list()
  local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  if first[2] then
    redis.call('HSET', KEYS[1], 'schedule_next', first[2])
  else
    redis.call('HDEL', KEYS[1], 'schedule_next')
  end
end

-- After the pending list changed: its earliest time, and version + 1.
local function schedule_changed()
  schedule_next_from_list()
  return redis.call('HINCRBY', KEYS[1], 'schedule_version', 1)
end
