-- _room.lua: helpers shared by the room scripts, which include it with `--!include _room.lua`.
--
-- The room scripts (tick, join, issue_pass, draw_place) take the same first eleven keys,
-- in this order, so each can keep the room's invariants:
--   KEYS[1]  qg:{room}:config     hash: rate_per_minute, mode, message, session_minutes,
--                                  epoch, opens_at, max_active, challenge_bits,
--                                  challenge_bits_max, challenge_join_rate,
--                                  rate_mode (fixed | adaptive), rate_min, rate_max,
--                                  schedule_next, schedule_version (_schedule.lua)
--   KEYS[2]  qg:{room}:state      hash: seq, frontier, credit, last_tick, admitted, skipped,
--                                  passes_issued, passes_ended, seen_bucket, draw_opens_at,
--                                  draw_base, draw_count, draw_time, reseeded_at (when
--                                  a gate last re-created the room Redis had lost),
--                                  effective_rate, backend, rate_decided_at,
--                                  rate_decreased_at, rate_regain (adaptive admission:
--                                  health-3.lua),
--                                  join_rate, join_rate_at, join_rate_joins (tick-11.lua)
--   KEYS[3]  qg:{room}:passes     zset: ticket id -> pass expiry (unix seconds)
--   KEYS[4]  qg:{room}:seen:0     bitmap: bit n set = ticket n was seen in that time bucket
--   KEYS[5]  qg:{room}:seen:1     the same, for the next bucket (buckets take turns)
--   KEYS[6]  qg:{room}:seen:2     the same, for the bucket after that
--   KEYS[7]  qg:{room}:skipped    bitmap: bit n set = n was passed over while away
--   KEYS[8]  qg:{room}:returners  list: passed-over numbers that came back, admitted first
--   KEYS[9]  qg:{room}:requeued   bitmap: bit n set = n is (or was) in the returners list
--   KEYS[10] qg:{room}:prequeue   zset: ticket id -> random draw key, before opening
--   KEYS[11] qg:{room}:drawn      zset: the last frozen pre-queue (rank = place in the draw)
--
-- Presence: time is cut into buckets of half the grace period; the three seen bitmaps hold
-- the current bucket and the two before it. A number with no bit in any of them has not
-- been seen for at least the grace period (and at most one and a half of it).

-- Clear the bitmaps of buckets that fell out of the window; return the index in KEYS
-- (4, 5 or 6) of the current one's bitmap, or nil when presence is not tracked.
local function seen_index(now, grace)
  if grace <= 0 then return nil end
  local bucket = math.floor(now / (grace / 2))
  local stored = tonumber(redis.call('HGET', KEYS[2], 'seen_bucket'))
  if stored == nil or bucket > stored then
    local from = stored and math.max(stored + 1, bucket - 2) or bucket - 2
    for b = from, bucket do
      redis.call('DEL', KEYS[4 + (b % 3)])
    end
    redis.call('HSET', KEYS[2], 'seen_bucket', bucket)
  elseif bucket < stored then
    bucket = stored  -- a process with a clock slightly behind writes into the newest bucket
  end
  return 4 + (bucket % 3)
end

-- Before opening, arrivals wait in the pre-queue. The first script to run at or after the
-- opening time freezes it: the pre-queued visitors take the next `count` numbers in the
-- order of their random draw keys, ahead of everyone who arrives later. O(1): the numbers
-- are read later as base + rank.
local function freeze_draw_if_due(now)
  local opens_at = tonumber(redis.call('HGET', KEYS[1], 'opens_at'))
  if opens_at == nil or now < opens_at then
    return opens_at
  end
  local seq = tonumber(redis.call('HGET', KEYS[2], 'seq')) or 0
  local count = redis.call('ZCARD', KEYS[10])
  if count > 0 then
    redis.call('RENAME', KEYS[10], KEYS[11])
  else
    redis.call('DEL', KEYS[11])
  end
  redis.call('HSET', KEYS[2], 'seq', seq + count, 'draw_opens_at', opens_at,
             'draw_base', seq, 'draw_count', count, 'draw_time', string.format('%.6f', now))
  redis.call('HDEL', KEYS[1], 'opens_at')
  return nil
end
