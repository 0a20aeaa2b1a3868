-- configure-1.lua: change a room's live configuration, if the room exists, in one step.
--
-- One script rather than HSET and HDEL: every field changes at once (a tick never sees half
-- an operator's change), the room cannot vanish between the check and the write, and it
-- runs on a Redis Cluster, whose clients have no MULTI across commands.
--
-- KEYS[1]  qg:{room}:config   hash: rate_per_minute, mode, message, ...
-- ARGV[1]  how many fields to set, n
-- ARGV[2..2n+1]  name, value of each field to set
-- ARGV[2n+2..]   names of fields to delete
-- Returns  named fields: outcome, "changed" or "missing" (no gate has created the room).
-- Clock    none.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'outcome', 'missing'}
end
local setting = tonumber(ARGV[1])
if setting > 0 then
  local pairs_to_set = {}
  for i = 2, 2 * setting + 1 do
    pairs_to_set[#pairs_to_set + 1] = ARGV[i]
  end
  redis.call('HSET', KEYS[1], unpack(pairs_to_set))
end
if #ARGV > 2 * setting + 1 then
  local clearing = {}
  for i = 2 * setting + 2, #ARGV do
    clearing[#clearing + 1] = ARGV[i]
  end
  redis.call('HDEL', KEYS[1], unpack(clearing))
end
return {'outcome', 'changed'}
