-- waitlist_join-8.lua: put a person on the waiting list of a district or a centre.
--
-- KEYS[1]  wl:e:<eid>       the new entry (HASH)
-- KEYS[2]  identities       HASH identity HMAC -> booking code
-- KEYS[3]  wl:identities    HASH identity HMAC -> waiting entry id
-- KEYS[4]  wl:seq           counter: order of joining the waiting list
-- KEYS[5]  wl:c:<centre> or wl:d:<district>: the list to join (ZSET entry id by order)
-- KEYS[6]  counts           HASH; waiting is counted here
-- KEYS[7]  wl:e:<existing>  the person's entry, as the caller expects it (KEYS[1] for none)
-- KEYS[8]  the list of that entry, as the caller read it (KEYS[1] for none)
-- ARGV[1]  now
-- ARGV[2]  eid              fresh random entry id
-- ARGV[3]  identity         HMAC of the normalised person
-- ARGV[4]  existing         the entry id the caller expects for this person ("" for none)
-- ARGV[5..] field, value, ... (birth, name, channel, address, lang, district, centre)
-- Returns outcome:
--   ok | already_waiting   position = place in the list (1 = next)
--   already_booked
--   previous  entry = the person's entry id, not what the caller expected; nothing was
--             written, it declares that entry and calls again
-- Clock: ARGV now (the app clock), recorded only; order comes from wl:seq.

local now, eid, identity = tonumber(ARGV[1]), ARGV[2], ARGV[3]
if redis.call("HEXISTS", KEYS[2], identity) == 1 then return {"outcome", "already_booked"} end
local existing = redis.call("HGET", KEYS[3], identity) or ""
-- Race: the person joined (or was served) after the caller looked: it declares the entry
-- it finds now and calls again.
if existing ~= ARGV[4] then return {"outcome", "previous", "entry", existing} end
if existing ~= "" then
  local e = redis.call("HMGET", KEYS[7], "list", "seq")
  if e[1] then
    -- An entry's list never changes: a different one is a caller's bug, not a race.
    if e[1] ~= KEYS[8] then error("waitlist_join-8: list is not " .. KEYS[8]) end
    return {"outcome", "already_waiting", "position", redis.call("ZCOUNT", KEYS[8], "-inf", e[2])}
  end
end
local seq = redis.call("INCR", KEYS[4])
redis.call("HSET", KEYS[1], "eid", eid, "identity", identity, "list", KEYS[5], "seq", seq,
  "status", "waiting", "joined", now, unpack(ARGV, 5))
redis.call("ZADD", KEYS[5], seq, eid)
redis.call("HSET", KEYS[3], identity, eid)
redis.call("HINCRBY", KEYS[6], "waiting", 1)
return {"outcome", "ok", "position", redis.call("ZCOUNT", KEYS[5], "-inf", seq)}
