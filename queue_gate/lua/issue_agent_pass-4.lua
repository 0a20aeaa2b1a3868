-- issue_agent_pass-4.lua: record a call-centre agent's pass for one shift, within the
-- room's limit of active agent passes, and note it in the room's audit, in one step.
--
-- Agent passes are kept apart from visitors' passes: they neither count against the
-- room's cap on active sessions nor are ended by a booking (queue_gate/agents.py).
-- One script: two operators issuing the last free pass at once cannot both get it.
--
-- KEYS[1]  qg:{room}:config          hash: the room's configuration (must exist)
-- KEYS[2]  qg:{room}:agents          zset: agent pass id -> expiry (unix seconds)
-- KEYS[3]  qg:{room}:agent:<id>      hash: agent, issued_by, issued_at, expires_at, last_used
-- KEYS[4]  qg:{room}:audit           list: newest first, one JSON object per change
-- ARGV[1]  the agent pass id (its ticket id: "agent.<random>")
-- ARGV[2]  the agent's name
-- ARGV[3]  the operator issuing it
-- ARGV[4]  how long it is valid, seconds (one shift)
-- ARGV[5]  most agent passes active at once in the room
-- ARGV[6]  now in unix seconds from an injected clock, or "" for Redis TIME
-- ARGV[7]  the room's name (recorded in the audit entry)
-- ARGV[8]  most entries the audit list keeps
-- Returns  named fields: outcome, and what goes with it:
--            "issued", expires_at, active   recorded; expires then; active passes now;
--            "full", active                 the room's limit is reached;
--            "missing"                      no gate has created the room.
-- Clock    ARGV[6]: Redis TIME in production (the clock passes are checked by); an
--          injected clock in tests.
--!include _clock.lua

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'outcome', 'missing'}
end
local now = room_now(ARGV[6])
-- Expired passes free their place (their records expire by themselves).
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.6f', now))
local active = redis.call('ZCARD', KEYS[2])
if active >= tonumber(ARGV[5]) then
  return {'outcome', 'full', 'active', active}
end
local expires = math.floor(now + tonumber(ARGV[4]))
redis.call('ZADD', KEYS[2], expires, ARGV[1])
redis.call('HSET', KEYS[3], 'agent', ARGV[2], 'issued_by', ARGV[3],
           'issued_at', string.format('%.6f', now), 'expires_at', expires)
redis.call('EXPIREAT', KEYS[3], expires)
redis.call('LPUSH', KEYS[4], cjson.encode({
  at = tonumber(string.format('%.6f', now)), operator = ARGV[3], room = ARGV[7],
  field = 'agent_pass', old = cjson.null,
  new = {id = ARGV[1], agent = ARGV[2], expires_at = expires}}))
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[8]) - 1)
return {'outcome', 'issued', 'expires_at', expires, 'active', active + 1}
