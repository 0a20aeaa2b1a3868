-- tick-3.lua: advance a room's admission frontier by the configured rate, and report the room.
--
-- Every gate process calls this a few times a second. The result depends only on the time
-- elapsed since the previous call (by whichever process), so the number admitted per minute
-- is the configured rate whether one or twenty processes tick. It is also each process's
-- refresh of its local view of the room, so status polls cost no round trip of their own.
--
-- KEYS[1]  qg:{room}:config   hash: rate_per_minute, mode, message, session_minutes, epoch
-- KEYS[2]  qg:{room}:state    hash: seq, frontier, credit, last_tick, passes_issued
-- KEYS[3]  qg:{room}:passes   zset: ticket id -> pass expiry (unix seconds)
-- ARGV[1]  now in unix seconds (float) from an injected clock, or "" to use Redis TIME
--          (Redis TIME is what production uses: every process on every machine must agree)
-- ARGV[2]  largest elapsed time credited at once, seconds: after every gate was down for
--          a while the backend gets the normal rate, not a burst of the whole outage
-- ARGV[3]  how long spent passes are remembered, seconds (the ticket lifetime: a ticket
--          older than that is refused anyway, so it cannot ask for a second pass)
-- ARGV[4..8] defaults used only when the room does not exist yet (first start, or a Redis
--          that lost its data): rate_per_minute, mode, message, session_minutes, new epoch
-- Returns  {mode, rate_per_minute, message, session_minutes, epoch, seq, frontier,
--           passes_active, passes_issued, now}; numbers that may be fractional as strings.

local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[1])
end

if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'rate_per_minute', ARGV[4], 'mode', ARGV[5], 'message', ARGV[6],
             'session_minutes', ARGV[7], 'epoch', ARGV[8])
end
local cfg = redis.call('HMGET', KEYS[1], 'rate_per_minute', 'mode', 'message',
                       'session_minutes', 'epoch')
local rate = tonumber(cfg[1]) or 0
local mode = cfg[2] or 'paused'

local st = redis.call('HMGET', KEYS[2], 'seq', 'frontier', 'credit', 'last_tick', 'passes_issued')
local seq = tonumber(st[1]) or 0
local frontier = tonumber(st[2]) or 0
local credit = tonumber(st[3]) or 0
local last = tonumber(st[4]) or now

local elapsed = now - last
if elapsed < 0 then
  -- Another process ticked with a clock slightly ahead: credit nothing, keep the later mark.
  elapsed = 0
  now = last
end
elapsed = math.min(elapsed, tonumber(ARGV[2]))

if mode == 'queue' then
  credit = credit + elapsed * rate / 60
  local admit = math.min(math.floor(credit), seq - frontier)
  frontier = frontier + admit
  credit = credit - admit
  -- An empty queue banks at most one admission, so a quiet room cannot save up a burst.
  if frontier >= seq and credit > 1 then credit = 1 end
elseif mode == 'passthrough' then
  frontier = seq
  credit = 0
else
  -- paused or closed: nobody new is admitted and no credit accrues meanwhile.
  credit = 0
end

redis.call('HSET', KEYS[2], 'frontier', frontier, 'credit', tostring(credit),
           'last_tick', string.format('%.6f', now))
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', string.format('%.6f', now - tonumber(ARGV[3])))
local active = redis.call('ZCOUNT', KEYS[3], string.format('(%.6f', now), '+inf')

return {mode, tostring(rate), cfg[3] or '', cfg[4] or '15', cfg[5] or '', seq, frontier,
        active, tonumber(st[5]) or 0, string.format('%.6f', now)}
