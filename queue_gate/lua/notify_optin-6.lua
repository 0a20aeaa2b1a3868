-- notify_optin-6.lua: a waiting visitor asks for a message when their turn is near.
--
-- Their contact is kept only until the message is sent, they are admitted or leave, and
-- at the latest until ARGV[5] (the ticket's lifetime); their place is kept without polling
-- until the message plus a grace period. A visitor whose message went out already is not
-- sent another one.
--
-- KEYS[1]  qg:{room}:notify:contacts  hash: ticket id -> contact JSON (see _notify.lua)
-- KEYS[2]  qg:{room}:notify:due       zset: ticket id -> number, waiting for the message
-- KEYS[3]  qg:{room}:notify:claims    zset: ticket id -> end of a claim
-- KEYS[4]  qg:{room}:notify:keep      zset: ticket id -> place kept until
-- KEYS[5]  qg:{room}:notify:forget    zset: ticket id -> when everything of it goes
-- KEYS[6]  qg:{room}:notify:numbers   zset: ticket id -> number
-- ARGV[1]  ticket id
-- ARGV[2]  ticket number
-- ARGV[3]  contact JSON
-- ARGV[4]  now in unix seconds from an injected clock, or "" for Redis TIME
-- ARGV[5]  how long the contact may be kept at most, seconds (the ticket's lifetime)
-- Returns  named fields: outcome, "saved" (new or replaced) or "sent" (the message went
--          out already: nothing stored).
-- Clock    ARGV[4]: Redis TIME in production, the clock every gate process agrees on; an
--          injected clock in tests.
--!include _clock.lua
--!include _notify.lua

local now = room_now(ARGV[4])
local ticket = ARGV[1]
if redis.call('ZSCORE', KEYS[6], ticket) and redis.call('HEXISTS', KEYS[1], ticket) == 0 then
  return {'outcome', 'sent'}
end
local lifetime = tonumber(ARGV[5])
local forget_at = now + lifetime
redis.call('HSET', KEYS[1], ticket, ARGV[3])
-- A claimed ticket (being sent now) keeps its claim; the new contact is read next time.
if not redis.call('ZSCORE', KEYS[3], ticket) then
  redis.call('ZADD', KEYS[2], ARGV[2], ticket)
end
redis.call('ZADD', KEYS[4], forget_at, ticket)
redis.call('ZADD', KEYS[5], forget_at, ticket)
redis.call('ZADD', KEYS[6], ARGV[2], ticket)
-- A backstop: if no gate runs any more, Redis drops it all within a ticket's lifetime.
for i = 1, 6 do
  local ttl = redis.call('TTL', KEYS[i])
  if ttl < lifetime then
    redis.call('EXPIRE', KEYS[i], math.ceil(lifetime) + 60)
  end
end
return {'outcome', 'saved'}
