-- tick-11.lua: admit the next visitors at the configured rate, and report the room.
--
-- Every gate process calls this a few times a second. The credit it adds depends only on
-- the time elapsed since the previous tick of any process, so the number admitted per
-- minute is the configured rate whether one or twenty processes tick. Its answer is each
-- process's snapshot of the room, so status polls need no round trip of their own; the
-- numbers those polls saw since the last tick ride along and are marked present here.
--
-- KEYS[1]   qg:{room}:config     hash: the room's configuration (fields: see _room.lua)
-- KEYS[2]   qg:{room}:state      hash: the line's counters, credit, last tick, last draw,
--                                  the adaptive rate (written by health-3.lua)
-- KEYS[3]   qg:{room}:passes     zset: ticket id -> pass expiry (unix seconds)
-- KEYS[4]   qg:{room}:seen:0     bitmap: numbers seen in one time bucket (three take turns)
-- KEYS[5]   qg:{room}:seen:1     bitmap: the same, the next bucket
-- KEYS[6]   qg:{room}:seen:2     bitmap: the same, the bucket after
-- KEYS[7]   qg:{room}:skipped    bitmap: numbers passed over while away
-- KEYS[8]   qg:{room}:returners  list: passed-over numbers that came back, admitted first
-- KEYS[9]   qg:{room}:requeued   bitmap: numbers that are (or were) in the returners list
-- KEYS[10]  qg:{room}:prequeue   zset: ticket id -> random draw key, before opening
-- KEYS[11]  qg:{room}:drawn      zset: the last frozen pre-queue (rank = place in the draw)
-- ARGV[1]   now in unix seconds from an injected clock (tests), or "" for Redis TIME
-- ARGV[2]   largest elapsed time credited at once, seconds: after every gate was down the
--           backend gets the normal rate, not a burst of the whole outage
-- ARGV[3]   how long spent passes are remembered, seconds (the ticket lifetime)
-- ARGV[4]   grace period, seconds: a visitor not seen for that long is passed over without
--           using an admission (0 turns this off)
-- ARGV[5]   how long after the draw its numbers count as present without a poll, seconds
-- ARGV[6]   most numbers examined in one tick (bounds the script's run time)
-- ARGV[7]   rate_per_minute          | used only when the room does not exist: a room is
-- ARGV[8]   mode                     | created by its first tick, from the settings, or
-- ARGV[9]   message                  | from the caller's last snapshot if Redis lost it
-- ARGV[10]  session_minutes          | (same epoch, the operators' configuration)
-- ARGV[11]  epoch                    |
-- ARGV[12]  seq of the caller's last snapshot, 0 for none   | in a room of that epoch
-- ARGV[13]  frontier of the caller's last snapshot          | neither may be behind them
-- ARGV[14]  max_active               | (creation, as ARGV[7..11])
-- ARGV[15]  opens_at, "" for none    |
-- ARGV[16]  margin added to a seq found behind: joins the caller did not see
-- ARGV[17]  n: how many more settings follow as field, value pairs (creation, as
--           ARGV[7..11]: challenge_bits, rate_mode, rate_min, rate_max, any the room
--           holds), in ARGV[18 .. 17 + 2n]
-- ARGV[18 + 2n ..] ticket numbers seen by this process since its last tick
-- Returns   named fields as one JSON object (cjson), each always present ("" for none):
--           the configuration: mode, rate_per_minute, message, session_minutes, epoch,
--             max_active, opens_at (unix seconds, or "" when no opening is set);
--           the line: seq (numbers given), frontier (numbers admitted or passed over),
--             admitted, skipped, prequeue_size;
--           passes: passes_active, passes_issued, passes_ended;
--           the last draw: draw_opens_at ("" before the first), draw_base, draw_count;
--           now: the time this tick used (unix seconds, six decimals);
--           reseeded_at: when the room was last re-created from a gate's snapshot ("" never);
--           challenge_bits: the proof of work the operators set (0: none);
--             challenge_bits_max, challenge_join_rate: how it may rise with the join rate;
--             challenge_bits_now: the proof of work asked of new visitors now (0: none),
--             join_rate: joins per minute, measured over the last JOIN_RATE_WINDOW_S.
--           routes: the requests the room covers, as JSON (queue_gate/rooms.py; "" none).
--           adaptive admission: rate_mode (fixed | adaptive), rate_min, rate_max,
--             effective_rate (what this tick admitted at), backend (up | down; "" when fixed).
--           the schedule (_schedule.lua): schedule_next (the earliest pending entry's time,
--             "" for none: the gate runs apply_schedule-3.lua once it is due),
--             schedule_version (changes whenever the pending list does).
-- Clock     ARGV[1]: Redis TIME in production, so every process credits the same elapsed
--           time; an injected clock in tests.
--!include _clock.lua
--!include _room.lua

local now = room_now(ARGV[1])
local grace = tonumber(ARGV[4])

if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'rate_per_minute', ARGV[7], 'mode', ARGV[8], 'message', ARGV[9],
             'session_minutes', ARGV[10], 'epoch', ARGV[11], 'max_active', ARGV[14])
  if ARGV[15] ~= '' then
    redis.call('HSET', KEYS[1], 'opens_at', ARGV[15])
  end
  for i = 18, 17 + 2 * (tonumber(ARGV[17]) or 0), 2 do
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
local seen_from = 18 + 2 * (tonumber(ARGV[17]) or 0)

-- Redis lost the room, or a promoted replica lacks its last writes: the numbers the caller
-- saw handed out stay taken (plus a margin for those it did not see), so they stay ahead of
-- newcomers, and the numbers it saw admitted stay admitted.
local floor_seq = tonumber(ARGV[12]) or 0
if floor_seq > 0 and redis.call('HGET', KEYS[1], 'epoch') == ARGV[11] then
  local line = redis.call('HMGET', KEYS[2], 'seq', 'frontier')
  if (tonumber(line[1]) or 0) < floor_seq then
    redis.call('HSET', KEYS[2], 'seq', floor_seq + tonumber(ARGV[16]),
               'reseeded_at', string.format('%.6f', now))
  end
  if (tonumber(line[2]) or 0) < tonumber(ARGV[13]) then
    redis.call('HSET', KEYS[2], 'frontier', tonumber(ARGV[13]))
  end
end

local st = redis.call('HMGET', KEYS[2], 'last_tick')
local last = tonumber(st[1]) or now
if now < last then
  now = last  -- another process ticked with a clock slightly ahead: credit nothing
end

local opens_at = freeze_draw_if_due(now)

local cfg = redis.call('HMGET', KEYS[1], 'rate_per_minute', 'mode', 'message',
                       'session_minutes', 'epoch', 'max_active', 'challenge_bits',
                       'schedule_next', 'schedule_version',
                       'challenge_bits_max', 'challenge_join_rate', 'routes')
local rate = tonumber(cfg[1]) or 0
local mode = cfg[2] or 'paused'
local max_active = tonumber(cfg[6]) or 0

-- Adaptive admission: the rate is the room's effective rate, which health-3.lua sets from
-- every process's view of the backend (0 while it answers nothing), kept within
-- rate_min..rate_max; until its first decision, the configured rate within those bounds.
local adaptive = redis.call('HMGET', KEYS[1], 'rate_mode', 'rate_min', 'rate_max')
local rate_mode = adaptive[1] or 'fixed'
local rate_min, rate_max = tonumber(adaptive[2]) or 0, tonumber(adaptive[3]) or 0
local backend = ''
if rate_mode == 'adaptive' then
  local decision = redis.call('HMGET', KEYS[2], 'effective_rate', 'backend')
  backend = decision[2] or 'up'
  local hi = math.max(rate_max, rate_min)
  rate = math.min(math.max(tonumber(decision[1]) or rate, rate_min), hi)
  if backend == 'down' then rate = 0 end
end

local seen = seen_index(now, grace)
if seen then
  for i = seen_from, #ARGV do
    redis.call('SETBIT', KEYS[seen], ARGV[i], 1)
  end
end

st = redis.call('HMGET', KEYS[2], 'seq', 'frontier', 'credit', 'admitted', 'skipped',
                'draw_base', 'draw_count', 'draw_time', 'reseeded_at')
local seq = tonumber(st[1]) or 0
local frontier = tonumber(st[2]) or 0
local credit = tonumber(st[3]) or 0
local admitted = tonumber(st[4]) or 0
local skipped = tonumber(st[5]) or 0
local draw_base = tonumber(st[6]) or 0
local draw_count = tonumber(st[7]) or 0
local draw_time = tonumber(st[8]) or 0
local draw_fresh = now < draw_time + tonumber(ARGV[5])
-- The presence marks went with a lost room: for one grace period after it was re-created
-- everybody counts as present (the gates send their visitors' marks again meanwhile).
local reseed_fresh = now < (tonumber(st[9]) or -math.huge) + grace

local function present(n)
  if grace <= 0 or reseed_fresh then return true end
  if draw_fresh and n > draw_base and n <= draw_base + draw_count then return true end
  return redis.call('GETBIT', KEYS[4], n) == 1 or redis.call('GETBIT', KEYS[5], n) == 1
      or redis.call('GETBIT', KEYS[6], n) == 1
end

redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', string.format('%.6f', now - tonumber(ARGV[3])))
local active = redis.call('ZCOUNT', KEYS[3], string.format('(%.6f', now), '+inf')
local elapsed = math.min(now - last, tonumber(ARGV[2]))

if mode == 'queue' then
  credit = credit + elapsed * rate / 60
  local want = math.floor(credit)
  if max_active > 0 then
    -- Session cap: admit only into free sessions, and bank nothing while full (but keep
    -- the part-earned admission of a tick shorter than one admission's worth).
    local free = math.max(max_active - active, 0)
    if free == 0 then credit = 0 end
    want = math.min(want, free)
  end
  local admit = 0
  -- Visitors who were passed over while away and have come back go first.
  while admit < want do
    local n = redis.call('LPOP', KEYS[8])
    if not n then break end
    redis.call('SETBIT', KEYS[7], n, 0)
    admit = admit + 1
  end
  local walked, limit = 0, tonumber(ARGV[6])
  while admit < want and frontier < seq and walked < limit do
    frontier = frontier + 1
    walked = walked + 1
    if present(frontier) then
      admit = admit + 1
    else
      redis.call('SETBIT', KEYS[7], frontier, 1)  -- away: keeps no admission from others
      skipped = skipped + 1
    end
  end
  credit = credit - admit
  admitted = admitted + admit
  -- An empty queue banks at most one admission, so a quiet room cannot save up a burst.
  if frontier >= seq and redis.call('LLEN', KEYS[8]) == 0 and credit > 1 then credit = 1 end
elseif mode == 'passthrough' then
  admitted = admitted + (seq - frontier)
  frontier = seq
  credit = 0
else
  credit = 0  -- paused or closed: nobody new is admitted, no credit accrues meanwhile
end

redis.call('HSET', KEYS[2], 'frontier', frontier, 'credit', tostring(credit),
           'last_tick', string.format('%.6f', now), 'admitted', admitted, 'skipped', skipped)

-- Proof of work rising with the join rate (queue_gate/challenge.py): joins (numbers given
-- plus pre-queue entries) counted over windows of JOIN_RATE_WINDOW_S of room time, one
-- measure for every process; above challenge_join_rate a minute, one bit more per doubling
-- (each doubles the work of a place), up to challenge_bits_max.
local JOIN_RATE_WINDOW_S = 10
local joins_now = seq + redis.call('ZCARD', KEYS[10])
local jr = redis.call('HMGET', KEYS[2], 'join_rate', 'join_rate_at', 'join_rate_joins')
local join_rate = tonumber(jr[1]) or 0
local measured_at, measured_joins = tonumber(jr[2]), tonumber(jr[3])
if not measured_at or not measured_joins or now < measured_at then
  redis.call('HSET', KEYS[2], 'join_rate_at', string.format('%.6f', now),
             'join_rate_joins', joins_now)
elseif now - measured_at >= JOIN_RATE_WINDOW_S then
  -- max: a room re-created behind its old count has joins, not negative ones
  join_rate = math.max(joins_now - measured_joins, 0) * 60 / (now - measured_at)
  redis.call('HSET', KEYS[2], 'join_rate', tostring(join_rate),
             'join_rate_at', string.format('%.6f', now), 'join_rate_joins', joins_now)
end
local bits = tonumber(cfg[7]) or 0
local bits_max, rising_from = tonumber(cfg[10]) or 0, tonumber(cfg[11]) or 0
local bits_now = bits
if bits > 0 and bits_max > bits and rising_from > 0 and join_rate > rising_from then
  local doublings = math.ceil(math.log(join_rate / rising_from) / math.log(2))
  bits_now = math.min(bits_max, bits + math.max(doublings, 1))
end

local counters = redis.call('HMGET', KEYS[2], 'passes_issued', 'draw_opens_at', 'passes_ended')
-- One JSON object rather than a flat list: the tick's reply is the largest a gate reads
-- several times a second per room, and one string is far cheaper for the client to read
-- than sixty list items.
return cjson.encode({
  mode = mode, rate_per_minute = tostring(tonumber(cfg[1]) or 0), message = cfg[3] or '',
  session_minutes = cfg[4] or '15', epoch = cfg[5] or '', max_active = max_active,
  opens_at = opens_at and tostring(opens_at) or '',
  seq = seq, frontier = frontier, admitted = admitted, skipped = skipped,
  prequeue_size = redis.call('ZCARD', KEYS[10]),
  passes_active = active, passes_issued = tonumber(counters[1]) or 0,
  passes_ended = tonumber(counters[3]) or 0,
  draw_opens_at = counters[2] or '', draw_base = draw_base, draw_count = draw_count,
  now = string.format('%.6f', now),
  reseeded_at = redis.call('HGET', KEYS[2], 'reseeded_at') or '',
  challenge_bits = bits, challenge_bits_max = bits_max,
  challenge_join_rate = rising_from, challenge_bits_now = bits_now,
  join_rate = string.format('%.3f', join_rate),
  routes = cfg[12] or '',
  rate_mode = rate_mode, rate_min = tostring(rate_min), rate_max = tostring(rate_max),
  effective_rate = tostring(rate), backend = backend,
  schedule_next = cfg[8] or '', schedule_version = tonumber(cfg[9]) or 0
})
