-- _config_change.lua: change fields of a room's config hash and record each field whose
-- value changed in the room's audit list, in the calling script's step. Included by
-- configure-2.lua (operators' changes) and apply_schedule-3.lua (scheduled changes).
--
-- Both scripts take the same first two keys:
--   KEYS[1]  qg:{room}:config   hash: rate_per_minute, mode, message, ...
--   KEYS[2]  qg:{room}:audit    list: newest first, one JSON object per changed field:
--                               at (unix seconds), operator, room, field, old, new (null
--                               for a field that was unset / is removed)

-- Set `setting` (a flat name, value list) and delete the fields named in `clearing`; record
-- what changed under `operator` at time `now`, keeping the newest `keep` audit entries.
-- Returns the names of the fields whose value changed, in the order given.
local function change_config(setting, clearing, operator, room, now, keep)
  local changes = {}  -- field -> {old, new}
  local order = {}
  local function note(field, new)
    local old = redis.call('HGET', KEYS[1], field)
    if old ~= new and changes[field] == nil then
      order[#order + 1] = field
      changes[field] = {old, new}
    elseif changes[field] ~= nil then
      changes[field][2] = new
    end
  end
  for i = 1, #setting, 2 do
    note(setting[i], setting[i + 1])
  end
  if #setting > 0 then
    redis.call('HSET', KEYS[1], unpack(setting))
  end
  for _, field in ipairs(clearing) do
    note(field, false)
  end
  if #clearing > 0 then
    redis.call('HDEL', KEYS[1], unpack(clearing))
  end
  local at = tonumber(string.format('%.6f', now))
  for _, field in ipairs(order) do
    local change = changes[field]
    redis.call('LPUSH', KEYS[2], cjson.encode({
      at = at, operator = operator, room = room, field = field,
      old = change[1] or cjson.null, new = change[2] or cjson.null}))
  end
  if #order > 0 then
    redis.call('LTRIM', KEYS[2], 0, keep - 1)
  end
  return order
end
