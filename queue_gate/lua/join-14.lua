-- join-14.lua: give n arriving visitors their places: the next numbers, or pre-queue
-- entries before the opening. Joins that reach one gate process together are sent in one
-- call (a round trip costs the gate more CPU than the script costs Redis); each is treated
-- exactly as if it had come alone, in the order given.
--
-- KEYS[1]   qg:{room}:config     hash: the room's configuration (fields: see _room.lua)
-- KEYS[2]   qg:{room}:state      hash: the line's counters, credit, last tick, last draw
-- KEYS[3]   qg:{room}:passes     zset: ticket id -> pass expiry (unix seconds)
-- KEYS[4]   qg:{room}:seen:0     bitmap: numbers seen in one time bucket (three take turns)
-- KEYS[5]   qg:{room}:seen:1     bitmap: the same, the next bucket
-- KEYS[6]   qg:{room}:seen:2     bitmap: the same, the bucket after
-- KEYS[7]   qg:{room}:skipped    bitmap: numbers passed over while away
-- KEYS[8]   qg:{room}:returners  list: passed-over numbers that came back, admitted first
-- KEYS[9]   qg:{room}:requeued   bitmap: numbers that are (or were) in the returners list
-- KEYS[10]  qg:{room}:prequeue   zset: ticket id -> random draw key, before opening
-- KEYS[11]  qg:{room}:drawn      zset: the last frozen pre-queue (rank = place in the draw)
-- KEYS[12]  qg:{room}:joins:<window number>  hash: address -> joins in that window; one
--           hash per window (not a key per address) keeps a waiting visitor cheap
-- KEYS[13]  qg:{room}:challenges  zset: id of a used proof-of-work challenge (or waited
--           token) -> its expiry (unix seconds): a challenge opens the door once
-- KEYS[14]  qg:{room}:draws      hash: address -> pre-queue entries for the coming opening,
--           and the field "opens_at" naming that opening (another opening starts anew)
-- ARGV[1]   now in unix seconds from an injected clock, or "" for Redis TIME
-- ARGV[2]   seconds until the window ends (the hash expires then)
-- ARGV[3]   grace period, seconds (0: presence is not tracked)
-- ARGV[4..] seven per join, join i starting at ARGV[7i - 3]: the new ticket's id (kept in
--           the pre-queue before opening), its random draw key in [0, 1) (orders the
--           pre-queue at opening), the joins allowed per address and window (0: no limit),
--           the address (or its /64) to count against, the pre-queue entries (draws)
--           allowed per address and opening (0: no limit), the id of the solved challenge
--           ("" for none) and its expiry (unix seconds; 0 for none)
-- Returns   named fields: outcome "missing" and joins "" when the room does not exist yet
--           (the caller ticks once and retries); otherwise outcome "joined" and joins, a
--           JSON array with one object per join, in order, holding the fields that apply:
--             {"mode": "challenge_used"}                 its challenge was used before;
--             {"mode": "limited", "retry_after_s"}       the address used up its joins;
--             {"mode": "draw_limited", "retry_after_s"}  the address used up its draws
--                                                        (retry_after_s: until opening);
--             {"mode": "closed", "frontier", "epoch"}    the room takes no new entries;
--             {"mode": "prequeue", "opens_at", "epoch"}  a pre-queue entry;
--             {"mode", "number", "frontier", "epoch"}    a place, mode being the room's
--           (queue, paused or passthrough). In passthrough mode the frontier moves to the
--           new number at once: everyone before was already let through.
-- Clock     ARGV[1]: Redis TIME in production (the draw's opening and the presence
--           buckets must be the same for every process); an injected clock in tests. The
--           join limit's windows are counted by the caller's clock (see store.py).
--!include _clock.lua
--!include _room.lua

local cfg = redis.call('HMGET', KEYS[1], 'mode', 'epoch')
if not cfg[1] then
  return {'outcome', 'missing', 'joins', ''}
end
local mode, epoch = cfg[1], cfg[2]
local frontier = tonumber(redis.call('HGET', KEYS[2], 'frontier')) or 0
local n = (#ARGV - 3) / 7
local joins = {}

if mode == 'closed' then
  for i = 1, n do joins[i] = {mode = 'closed', frontier = frontier, epoch = epoch} end
  return {'outcome', 'joined', 'joins', cjson.encode(joins)}
end

local now = room_now(ARGV[1])
local opens_at = freeze_draw_if_due(now)
local seen = nil
if not opens_at then
  seen = seen_index(now, tonumber(ARGV[3]))
end

-- Used challenges are kept until a minute after they expire (processes' clocks differ).
local challenges_trimmed = false
local function challenge_fresh(id, expires_at)
  if not challenges_trimmed then
    redis.call('ZREMRANGEBYSCORE', KEYS[13], '-inf', now - 60)
    challenges_trimmed = true
  end
  return redis.call('ZADD', KEYS[13], 'NX', expires_at, id) == 1
end

-- Pre-queue entries of an address for this opening: a count from another opening restarts.
local draws_opening_checked = false
local function draw_allowed(address, draw_limit)
  if not draws_opening_checked then
    if tonumber(redis.call('HGET', KEYS[14], 'opens_at')) ~= opens_at then
      redis.call('DEL', KEYS[14])
      redis.call('HSET', KEYS[14], 'opens_at', opens_at)
    end
    -- Gone an hour after the opening (moved by later entries if the opening moves).
    redis.call('EXPIRE', KEYS[14], math.max(math.ceil(opens_at - now), 0) + 3600)
    draws_opening_checked = true
  end
  return redis.call('HINCRBY', KEYS[14], 'a:' .. address, 1) <= draw_limit
end

local counted = false
for i = 1, n do
  local at = 7 * i - 3
  local ticket_id, draw_key, limit, address = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2]),
                                             ARGV[at + 3]
  local draw_limit, challenge = tonumber(ARGV[at + 4]), ARGV[at + 5]
  local used = 0
  local fresh = challenge == '' or challenge_fresh(challenge, tonumber(ARGV[at + 6]))
  if fresh and limit > 0 then
    used = redis.call('HINCRBY', KEYS[12], address, 1)
    counted = true
  end
  if not fresh then
    joins[i] = {mode = 'challenge_used'}
  elseif limit > 0 and used > limit then
    joins[i] = {mode = 'limited', retry_after_s = tonumber(ARGV[2])}
  elseif opens_at and draw_limit > 0 and not draw_allowed(address, draw_limit) then
    joins[i] = {mode = 'draw_limited', retry_after_s = math.max(math.ceil(opens_at - now), 1)}
  elseif opens_at then
    redis.call('ZADD', KEYS[10], draw_key, ticket_id)
    joins[i] = {mode = 'prequeue', opens_at = opens_at, epoch = epoch}
  else
    local number = redis.call('HINCRBY', KEYS[2], 'seq', 1)
    if seen then
      redis.call('SETBIT', KEYS[seen], number, 1)
    end
    if mode == 'passthrough' then
      local admitted = tonumber(redis.call('HGET', KEYS[2], 'admitted')) or 0
      redis.call('HSET', KEYS[2], 'frontier', number, 'admitted', admitted + number - frontier)
      frontier = number
    end
    joins[i] = {mode = mode, number = number, frontier = frontier, epoch = epoch}
  end
end
if counted then
  redis.call('EXPIRE', KEYS[12], ARGV[2])
end
return {'outcome', 'joined', 'joins', cjson.encode(joins)}
