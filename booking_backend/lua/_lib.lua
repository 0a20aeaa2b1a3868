-- _lib.lua: helpers shared by the booking scripts; pasted in place of each
-- `--!include _lib.lua` line when store.py loads a script (Redis Lua has no modules).
--
-- Every key is built from the prefix P (`bk:{<deployment>}:`). All keys carry the same
-- hash tag, so one deployment lives on one Redis Cluster slot and a script that derives
-- keys from P never crosses slots.
--
-- Inventory model: a slot `<centre>@<start epoch s>` has `cap` units (people per slot).
--   P.."cap"  HASH slot -> capacity        P.."free" HASH slot -> free units (never < 0)
--   P.."cfree:"..centre  ZSET slot by start, holding exactly the slots with free > 0
--   P.."counts" HASH capacity/free/held/booked units, bookings, waiting entries, and two
--               counters that only grow: holds_expired, codes_expired (exported as counters)
--   P.."ccounts" HASH "<centre>:capacity|free|held|booked" units per centre (stats, metrics)
-- A unit is free, or held by exactly one hold, or booked by exactly one booking.

local function hash(key)
  local flat = redis.call("HGETALL", key)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

local function slot_parts(sid)
  local cid, start = string.match(sid, "^(.+)@(%d+)$")
  return cid, tonumber(start)
end

-- Take n units of a slot if that many are free; false otherwise (capacity never < 0).
local function take(P, sid, n)
  local free = tonumber(redis.call("HGET", P .. "free", sid) or "0")
  if free < n then return false end
  free = redis.call("HINCRBY", P .. "free", sid, -n)
  local cid = slot_parts(sid)
  if free <= 0 then
    redis.call("ZREM", P .. "cfree:" .. cid, sid)
  end
  redis.call("HINCRBY", P .. "counts", "free", -n)
  redis.call("HINCRBY", P .. "ccounts", cid .. ":free", -n)
  return true
end

-- Return n units to a slot (a slot the operator deleted meanwhile takes nothing back).
local function give(P, sid, n)
  if redis.call("HEXISTS", P .. "cap", sid) == 0 then return end
  local free = redis.call("HINCRBY", P .. "free", sid, n)
  local cid, start = slot_parts(sid)
  if free > 0 then redis.call("ZADD", P .. "cfree:" .. cid, start, sid) end
  redis.call("HINCRBY", P .. "counts", "free", n)
  redis.call("HINCRBY", P .. "ccounts", cid .. ":free", n)
end

-- Add n units (n < 0: remove) to state held or booked, in total and at centre cid.
local function count_units(P, cid, state, n)
  redis.call("HINCRBY", P .. "counts", state, n)
  redis.call("HINCRBY", P .. "ccounts", cid .. ":" .. state, n)
end

-- End a live hold and return both units; false when the hold is not live any more.
-- Status "expired" is counted here, in the step that ends the hold: whoever frees it (the
-- sweeper, the next hold, a late confirmation), it is counted exactly once.
local function release_hold(P, hid, new_status)
  local hk = P .. "hold:" .. hid
  local h = redis.call("HMGET", hk, "first", "second", "status", "owner")
  if h[3] ~= "held" then return false end
  give(P, h[1], 1)
  give(P, h[2], 1)
  count_units(P, slot_parts(h[1]), "held", -2)
  if new_status == "expired" then redis.call("HINCRBY", P .. "counts", "holds_expired", 1) end
  redis.call("ZREM", P .. "holds", hid)
  redis.call("HSET", hk, "status", new_status)
  redis.call("EXPIRE", hk, 3600)
  local ok = P .. "owner:" .. (h[4] or "")
  if redis.call("GET", ok) == hid then redis.call("DEL", ok) end
  return true
end

-- Lazily expire up to `limit` holds whose time ran out (the sweeper calls this too).
local function expire_holds(P, now, limit)
  local ids = redis.call("ZRANGEBYSCORE", P .. "holds", "-inf", now, "LIMIT", 0, limit)
  for _, hid in ipairs(ids) do
    if not release_hold(P, hid, "expired") then
      redis.call("ZREM", P .. "holds", hid)
    end
  end
  return #ids
end

-- The earliest pair at a centre: a free first slot in [earliest, latest] and the first free
-- slot between min_gap and max_gap seconds after it.
local function find_pair(P, cid, earliest, latest, min_gap, max_gap)
  local firsts = redis.call("ZRANGEBYSCORE", P .. "cfree:" .. cid, earliest, latest, "WITHSCORES")
  for i = 1, #firsts, 2 do
    local t = tonumber(firsts[i + 1])
    local seconds = redis.call("ZRANGEBYSCORE", P .. "cfree:" .. cid,
      t + min_gap, t + max_gap, "LIMIT", 0, 1)
    if #seconds > 0 then return firsts[i], seconds[1] end
  end
  return nil, nil
end

-- Put a message into the outbox; the worker renders and delivers it. `outbox:created`
-- orders pending messages by when they were queued (the backlog's age, for the metrics).
local function enqueue(P, mid, due, fields)
  redis.call("HSET", P .. "msg:" .. mid, unpack(fields))
  redis.call("ZADD", P .. "outbox", due, mid)
  redis.call("ZADD", P .. "outbox:created", due, mid)
end

-- Remove a person's waiting-list entry (they booked or were assigned).
local function drop_waiting(P, identity, status)
  local eid = redis.call("HGET", P .. "wl:identities", identity)
  if not eid then return end
  redis.call("HDEL", P .. "wl:identities", identity)
  local ek = P .. "wl:e:" .. eid
  local list = redis.call("HGET", ek, "list")
  if list and redis.call("ZREM", list, eid) == 1 then
    redis.call("HINCRBY", P .. "counts", "waiting", -1)
  end
  redis.call("HSET", ek, "status", status)
end

-- Give up to `quota` pairs at centre `cid` to the oldest entries of the centre's waiting list
-- and its district's list (strict order of joining across both lists). `codes` are fresh
-- booking codes, one per possible assignment. Returns the booking codes assigned.
local function assign_waitlist(P, cid, district, quota, now, earliest, min_gap, max_gap, codes)
  local assigned = {}
  local clist = P .. "wl:c:" .. cid
  local dlist = P .. "wl:d:" .. district
  while #assigned < quota and #assigned < #codes do
    local c = redis.call("ZRANGE", clist, 0, 0, "WITHSCORES")
    local d = redis.call("ZRANGE", dlist, 0, 0, "WITHSCORES")
    local eid, list
    if #c > 0 and (#d == 0 or tonumber(c[2]) < tonumber(d[2])) then
      eid, list = c[1], clist
    elseif #d > 0 then
      eid, list = d[1], dlist
    else
      break
    end
    local first, second = find_pair(P, cid, earliest, "+inf", min_gap, max_gap)
    if not first then break end
    -- The entry leaves its list in the same atomic step that books it: assigned exactly once.
    redis.call("ZREM", list, eid)
    redis.call("HINCRBY", P .. "counts", "waiting", -1)
    local ek = P .. "wl:e:" .. eid
    local e = hash(ek)
    redis.call("HDEL", P .. "wl:identities", e.identity or "")
    if (e.identity or "") == "" or redis.call("HEXISTS", P .. "identities", e.identity) == 1 then
      -- booked directly meanwhile: one person, one booking; the pair goes to the next entry
      redis.call("HSET", ek, "status", "skipped")
    else
      local code = codes[#assigned + 1]
      take(P, first, 1)
      take(P, second, 1)
      redis.call("HSET", P .. "booking:" .. code,
        "code", code, "first", first, "second", second, "centre", cid, "district", district,
        "birth", e.birth or "", "name", e.name or "", "channel", e.channel or "",
        "address", e.address or "", "lang", e.lang or "de", "identity", e.identity,
        "invitation", e.invitation or "", "status", "active", "created", now,
        "source", "waitlist")
      redis.call("HSET", P .. "identities", e.identity, code)
      count_units(P, cid, "booked", 2)
      redis.call("HINCRBY", P .. "counts", "bookings", 1)
      redis.call("HSET", ek, "status", "assigned", "booking", code)
      redis.call("EXPIRE", ek, 86400)
      enqueue(P, "wl-" .. code, now, {"kind", "assigned", "channel", e.channel or "",
        "address", e.address or "", "lang", e.lang or "de", "booking", code,
        "attempts", 0, "created", now})
      table.insert(assigned, code)
    end
  end
  return assigned
end
