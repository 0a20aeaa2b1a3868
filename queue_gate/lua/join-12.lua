-- join-12.lua: give n arriving visitors their places: the next numbers, or pre-queue
-- entries before the opening. Joins that reach one gate process together are sent in one
-- call (a round trip costs the gate more CPU than the script costs Redis); each is treated
-- exactly as if it had come alone, in the order given.
--
-- KEYS[1..11]  the room keys, see _room.lua
-- KEYS[12]     qg:{room}:joins:<window number>  hash: address -> joins in that window; one
--              hash per window (not a key per address) keeps a waiting visitor cheap
-- ARGV[1]      now in unix seconds from an injected clock, or "" for Redis TIME
-- ARGV[2]      seconds until the window ends (the hash expires then)
-- ARGV[3]      grace period, seconds (0: presence is not tracked)
-- ARGV[4+4(i-1)] .. ARGV[7+4(i-1)] for join i: the new ticket's id (kept in the pre-queue
--              before opening), its random draw key in [0, 1) (orders the pre-queue at
--              opening), the joins allowed per address and window (0: no limit), the
--              address (or its /64) to count against
-- Returns  {"missing"} when the room does not exist yet (the caller ticks once, retries);
--          otherwise four values per join, in order:
--          "limited", retry_after_s, 0, ""       the address used up its joins;
--          "closed", 0, frontier, epoch           the room takes no new entries;
--          "prequeue", 0, opens_at, epoch         a pre-queue entry;
--          mode, number, frontier, epoch          a place. In passthrough mode the frontier
--          moves to the new number at once: everyone before was already let through.

local cfg = redis.call('HMGET', KEYS[1], 'mode', 'epoch')
if not cfg[1] then
  return {'missing'}
end
local mode, epoch = cfg[1], cfg[2]
local frontier = tonumber(redis.call('HGET', KEYS[2], 'frontier')) or 0
local n = (#ARGV - 3) / 4
local results = {}

local function push(a, b, c, d)
  results[#results + 1] = a
  results[#results + 1] = b
  results[#results + 1] = c
  results[#results + 1] = d
end

if mode == 'closed' then
  for _ = 1, n do push('closed', 0, frontier, epoch) end
  return results
end

local now = room_now(ARGV[1])
local opens_at = freeze_draw_if_due(now)
local seen = nil
if not opens_at then
  seen = seen_key(now, tonumber(ARGV[3]))
end

local counted = false
for i = 1, n do
  local at = 4 * i
  local ticket_id, draw_key, limit, address = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2]),
                                             ARGV[at + 3]
  local used = 0
  if limit > 0 then
    used = redis.call('HINCRBY', KEYS[12], address, 1)
    counted = true
  end
  if limit > 0 and used > limit then
    push('limited', tonumber(ARGV[2]), 0, '')
  elseif opens_at then
    redis.call('ZADD', KEYS[10], draw_key, ticket_id)
    push('prequeue', 0, tostring(opens_at), epoch)
  else
    local number = redis.call('HINCRBY', KEYS[2], 'seq', 1)
    if seen then
      redis.call('SETBIT', seen, number, 1)
    end
    if mode == 'passthrough' then
      local admitted = tonumber(redis.call('HGET', KEYS[2], 'admitted')) or 0
      redis.call('HSET', KEYS[2], 'frontier', number, 'admitted', admitted + number - frontier)
      frontier = number
    end
    push(mode, number, frontier, epoch)
  end
end
if counted then
  redis.call('EXPIRE', KEYS[12], ARGV[2])
end
return results
