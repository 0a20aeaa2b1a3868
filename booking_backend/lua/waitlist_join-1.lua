-- waitlist_join-1.lua: put a person on the waiting list of a district or a centre.
--
-- KEYS[1]  P.."wl:e:"..eid   the new entry (HASH)
-- ARGV[1]  P   ARGV[2] now   ARGV[3] eid   ARGV[4] identity (HMAC)   ARGV[5] list key
-- ARGV[6..] field, value, ... (birth, name, channel, address, lang, district, centre)
-- Derived keys: identities, wl:identities, wl:seq, the list, counts.
-- Returns {"ok", position} | {"already_waiting", position} | {"already_booked"}.
-- Clock: ARGV now (the app clock), recorded only; order comes from wl:seq.

local P, now, eid, identity, list = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
if redis.call("HEXISTS", P .. "identities", identity) == 1 then return {"already_booked"} end
local existing = redis.call("HGET", P .. "wl:identities", identity)
if existing then
  local ek = P .. "wl:e:" .. existing
  local e = redis.call("HMGET", ek, "list", "seq")
  if e[1] then
    return {"already_waiting", tostring(redis.call("ZCOUNT", e[1], "-inf", e[2]))}
  end
end
local seq = redis.call("INCR", P .. "wl:seq")
redis.call("HSET", KEYS[1], "eid", eid, "identity", identity, "list", list, "seq", seq,
  "status", "waiting", "joined", now, unpack(ARGV, 6))
redis.call("ZADD", list, seq, eid)
redis.call("HSET", P .. "wl:identities", identity, eid)
redis.call("HINCRBY", P .. "counts", "waiting", 1)
return {"ok", tostring(redis.call("ZCOUNT", list, "-inf", seq))}
