-- notify_done-6.lua: what became of a claimed ticket's message.
--
-- "sent" and "failed" (the backend refused the contact for good): the contact is deleted
-- at once (it is needed no more), the place is kept until ARGV[4], and everything of the
-- ticket is forgotten then. "retry": the claim is held until ARGV[4] and then the ticket
-- is pending again (notify_claim-6.lua).
--
-- KEYS[1]  qg:{room}:notify:contacts  hash: ticket id -> contact JSON (see _notify.lua)
-- KEYS[2]  qg:{room}:notify:due       zset: ticket id -> number, waiting for the message
-- KEYS[3]  qg:{room}:notify:claims    zset: ticket id -> end of a claim
-- KEYS[4]  qg:{room}:notify:keep      zset: ticket id -> place kept until
-- KEYS[5]  qg:{room}:notify:forget    zset: ticket id -> when everything of it goes
-- KEYS[6]  qg:{room}:notify:numbers   zset: ticket id -> number
-- ARGV[1]  ticket id
-- ARGV[2]  sent | failed | retry
-- ARGV[3]  now in unix seconds from an injected clock, or "" for Redis TIME
-- ARGV[4]  sent, failed: the place is kept until then; retry: try again then (unix s)
-- Returns  named fields: outcome, ARGV[2], or "gone" when the ticket was no longer claimed
--          (forgotten meanwhile: admitted, left or expired).
-- Clock    ARGV[3]: Redis TIME in production; an injected clock in tests (unused but for
--          the same arguments everywhere).
--!include _clock.lua
--!include _notify.lua

local ticket = ARGV[1]
if not redis.call('ZSCORE', KEYS[3], ticket) then
  return {'outcome', 'gone'}
end
local at = tonumber(ARGV[4])
if ARGV[2] == 'retry' then
  redis.call('ZADD', KEYS[3], at, ticket)
  return {'outcome', 'retry'}
end
redis.call('ZREM', KEYS[3], ticket)
redis.call('ZREM', KEYS[2], ticket)
redis.call('HDEL', KEYS[1], ticket)
redis.call('ZADD', KEYS[4], at, ticket)
redis.call('ZADD', KEYS[5], math.max(at, room_now(ARGV[3])), ticket)
return {'outcome', ARGV[2]}
