-- check_pass-3.lua: is this pass still on record, and not spread over too many browsers?
--
-- A pass is meant for the visitor it was issued to. Each request names a fingerprint of
-- its browser (a hash of the network prefix and the user agent); a pass may be used from
-- a few (a phone moving from Wi-Fi to mobile data, a relative's laptop), not from many.
--
-- A pass issued before Redis lost the room has no record in the re-created room: its
-- signature (checked by the gate) and its expiry stand, and it is recorded again, if it
-- could have been issued before the loss (it expires within one session of it). Between
-- the loss and the room's re-creation (no state at all) the signed pass stands as it is.
--
-- KEYS[1]  qg:{room}:passes          zset: ticket id -> pass expiry (unix seconds)
-- KEYS[2]  qg:{room}:pfp:<ticket id> set of fingerprints that used this pass
-- KEYS[3]  qg:{room}:state           hash: reseeded_at, when the room was re-created
-- ARGV[1]  ticket id
-- ARGV[2]  fingerprint of this request
-- ARGV[3]  most fingerprints per pass
-- ARGV[4]  now in unix seconds from an injected clock, or "" for Redis TIME
-- ARGV[5]  the pass's signed expiry (unix seconds)
-- ARGV[6]  the room's session length, seconds
-- Returns  named fields: outcome, and the field that goes with it:
--            "ok", expires_at     the pass is valid until then (unix seconds);
--            "ended"              expired, ended early or never issued;
--            "shared", browsers   a new fingerprint would exceed the limit (browsers: how
--                                 many used it already).
-- Clock    ARGV[4]: Redis TIME in production, the clock passes are issued by; an
--          injected clock in tests.
--!include _clock.lua

local now = room_now(ARGV[4])
local expires = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if not expires and redis.call('EXISTS', KEYS[3]) == 0 then
  -- The room is gone and not yet re-created: as when Redis does not answer, the signature
  -- and expiry (checked by the gate) stand.
  if tonumber(ARGV[5]) > now then
    return {'outcome', 'ok', 'expires_at', math.floor(tonumber(ARGV[5]))}
  end
  return {'outcome', 'ended'}
end
if not expires then
  local reseeded = tonumber(redis.call('HGET', KEYS[3], 'reseeded_at'))
  local signed = tonumber(ARGV[5])
  if reseeded and signed > now and signed <= reseeded + tonumber(ARGV[6]) then
    redis.call('ZADD', KEYS[1], 'NX', signed, ARGV[1])
    expires = signed
  end
end
if not expires or expires <= now then
  return {'outcome', 'ended'}
end
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 0 then
  local count = redis.call('SCARD', KEYS[2])
  if count >= tonumber(ARGV[3]) then
    return {'outcome', 'shared', 'browsers', count}
  end
  redis.call('SADD', KEYS[2], ARGV[2])
  redis.call('EXPIREAT', KEYS[2], math.ceil(expires))
end
return {'outcome', 'ok', 'expires_at', math.floor(expires)}
