-- check_agent_pass-3.lua: is this agent pass on record, unexpired and not revoked, and is
-- it used from the agent's own browser?
--
-- As a visitor's pass (check_pass-3.lua), an agent pass is bound to the first browsers that
-- use it (a hash of network prefix and user agent): copied to someone else's browser it is
-- refused. Each use is noted, so the operators' list shows when a pass was last used.
--
-- KEYS[1]  qg:{room}:agents          zset: agent pass id -> expiry (unix seconds)
-- KEYS[2]  qg:{room}:agent:<id>      hash: the pass's record (last_used is set here)
-- KEYS[3]  qg:{room}:pfp:<id>        set of fingerprints that used this pass
-- ARGV[1]  agent pass id
-- ARGV[2]  fingerprint of this request
-- ARGV[3]  most fingerprints per agent pass
-- ARGV[4]  now in unix seconds from an injected clock, or "" for Redis TIME
-- Returns  named fields: outcome, and the field that goes with it:
--            "ok", expires_at     valid until then (unix seconds);
--            "ended"              expired, revoked or never issued;
--            "shared", browsers   a new fingerprint would exceed the limit.
-- Clock    ARGV[4]: Redis TIME in production, the clock agent passes are issued by; an
--          injected clock in tests.
--!include _clock.lua

local now = room_now(ARGV[4])
local expires = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if not expires or expires <= now then
  return {'outcome', 'ended'}
end
if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 0 then
  local count = redis.call('SCARD', KEYS[3])
  if count >= tonumber(ARGV[3]) then
    return {'outcome', 'shared', 'browsers', count}
  end
  redis.call('SADD', KEYS[3], ARGV[2])
  redis.call('EXPIREAT', KEYS[3], math.ceil(expires))
end
redis.call('HSET', KEYS[2], 'last_used', string.format('%.6f', now))
return {'outcome', 'ok', 'expires_at', math.floor(expires)}
