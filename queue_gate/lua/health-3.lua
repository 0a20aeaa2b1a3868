-- health-3.lua: take one gate process's verdict on the booking backend and, when due, make
-- the room's one decision on its effective admission rate (adaptive mode).
--
-- Every gate process sends its verdict on its own proxied traffic once a second (at once
-- when a request got no answer). Each verdict is kept in the room's health hash under the
-- process's id; the first call after the decision period has passed combines the fresh
-- verdicts of every process and sets the effective rate, which tick-11.lua then admits at.
-- One decision per period for the room, whichever process makes it.
--
-- The controller (additive increase, multiplicative decrease, with a stop):
--   down:    some process's newest request without an answer is newer than every process's
--            newest answer -> effective 0 at once, not waiting for the period (admissions
--            stop entirely; the waiting page says the booking system is recovering).
--   back:    an answer newer than the last no-answer -> effective rate_min (at least one
--            step), then it doubles each period up to a share of rate_max (slow start,
--            ended by the first trouble), then the climb below.
--   trouble: a process said "trouble" since the last decision -> effective x factor, at
--            most once per hold period (the effect of a cut needs time to show), never
--            below rate_min.
--   healthy: + rate_max x period / ramp per period, up to rate_max (from 0 to rate_max in
--            `ramp` seconds).
--
-- KEYS[1]  qg:{room}:config   hash: rate_mode (fixed | adaptive), rate_min, rate_max,
--                              rate_per_minute (the start when adaptive mode begins)
-- KEYS[2]  qg:{room}:state    hash: effective_rate, backend (up | down), rate_decided_at,
--                              rate_decreased_at, rate_regain (the slow start's end, 0 for
--                              none) (written here; tick-11.lua reads the first two)
-- KEYS[3]  qg:{room}:health   hash: process id -> "time|verdict|last_answer|last_no_answer"
-- ARGV[1]  now in unix seconds from an injected clock (tests), or "" for Redis TIME
-- ARGV[2]  the reporting process's id
-- ARGV[3]  its verdict: ok | trouble | dead | idle
-- ARGV[4]  its newest answer from the backend, unix seconds (0 for none)
-- ARGV[5]  its newest request that got no answer, unix seconds (0 for none)
-- ARGV[6]  decision period, seconds
-- ARGV[7]  decrease factor (0..1)
-- ARGV[8]  hold after a decrease, seconds
-- ARGV[9]  ramp, seconds: from 0 to rate_max while healthy
-- ARGV[10] how long a process's verdict counts, seconds (a stopped process's is dropped)
-- ARGV[11] share of rate_max (0..1) up to which the rate doubles after an outage
-- Returns  named fields: rate_mode; effective_rate ("" in fixed mode); backend (up | down,
--          "" in fixed mode); decided (1 if this call made a decision, else 0).
-- Clock    ARGV[1]: Redis TIME in production, so every process's decision uses one clock;
--          the answer times (ARGV[4], ARGV[5]) are the processes' wall clocks, compared only
--          with each other (NTP keeps them far closer than a backend outage is long).
--!include _clock.lua

local now = room_now(ARGV[1])
redis.call('HSET', KEYS[3], ARGV[2],
           string.format('%.6f|%s|%s|%s', now, ARGV[3], ARGV[4], ARGV[5]))

local cfg = redis.call('HMGET', KEYS[1], 'rate_mode', 'rate_min', 'rate_max', 'rate_per_minute')
if cfg[1] ~= 'adaptive' then
  redis.call('HDEL', KEYS[2], 'effective_rate', 'backend', 'rate_decided_at',
             'rate_decreased_at', 'rate_regain')
  return {'rate_mode', cfg[1] or 'fixed', 'effective_rate', '', 'backend', '', 'decided', 0}
end
local lo = tonumber(cfg[2]) or 0
local hi = math.max(tonumber(cfg[3]) or lo, lo)
local function clamp(x) return math.min(math.max(x, lo), hi) end

local period, factor = tonumber(ARGV[6]), tonumber(ARGV[7])
local hold, ramp, ttl = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])

local st = redis.call('HMGET', KEYS[2], 'effective_rate', 'backend', 'rate_decided_at',
                      'rate_decreased_at', 'rate_regain')
local effective = tonumber(st[1]) or clamp(tonumber(cfg[4]) or lo)
local backend = st[2] or 'up'
local decided_at = tonumber(st[3]) or 0
local decreased_at = tonumber(st[4]) or 0
local regain = tonumber(st[5]) or 0

local newest_answer, newest_silence, trouble, stale = 0, 0, false, {}
local all = redis.call('HGETALL', KEYS[3])
for i = 1, #all, 2 do
  local t, verdict, answer, silence = string.match(all[i + 1], '^([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
  t = tonumber(t) or 0
  if t < now - ttl then
    stale[#stale + 1] = all[i]
  else
    newest_answer = math.max(newest_answer, tonumber(answer) or 0)
    newest_silence = math.max(newest_silence, tonumber(silence) or 0)
    if verdict == 'trouble' and t > decided_at then trouble = true end
  end
end
if #stale > 0 then
  redis.call('HDEL', KEYS[3], unpack(stale))
end

local step = math.max(hi * period / ramp, 1)
local decided = 0
if newest_silence > newest_answer then
  if backend ~= 'down' then
    backend, effective, decided, decided_at = 'down', 0, 1, now
  end
elseif backend == 'down' then
  backend, effective, decided, decided_at = 'up', clamp(math.max(lo, step)), 1, now
  regain = hi * tonumber(ARGV[11])
elseif now >= decided_at + period then
  if trouble then
    regain = 0  -- the slow start ends at the first trouble
    if now >= decreased_at + hold then
      effective = clamp(effective * factor)
      decreased_at = now
    end
  elseif effective < regain then
    effective = clamp(math.max(math.min(effective * 2, regain), effective + step))
  else
    effective = clamp(effective + step)
  end
  decided, decided_at = 1, now
end
if backend == 'up' then effective = clamp(effective) end

redis.call('HSET', KEYS[2], 'effective_rate', tostring(effective), 'backend', backend,
           'rate_decided_at', string.format('%.6f', decided_at),
           'rate_decreased_at', string.format('%.6f', decreased_at), 'rate_regain',
           tostring(regain))
return {'rate_mode', 'adaptive', 'effective_rate', tostring(effective), 'backend', backend,
        'decided', decided}
