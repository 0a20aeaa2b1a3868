-- _lib.lua: helpers shared by the inventory scripts (hold, release, sweep, confirm, cancel,
-- release_slots); pasted in place of each `--!include _lib.lua` line by vaccine_queue.lua
-- (Redis Lua has no modules).
--
-- No key is built here, nor in any script: Redis Cluster routes a script by its declared
-- keys. Every script that includes this file declares the deployment's inventory keys
-- first, in this order, and the helpers use them by position:
-- KEYS[1] free             HASH slot -> free units (never < 0)
-- KEYS[2] cap              HASH slot -> capacity units
-- KEYS[3] counts           HASH capacity/free/held/booked units, bookings, waiting entries,
--                          and two counters that only grow: holds_expired, codes_expired
-- KEYS[4] ccounts          HASH "<centre>:capacity|free|held|booked" units per centre
-- KEYS[5] holds            ZSET hold id by expiry
-- Scripts that book (confirm, cancel, release_slots) declare four more keys after them,
-- used by enqueue, drop_waiting and assign_waitlist:
-- KEYS[6] identities       HASH identity HMAC -> booking code
-- KEYS[7] wl:identities    HASH identity HMAC -> waiting-list entry id
-- KEYS[8] outbox           ZSET message id by due time
-- KEYS[9] outbox:created   ZSET pending message id by queuing time (the backlog's age)
-- KEYS[6..n]   then the script's own keys (from KEYS[10] in scripts that book): of one
--              centre, hold, booking, message or waiting entry, each script says which; a
--              helper takes the position of such a key, never a name
-- ARGV[1..n]   each script's own; waitlist_args reads the waiting-list part of them
--
-- Inventory model: a slot `<centre>@<start epoch s>` has `cap` units (people per slot);
-- a centre's `cfree:<centre>` ZSET (slot by start) holds exactly its slots with free > 0.
-- A unit is free, or held by exactly one hold, or booked by exactly one booking.

-- Positions of the keys above, by name.
local FREE, CAP, COUNTS, CCOUNTS, HOLDS = 1, 2, 3, 4, 5
local IDENTITIES, WL_IDENTITIES, OUTBOX, OUTBOX_CREATED = 6, 7, 8, 9

-- The HASH at KEYS[i] as a table.
local function hash_at(i)
  local flat = redis.call("HGETALL", KEYS[i])
  local t = {}
  for j = 1, #flat, 2 do t[flat[j]] = flat[j + 1] end
  return t
end

local function slot_parts(sid)
  local cid, start = string.match(sid or "", "^(.+)@(%d+)$")
  return cid, tonumber(start)
end

-- Take n units of slot sid, whose centre's cfree ZSET is KEYS[cfree], if that many are
-- free; false otherwise (capacity never < 0).
local function take(cfree, sid, n)
  local free = tonumber(redis.call("HGET", KEYS[FREE], sid) or "0")
  if free < n then return false end
  free = redis.call("HINCRBY", KEYS[FREE], sid, -n)
  if free <= 0 then redis.call("ZREM", KEYS[cfree], sid) end
  redis.call("HINCRBY", KEYS[COUNTS], "free", -n)
  redis.call("HINCRBY", KEYS[CCOUNTS], slot_parts(sid) .. ":free", -n)
  return true
end

-- Return n units to a slot (a slot the operator deleted meanwhile takes nothing back).
local function give(cfree, sid, n)
  if redis.call("HEXISTS", KEYS[CAP], sid) == 0 then return end
  local free = redis.call("HINCRBY", KEYS[FREE], sid, n)
  local cid, start = slot_parts(sid)
  if free > 0 then redis.call("ZADD", KEYS[cfree], start, sid) end
  redis.call("HINCRBY", KEYS[COUNTS], "free", n)
  redis.call("HINCRBY", KEYS[CCOUNTS], cid .. ":free", n)
end

-- Add n units (n < 0: remove) to state held or booked, in total and at centre cid.
local function count_units(cid, state, n)
  redis.call("HINCRBY", KEYS[COUNTS], state, n)
  redis.call("HINCRBY", KEYS[CCOUNTS], cid .. ":" .. state, n)
end

-- End the live hold hid at KEYS[hold] (its owner's STRING at KEYS[owner], its centre's cfree
-- at KEYS[cfree]) and return both units; false when the hold is not live any more.
-- Status "expired" is counted here, in the step that ends the hold: whoever frees it (the
-- sweeper, the next hold, a late confirmation), it is counted exactly once.
local function release_hold(hold, owner, cfree, hid, new_status)
  local h = redis.call("HMGET", KEYS[hold], "first", "second", "status")
  if h[3] ~= "held" then return false end
  give(cfree, h[1], 1)
  give(cfree, h[2], 1)
  count_units(slot_parts(h[1]), "held", -2)
  if new_status == "expired" then redis.call("HINCRBY", KEYS[COUNTS], "holds_expired", 1) end
  redis.call("ZREM", KEYS[HOLDS], hid)
  redis.call("HSET", KEYS[hold], "status", new_status)
  redis.call("EXPIRE", KEYS[hold], 3600)
  if redis.call("GET", KEYS[owner]) == hid then redis.call("DEL", KEYS[owner]) end
  return true
end

-- The earliest pair in KEYS[cfree]: a free first slot in [earliest, latest] and the first
-- free slot between min_gap and max_gap seconds after it.
local function find_pair(cfree, earliest, latest, min_gap, max_gap)
  local firsts = redis.call("ZRANGEBYSCORE", KEYS[cfree], earliest, latest, "WITHSCORES")
  for i = 1, #firsts, 2 do
    local t = tonumber(firsts[i + 1])
    local seconds = redis.call("ZRANGEBYSCORE", KEYS[cfree], t + min_gap, t + max_gap,
      "LIMIT", 0, 1)
    if #seconds > 0 then return firsts[i], seconds[1] end
  end
  return nil, nil
end

-- Put message mid (its HASH at KEYS[msg]) into the outbox; the worker renders and delivers it.
local function enqueue(msg, mid, due, fields)
  redis.call("HSET", KEYS[msg], unpack(fields))
  redis.call("ZADD", KEYS[OUTBOX], due, mid)
  redis.call("ZADD", KEYS[OUTBOX_CREATED], due, mid)
end

-- Take a person's waiting entry eid (HASH at KEYS[entry], its list at KEYS[list]) off the
-- list: they booked another way.
local function drop_waiting(entry, list, eid, identity, status)
  redis.call("HDEL", KEYS[WL_IDENTITIES], identity)
  if redis.call("HGET", KEYS[entry], "list") == KEYS[list]
      and redis.call("ZREM", KEYS[list], eid) == 1 then
    redis.call("HINCRBY", KEYS[COUNTS], "waiting", -1)
  end
  redis.call("HSET", KEYS[entry], "status", status)
end

-- The waiting-list part of a script that frees capacity (cancel, release_slots): which keys
-- and ids the caller expects at the head of each list. From ARGV[a]:
--   window (how many entries of each list's head count), n, n fresh booking codes,
--   nc, the nc entry ids expected in the centre's list, nd, the nd ids of the district's
-- From KEYS[k]:
--   wl:c:<centre>, wl:d:<district>, then booking:<code j> and msg:wl-<code j> for each code,
--   then wl:e:<eid> for each id expected (centre list first, in list order).
-- Returns the table and the ARGV position after the part.
local function waitlist_args(a, k)
  local wl = {clist = k, dlist = k + 1, window = tonumber(ARGV[a]), codes = {}, booking = {},
              msg = {}, cids = {}, dids = {}, entry = {}}
  local n = tonumber(ARGV[a + 1])
  for j = 1, n do
    wl.codes[j] = ARGV[a + 1 + j]
    wl.booking[j] = k + 2 * j
    wl.msg[j] = k + 2 * j + 1
  end
  local at, key = a + 2 + n, k + 2 + 2 * n
  for _, ids in ipairs({wl.cids, wl.dids}) do
    local count = tonumber(ARGV[at])
    for i = 1, count do
      local eid = ARGV[at + i]
      ids[i] = eid
      wl.entry[eid] = key
      key = key + 1
    end
    at = at + 1 + count
  end
  return wl, at
end

-- nil when both lists start with exactly what the caller expects (nothing joined a list it
-- saw whole, nothing left either head); else the reply that tells it what they start with
-- now: it declares those entries and calls again (a first call expects empty lists).
local function waitlist_news(wl)
  if wl.window == 0 then return nil end
  local c = redis.call("ZRANGE", KEYS[wl.clist], 0, wl.window - 1)
  local d = redis.call("ZRANGE", KEYS[wl.dlist], 0, wl.window - 1)
  local same = #c == #wl.cids and #d == #wl.dids
  for i = 1, #c do same = same and c[i] == wl.cids[i] end
  for i = 1, #d do same = same and d[i] == wl.dids[i] end
  if same then return nil end
  return {"outcome", "retry", "centre_ids", table.concat(c, " "),
          "district_ids", table.concat(d, " ")}
end

-- Give up to `quota` pairs of the centre cid (its cfree ZSET at KEYS[cfree]) to the oldest
-- entries of the centre's waiting list and its district's list (strict order of joining
-- across both lists), using the codes in `wl` (see waitlist_args). Returns the booking codes
-- assigned.
local function assign_waitlist(wl, cfree, cid, district, quota, now, earliest, min_gap, max_gap)
  local assigned = {}
  while #assigned < quota and #assigned < #wl.codes do
    local c = redis.call("ZRANGE", KEYS[wl.clist], 0, 0, "WITHSCORES")
    local d = redis.call("ZRANGE", KEYS[wl.dlist], 0, 0, "WITHSCORES")
    local eid, list
    if #c > 0 and (#d == 0 or tonumber(c[2]) < tonumber(d[2])) then
      eid, list = c[1], wl.clist
    elseif #d > 0 then
      eid, list = d[1], wl.dlist
    else
      break
    end
    local entry = wl.entry[eid]
    -- Past what the caller declared (more skipped entries than its margin): the rest of
    -- the list waits for the next cancellation or release.
    if not entry then break end
    local first, second = find_pair(cfree, earliest, "+inf", min_gap, max_gap)
    if not first then break end
    -- The entry leaves its list in the same atomic step that books it: assigned exactly once.
    redis.call("ZREM", KEYS[list], eid)
    redis.call("HINCRBY", KEYS[COUNTS], "waiting", -1)
    local e = hash_at(entry)
    redis.call("HDEL", KEYS[WL_IDENTITIES], e.identity or "")
    if (e.identity or "") == "" or redis.call("HEXISTS", KEYS[IDENTITIES], e.identity) == 1 then
      -- booked directly meanwhile: one person, one booking; the pair goes to the next entry
      redis.call("HSET", KEYS[entry], "status", "skipped")
    else
      local j = #assigned + 1
      local code = wl.codes[j]
      take(cfree, first, 1)
      take(cfree, second, 1)
      redis.call("HSET", KEYS[wl.booking[j]],
        "code", code, "first", first, "second", second, "centre", cid, "district", district,
        "birth", e.birth or "", "name", e.name or "", "channel", e.channel or "",
        "address", e.address or "", "lang", e.lang or "de", "identity", e.identity,
        "invitation", e.invitation or "", "status", "active", "created", now,
        "source", "waitlist")
      redis.call("HSET", KEYS[IDENTITIES], e.identity, code)
      count_units(cid, "booked", 2)
      redis.call("HINCRBY", KEYS[COUNTS], "bookings", 1)
      redis.call("HSET", KEYS[entry], "status", "assigned", "booking", code)
      redis.call("EXPIRE", KEYS[entry], 86400)
      enqueue(wl.msg[j], "wl-" .. code, now, {"kind", "assigned", "channel", e.channel or "",
        "address", e.address or "", "lang", e.lang or "de", "booking", code,
        "attempts", 0, "created", now})
      table.insert(assigned, code)
    end
  end
  return assigned
end
