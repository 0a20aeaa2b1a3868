-- configure-2.lua: change a room's live configuration, if the room exists, in one step,
-- and record each field that changed in the room's audit list in the same step.
--
-- One script rather than HSET and HDEL: every field changes at once (a tick never sees half
-- an operator's change), the room cannot vanish between the check and the write, the audit
-- holds exactly the changes that were made (old and new value read where they are written),
-- and it runs on a Redis Cluster, whose clients have no MULTI across commands (the audit
-- list has the room's hash tag: one slot).
--
-- KEYS[1]  qg:{room}:config   hash: rate_per_minute, mode, message, ...
-- KEYS[2]  qg:{room}:audit    list: newest first, one JSON object per changed field:
--                             at (unix seconds), operator, room, field, old, new (null for
--                             a field that was unset / is removed)
-- ARGV[1]  the operator's name
-- ARGV[2]  now in unix seconds from an injected clock (tests), or "" for Redis TIME
-- ARGV[3]  the room's name (recorded in each entry)
-- ARGV[4]  most entries the audit list keeps (older ones are dropped)
-- ARGV[5]  how many fields to set, n
-- ARGV[6..2n+5]  name, value of each field to set
-- ARGV[2n+6..]   names of fields to delete
-- Returns  named fields: outcome, "changed" or "missing" (no gate has created the room);
--          changed, a JSON array of the names of the fields whose value changed.
-- Clock    ARGV[2]: Redis TIME in production (every process's entries in one order).
--!include _clock.lua
--!include _config_change.lua

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'outcome', 'missing', 'changed', '[]'}
end
local now = room_now(ARGV[2])
local first_clear = 2 * tonumber(ARGV[5]) + 6
local setting, clearing = {}, {}
for i = 6, first_clear - 1 do
  setting[#setting + 1] = ARGV[i]
end
for i = first_clear, #ARGV do
  clearing[#clearing + 1] = ARGV[i]
end
local order = change_config(setting, clearing, ARGV[1], ARGV[3], now, tonumber(ARGV[4]))
local changed = '[]'
if #order > 0 then changed = cjson.encode(order) end
return {'outcome', 'changed', 'changed', changed}
