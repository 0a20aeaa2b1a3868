-- notify_claim-6.lua: one round of the turn messages of a room, by any gate process.
--
-- Forgets what outlived its time, takes back claims whose process gave up or died (the
-- booking backend queues a message once per id, so asking again is safe), and claims the
-- pending tickets whose number is at most ARGV[2] (their turn is near) for this process.
-- A claimed ticket is not claimed by another process until the claim ends.
--
-- KEYS[1]  qg:{room}:notify:contacts  hash: ticket id -> contact JSON (see _notify.lua)
-- KEYS[2]  qg:{room}:notify:due       zset: ticket id -> number, waiting for the message
-- KEYS[3]  qg:{room}:notify:claims    zset: ticket id -> end of a claim
-- KEYS[4]  qg:{room}:notify:keep      zset: ticket id -> place kept until
-- KEYS[5]  qg:{room}:notify:forget    zset: ticket id -> when everything of it goes
-- KEYS[6]  qg:{room}:notify:numbers   zset: ticket id -> number
-- ARGV[1]  now in unix seconds from an injected clock, or "" for Redis TIME
-- ARGV[2]  the highest ticket number whose turn is near
-- ARGV[3]  how long a claim lasts, seconds
-- ARGV[4]  most tickets claimed (and forgotten) in one round
-- ARGV[5]  "" or a ticket number: also answer the numbers above it, up to ARGV[6], whose
--          place is kept now (for the presence marks: only those the frontier may reach
--          before the next marks matter, so a round never reads every kept place)
-- ARGV[6]  the highest number reported in kept
-- Returns  named fields: claimed, a JSON array of {t: ticket id, n: number, contact: the
--          contact JSON}; forgotten, how many tickets were forgotten; kept, a JSON array
--          of numbers whose place is kept ("[]" when ARGV[5] is "").
-- Clock    ARGV[1]: Redis TIME in production, the clock every gate process agrees on; an
--          injected clock in tests.
--!include _clock.lua
--!include _notify.lua

local now = room_now(ARGV[1])
local limit = tonumber(ARGV[4])

local forgotten = 0
for _, ticket in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, limit)) do
  notify_forget(ticket)
  forgotten = forgotten + 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)

-- Race: a process that claimed and then died (or failed to reach the backend) leaves its
-- claim; once it ends, the ticket is pending again.
for _, ticket in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, limit)) do
  redis.call('ZREM', KEYS[3], ticket)
  local number = redis.call('ZSCORE', KEYS[6], ticket)
  if number and redis.call('HEXISTS', KEYS[1], ticket) == 1 then
    redis.call('ZADD', KEYS[2], number, ticket)
  end
end

local claimed = {}
local until_ = now + tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #due, 2 do
  local ticket = due[i]
  redis.call('ZREM', KEYS[2], ticket)
  local contact = redis.call('HGET', KEYS[1], ticket)
  if contact then
    redis.call('ZADD', KEYS[3], until_, ticket)
    claimed[#claimed + 1] = {t = ticket, n = tonumber(due[i + 1]), contact = contact}
  end
end

local kept = '[]'
if ARGV[5] ~= '' then
  local numbers = {}
  local near = redis.call('ZRANGEBYSCORE', KEYS[6], '(' .. ARGV[5], ARGV[6], 'WITHSCORES')
  for i = 1, #near, 2 do
    local until_kept = redis.call('ZSCORE', KEYS[4], near[i])
    if until_kept and tonumber(until_kept) > now then
      numbers[#numbers + 1] = tonumber(near[i + 1])
    end
  end
  if #numbers > 0 then kept = cjson.encode(numbers) end
end

return {'claimed', #claimed > 0 and cjson.encode(claimed) or '[]', 'forgotten', forgotten,
        'kept', kept}
