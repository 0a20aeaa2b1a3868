-- set_schedule-3.lua: replace a room's pending schedule, if the room exists, and record the
-- replacement in the room's audit as one change of the field "schedule", in one step.
--
-- KEYS[1]  qg:{room}:config     hash: the room's configuration (schedule_next and
--                                schedule_version are written here, see _schedule.lua)
-- KEYS[2]  qg:{room}:audit      list: newest first, one JSON object per change
-- KEYS[3]  qg:{room}:schedule   zset: entry (JSON: id, at, set, by) -> at (unix seconds)
-- ARGV[1]  the operator's name
-- ARGV[2]  now in unix seconds from an injected clock (tests), or "" for Redis TIME
-- ARGV[3]  the room's name (recorded in the audit entry)
-- ARGV[4]  most entries the audit list keeps (older ones are dropped)
-- ARGV[5]  the schedule_version the caller read the list at, "" for any: a list changed
--          since (by another operator) is left alone ("conflict")
-- ARGV[6..] at, entry JSON of each new entry (none: the schedule is cleared)
-- Returns  named fields: outcome, "set", "conflict" or "missing" (no gate has created the
--          room);
--          changed, 1 if the pending list was not already the same (0: nothing recorded);
--          schedule_next, the earliest pending time ("" for none).
-- Clock    ARGV[2]: Redis TIME in production (the audit's time, as configure-2.lua's).
--!include _clock.lua
--!include _schedule.lua

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'outcome', 'missing', 'changed', 0, 'schedule_next', ''}
end
if ARGV[5] ~= '' and
    (tonumber(redis.call('HGET', KEYS[1], 'schedule_version')) or 0) ~= tonumber(ARGV[5]) then
  return {'outcome', 'conflict', 'changed', 0, 'schedule_next', ''}
end
local now = room_now(ARGV[2])
local old = redis.call('ZRANGE', KEYS[3], 0, -1)
local new = {}
redis.call('DEL', KEYS[3])
for i = 6, #ARGV, 2 do
  redis.call('ZADD', KEYS[3], ARGV[i], ARGV[i + 1])
  new[#new + 1] = ARGV[i + 1]
end
local changed = 0
if #old > 0 or #new > 0 then
  changed = 1
  schedule_changed()
  -- Entries are JSON objects: joined with commas in brackets they are a JSON array.
  redis.call('LPUSH', KEYS[2], cjson.encode({
    at = tonumber(string.format('%.6f', now)), operator = ARGV[1], room = ARGV[3],
    field = 'schedule', old = '[' .. table.concat(old, ',') .. ']',
    new = '[' .. table.concat(new, ',') .. ']'}))
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
end
return {'outcome', 'set', 'changed', changed,
        'schedule_next', redis.call('HGET', KEYS[1], 'schedule_next') or ''}
