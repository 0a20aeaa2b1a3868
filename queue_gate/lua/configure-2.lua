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

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'outcome', 'missing', 'changed', '[]'}
end
local now = room_now(ARGV[2])
local setting = tonumber(ARGV[5])
local first_clear = 2 * setting + 6
local changes = {}  -- field -> {old, new}, in the order given
local order = {}

local function note(field, new)
  local old = redis.call('HGET', KEYS[1], field)
  if old ~= new then
    order[#order + 1] = field
    changes[field] = {old, new}
  end
end

if setting > 0 then
  local pairs_to_set = {}
  for i = 6, first_clear - 1, 2 do
    note(ARGV[i], ARGV[i + 1])
    pairs_to_set[#pairs_to_set + 1] = ARGV[i]
    pairs_to_set[#pairs_to_set + 1] = ARGV[i + 1]
  end
  redis.call('HSET', KEYS[1], unpack(pairs_to_set))
end
if #ARGV >= first_clear then
  local clearing = {}
  for i = first_clear, #ARGV do
    note(ARGV[i], false)
    clearing[#clearing + 1] = ARGV[i]
  end
  redis.call('HDEL', KEYS[1], unpack(clearing))
end

local at = string.format('%.6f', now)
for _, field in ipairs(order) do
  local change = changes[field]
  redis.call('LPUSH', KEYS[2], cjson.encode({
    at = tonumber(at), operator = ARGV[1], room = ARGV[3], field = field,
    old = change[1] or cjson.null, new = change[2] or cjson.null}))
end
if #order > 0 then
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
end
local changed = '[]'
if #order > 0 then changed = cjson.encode(order) end
return {'outcome', 'changed', 'changed', changed}
