-- apply_schedule-3.lua: apply every entry of the room's schedule that is due, once.
--
-- Every gate process runs this when its last tick said an entry is due; whichever comes
-- first takes the due entries off the schedule and applies them in the same step, so each
-- entry is applied exactly once however many processes try (the others find none due).
-- Entries are applied in time order, each as configure-2.lua applies an operator's change,
-- with an audit entry per changed field under the operator "schedule:<who scheduled it>".
--
-- KEYS[1]  qg:{room}:config     hash: the room's configuration (schedule_next and
--                                schedule_version are written here, see _schedule.lua)
-- KEYS[2]  qg:{room}:audit      list: newest first, one JSON object per changed field
-- KEYS[3]  qg:{room}:schedule   zset: entry (JSON: id, at, set, by) -> at (unix seconds);
--                                an entry's set maps config hash fields to text values, or
--                                to null for a field to remove
-- ARGV[1]  now in unix seconds from an injected clock (tests), or "" for Redis TIME
-- ARGV[2]  the room's name (recorded in each audit entry)
-- ARGV[3]  most entries the audit list keeps (older ones are dropped)
-- Returns  named fields: outcome, "applied" or "missing" (the room does not exist);
--          applied, how many entries this call applied (0: none was due, or another
--          process applied them first);
--          entries, a JSON array of {id, at, changed: [field names whose value changed]};
--          schedule_next, the earliest pending time ("" for none).
-- Clock    ARGV[1]: Redis TIME in production, the one clock every process agrees on, so an
--          entry is due at the same moment for all of them.
--!include _clock.lua
--!include _config_change.lua
--!include _schedule.lua

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'outcome', 'missing', 'applied', 0, 'entries', '[]', 'schedule_next', ''}
end
local now = room_now(ARGV[1])
local bound = string.format('%.6f', now)
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', bound)
local done = {}
for _, member in ipairs(due) do
  local ok, entry = pcall(cjson.decode, member)
  local changed = {}
  if ok and type(entry) == 'table' and type(entry.set) == 'table' then
    local names = {}
    for name in pairs(entry.set) do names[#names + 1] = name end
    table.sort(names)  -- the audit in one order whatever the JSON's
    local setting, clearing = {}, {}
    for _, name in ipairs(names) do
      local value = entry.set[name]
      if value == cjson.null then
        clearing[#clearing + 1] = name
      else
        setting[#setting + 1] = name
        setting[#setting + 1] = tostring(value)
      end
    end
    changed = change_config(setting, clearing, 'schedule:' .. tostring(entry.by or ''),
                            ARGV[2], now, tonumber(ARGV[3]))
    done[#done + 1] = {id = entry.id, at = entry.at, changed = changed}
  end
end
if #due > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', bound)
  schedule_changed()
else
  -- Nothing due, yet a gate was sent here: schedule_next was behind the list (its key
  -- removed by hand, say); set right, so the gates stop calling.
  schedule_next_from_list()
end
local next_at = redis.call('HGET', KEYS[1], 'schedule_next') or ''
local entries = '[]'
if #done > 0 then entries = cjson.encode(done) end
return {'outcome', 'applied', 'applied', #done, 'entries', entries,
        'schedule_next', next_at}
