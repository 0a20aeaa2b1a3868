-- revoke_agent_pass-4.lua: end an agent pass before its shift is over, and note it in the
-- room's audit, in one step.
--
-- The pass's id leaves the active set at once: its next request is turned back by every
-- gate process (check_agent_pass-3.lua), and its place counts free for a new one.
--
-- KEYS[1]  qg:{room}:agents          zset: agent pass id -> expiry (unix seconds)
-- KEYS[2]  qg:{room}:agent:<id>      hash: the pass's record (removed)
-- KEYS[3]  qg:{room}:pfp:<id>        set of fingerprints that used it (removed)
-- KEYS[4]  qg:{room}:audit           list: newest first, one JSON object per change
-- ARGV[1]  agent pass id
-- ARGV[2]  the operator revoking it
-- ARGV[3]  now in unix seconds from an injected clock, or "" for Redis TIME
-- ARGV[4]  the room's name (recorded in the audit entry)
-- ARGV[5]  most entries the audit list keeps
-- Returns  named fields: outcome, "revoked" (with agent, the agent's name) or "missing"
--          (no such active pass: never issued, expired or revoked before).
-- Clock    ARGV[3]: Redis TIME in production; an injected clock in tests.
--!include _clock.lua

local now = room_now(ARGV[3])
local expires = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if not expires or expires <= now then
  return {'outcome', 'missing'}
end
local agent = redis.call('HGET', KEYS[2], 'agent') or ''
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('LPUSH', KEYS[4], cjson.encode({
  at = tonumber(string.format('%.6f', now)), operator = ARGV[2], room = ARGV[4],
  field = 'agent_pass', old = {id = ARGV[1], agent = agent, expires_at = math.floor(expires)},
  new = cjson.null}))
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[5]) - 1)
return {'outcome', 'revoked', 'agent', agent}
