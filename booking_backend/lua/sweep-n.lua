-- sweep-n.lua: expire holds whose time ran out and give their units back.
--
-- The caller reads the expired hold ids from KEYS[5] and each hold's owner and centre first
-- (a script may only touch keys it declares), then calls this with them; each hold is
-- checked again here, under the script's atomicity.
--
-- KEYS[1]  free             the deployment's inventory keys, as _lib.lua lists them
-- KEYS[2]  cap
-- KEYS[3]  counts
-- KEYS[4]  ccounts
-- KEYS[5]  holds
-- KEYS[6..n] three keys for each hold i = 1, 2, ...:
--   KEYS[3+3i]  hold:<hid i>
--   KEYS[4+3i]  owner:<owner i>   (KEYS[3+3i] again when the hold's HASH was gone)
--   KEYS[5+3i]  cfree:<centre i>  (KEYS[3+3i] again when the hold's HASH was gone)
-- ARGV[1]  now
-- ARGV[2..n] three values for each hold i, in the order of KEYS:
--   ARGV[3i-1]  hid i
--   ARGV[3i]    owner i, as the caller read it ("" when the HASH was gone)
--   ARGV[3i+1]  centre i, as the caller read it ("" when the HASH was gone)
-- Returns expired = the number of holds this call ended (each counted in holds_expired).
-- Clock: ARGV now (the app clock). hold-10.lua reports expired holds to its caller, who
-- sweeps them at once, so capacity comes back even when no sweeper runs.
--!include _lib.lua

local now = tonumber(ARGV[1])
local expired = 0
for i = 1, (#KEYS - 5) / 3 do
  local hold, owner, cfree = 3 + 3 * i, 4 + 3 * i, 5 + 3 * i
  local hid = ARGV[3 * i - 1]
  local h = redis.call("HMGET", KEYS[hold], "status", "expires", "owner", "centre")
  if h[1] == "held" then
    -- Race: a hold confirmed, released or freed by another sweeper after the caller's read
    -- is no longer "held" and takes the other branch, so its units come back at most once.
    -- Owner and centre never change, so they are what the caller declared.
    if tonumber(h[2]) <= now and h[3] == ARGV[3 * i] and h[4] == ARGV[3 * i + 1] then
      release_hold(hold, owner, cfree, hid, "expired")
      expired = expired + 1
    end
  else
    -- Not live any more (or its HASH expired): only its entry in the index is left, if any.
    redis.call("ZREM", KEYS[HOLDS], hid)
  end
end
return {"expired", expired}
